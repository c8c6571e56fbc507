/* The CNoxy module's header: libnoxy's C API. <noxy.h> is found through the include path that
 * pkg-config gives (`pkg-config --cflags noxy`). */
#ifndef CNOXY_SHIM_H
#define CNOXY_SHIM_H
#include <noxy.h>
#endif
