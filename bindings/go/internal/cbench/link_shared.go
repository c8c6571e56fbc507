//go:build !noxy_static

package cbench

// Linked as the noxy package is (see ../../link_shared.go).

// #cgo pkg-config: noxy
import "C"
