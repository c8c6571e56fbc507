//go:build noxy_static

package cbench

// Linked as the noxy package is (see ../../link_static.go).

// #cgo pkg-config: --static noxy
// #cgo LDFLAGS: -Wl,-Bstatic -lnoxy -Wl,-Bdynamic -Wl,--as-needed
import "C"
