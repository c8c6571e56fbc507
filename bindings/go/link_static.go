//go:build noxy_static

package noxy

// Static linking (build tag noxy_static): libnoxy.a goes into the Go binary, which then needs
// no libnoxy.so at run time. noxy-static.pc names libnoxy.a by its path and the native
// libraries it needs (-lgcc_s -lutil -lrt -lpthread -lm -ldl -lc).

// #cgo pkg-config: noxy-static
import "C"
