//go:build !noxy_static

package noxy

// Default linking: the shared library libnoxy.so (soname libnoxy.so.0), found through
// pkg-config (`make lib` writes target/release/pkgconfig/noxy.pc; point PKG_CONFIG_PATH at
// it). At run time the dynamic loader must find libnoxy.so.0: install it, set
// LD_LIBRARY_PATH, or link with an rpath (CGO_LDFLAGS=-Wl,-rpath,<dir>).

// #cgo pkg-config: noxy
import "C"
