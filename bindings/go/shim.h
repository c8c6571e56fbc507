/* The C side of the Go binding's callbacks (shim.c). libnoxy calls the callbacks of shim.c
 * with the user_data it was given, which is a runtime/cgo.Handle (an integer), never a Go
 * pointer; they pass it on to the Go trampolines of callbacks.go. The starters below take
 * that handle as a uintptr_t and give libnoxy the matching callback. */
#ifndef NOXY_GO_SHIM_H
#define NOXY_GO_SHIM_H

#include <stddef.h>
#include <stdint.h>
#include <noxy.h>

noxy_error *noxy_go_send_and_wait(const noxy_client *client, const char *identity_id,
                                  const char *payload, size_t payload_len,
                                  const noxy_send_options *send_options,
                                  const noxy_wait_options *wait_options, uintptr_t handle,
                                  noxy_operation **op);
noxy_error *noxy_go_send(const noxy_client *client, const char *identity_id,
                         const char *payload, size_t payload_len,
                         const noxy_send_options *send_options, uintptr_t handle,
                         noxy_operation **op);
noxy_error *noxy_go_wait(const noxy_client *client, const char *decision_id,
                         const char *identity_id, const noxy_wait_options *wait_options,
                         uintptr_t handle, noxy_operation **op);
noxy_error *noxy_go_get_outcome(const noxy_client *client, const char *decision_id,
                                const char *identity_id, uintptr_t handle, noxy_operation **op);
noxy_error *noxy_go_get_quota(const noxy_client *client, uintptr_t handle, noxy_operation **op);
noxy_error *noxy_go_get_devices(const noxy_client *client, const char *identity_id,
                                uintptr_t handle, noxy_operation **op);
noxy_error *noxy_go_config_set_logger(noxy_config *config, uintptr_t handle, int32_t max_level);
noxy_error *noxy_go_set_process_logger(uintptr_t handle, int32_t max_level);

#endif
