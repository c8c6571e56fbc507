//go:build noxy_static

package noxy

// Static linking (build tag noxy_static): libnoxy.a goes into the Go binary, which then needs
// no libnoxy.so at run time. `pkg-config --static` adds the native libraries libnoxy.a needs
// (-lgcc_s -lutil -lrt -lpthread -lm -ldl -lc). Its -lnoxy would pick libnoxy.so when both
// files sit in one directory, so libnoxy is named here first between -Bstatic and -Bdynamic
// (the linker searches every -L directory for every -l, whatever their order), and
// --as-needed drops the shared libnoxy that pkg-config's -lnoxy then names to no purpose.

// #cgo pkg-config: --static noxy
// #cgo LDFLAGS: -Wl,-Bstatic -lnoxy -Wl,-Bdynamic -Wl,--as-needed
import "C"
