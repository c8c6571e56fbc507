/* See shim.h. The noxyGo* functions are the Go trampolines (//export in callbacks.go). */
#include "shim.h"

#include "_cgo_export.h"

static void decision_cb(void *user_data, noxy_error *error, noxy_decision_result *result) {
    noxyGoDecisionDone((uintptr_t)user_data, error, result);
}

static void send_cb(void *user_data, noxy_error *error, noxy_send_result *result) {
    noxyGoSendDone((uintptr_t)user_data, error, result);
}

static void quota_cb(void *user_data, noxy_error *error, noxy_quota *result) {
    noxyGoQuotaDone((uintptr_t)user_data, error, result);
}

static void devices_cb(void *user_data, noxy_error *error, noxy_devices *result) {
    noxyGoDevicesDone((uintptr_t)user_data, error, result);
}

static void log_cb(noxy_log_level level, const char *message, void *user_data) {
    noxyGoLog((int32_t)level, (char *)message, (uintptr_t)user_data);
}

static void log_release(void *user_data) { noxyGoLogRelease((uintptr_t)user_data); }

noxy_error *noxy_go_send_and_wait(const noxy_client *client, const char *identity_id,
                                  const char *payload, size_t payload_len,
                                  const noxy_send_options *send_options,
                                  const noxy_wait_options *wait_options, uintptr_t handle,
                                  noxy_operation **op) {
    return noxy_send_and_wait_async(client, identity_id, payload, payload_len, send_options,
                                    wait_options, decision_cb, (void *)handle, op);
}

noxy_error *noxy_go_send(const noxy_client *client, const char *identity_id,
                         const char *payload, size_t payload_len,
                         const noxy_send_options *send_options, uintptr_t handle,
                         noxy_operation **op) {
    return noxy_send_decision_async(client, identity_id, payload, payload_len, send_options,
                                    send_cb, (void *)handle, op);
}

noxy_error *noxy_go_wait(const noxy_client *client, const char *decision_id,
                         const char *identity_id, const noxy_wait_options *wait_options,
                         uintptr_t handle, noxy_operation **op) {
    return noxy_wait_for_outcome_async(client, decision_id, identity_id, wait_options,
                                       decision_cb, (void *)handle, op);
}

noxy_error *noxy_go_get_outcome(const noxy_client *client, const char *decision_id,
                                const char *identity_id, uintptr_t handle, noxy_operation **op) {
    return noxy_get_decision_outcome_async(client, decision_id, identity_id, decision_cb,
                                           (void *)handle, op);
}

noxy_error *noxy_go_get_quota(const noxy_client *client, uintptr_t handle, noxy_operation **op) {
    return noxy_get_quota_async(client, quota_cb, (void *)handle, op);
}

noxy_error *noxy_go_get_devices(const noxy_client *client, const char *identity_id,
                                uintptr_t handle, noxy_operation **op) {
    return noxy_get_identity_devices_async(client, identity_id, devices_cb, (void *)handle, op);
}

noxy_error *noxy_go_config_set_logger(noxy_config *config, uintptr_t handle, int32_t max_level) {
    return noxy_config_set_log_callback(config, log_cb, (void *)handle, log_release, max_level);
}

noxy_error *noxy_go_set_process_logger(uintptr_t handle, int32_t max_level) {
    return noxy_set_log_callback(log_cb, (void *)handle, log_release, max_level);
}
