// The C ABI of libnoxy (include/noxy.h), declared for P/Invoke.
//
// Mapping rules, the same for every declaration:
// - every C enum and flag is int32_t in the ABI, so int here; size_t is UIntPtr; uint64_t is
//   ulong; uint32_t is uint;
// - strings go in as byte[] that the binding encoded as UTF-8 and terminated with a NUL itself
//   (Utf8.Encode): the default string marshalling is not UTF-8 on every runtime;
// - payloads go in as byte[] plus their length, with no terminating NUL;
// - every object the library owns and the caller frees is a SafeHandle (Handles.cs), so the
//   runtime keeps it alive while a call uses it and frees it exactly once; objects borrowed
//   from another object (a delivery, strings, key bytes) are IntPtr, read before their owner is
//   freed;
// - returned noxy_error * become ErrorHandle: invalid (NULL) means success.
using System;
using System.Runtime.InteropServices;

namespace Noxy
{
    internal static class Native
    {
        private const string Lib = "noxy";

        /// <summary>
        /// The shape of noxy_decision_callback, noxy_send_callback, noxy_quota_callback and
        /// noxy_devices_callback: (user_data, error or NULL, result or NULL), exactly one of
        /// the two non-NULL, both owned by the callback.
        /// </summary>
        [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
        internal delegate void CompletionCallback(IntPtr userData, IntPtr error, IntPtr result);

        /// <summary>noxy_log_callback: (level, borrowed NUL-terminated message, user_data).</summary>
        [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
        internal delegate void LogCallback(int level, IntPtr message, IntPtr userData);

        /// <summary>noxy_free_user_data.</summary>
        [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
        internal delegate void FreeUserData(IntPtr userData);

        // ---- version, names ----
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern IntPtr noxy_version();

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern IntPtr noxy_error_code_name(int code);

        // ---- errors ----
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int noxy_error_code(ErrorHandle error);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern IntPtr noxy_error_message(ErrorHandle error);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern UIntPtr noxy_error_delivery_count(ErrorHandle error);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern IntPtr noxy_error_delivery(ErrorHandle error, UIntPtr index);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern void noxy_error_free(IntPtr error);

        // ---- configuration ----
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern ConfigHandle noxy_config_new();

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern void noxy_config_free(IntPtr config);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern ErrorHandle noxy_config_set_endpoint(ConfigHandle config, byte[] endpoint);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern ErrorHandle noxy_config_set_app_token(ConfigHandle config, byte[] appToken);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern ErrorHandle noxy_config_set_decision_ttl_seconds(ConfigHandle config, uint seconds);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern ErrorHandle noxy_config_set_ca_pem(ConfigHandle config, byte[] caPem);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern ErrorHandle noxy_config_set_ca_pem_file(ConfigHandle config, byte[] caPemPath);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern ErrorHandle noxy_config_set_connect_timeout_ms(ConfigHandle config, ulong timeoutMs);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern ErrorHandle noxy_config_set_request_timeout_ms(ConfigHandle config, ulong timeoutMs);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern ErrorHandle noxy_config_set_max_attempts(ConfigHandle config, uint maxAttempts);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern ErrorHandle noxy_config_set_retry_backoff(ConfigHandle config, ulong initialMs,
            double multiplier, ulong maxMs, double jitter);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern ErrorHandle noxy_config_set_worker_threads(ConfigHandle config, uint workerThreads);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern ErrorHandle noxy_config_set_retry_budget_ms(ConfigHandle config, ulong budgetMs);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern ErrorHandle noxy_config_set_max_concurrent_requests(ConfigHandle config, uint maxRequests);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern ErrorHandle noxy_config_set_shared_runtime(ConfigHandle config, int shared);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern ErrorHandle noxy_config_set_log_callback(ConfigHandle config, LogCallback callback,
            IntPtr userData, FreeUserData freeUserData, int maxLevel);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern ErrorHandle noxy_config_set_user_agent(ConfigHandle config, byte[] userAgent);

        // ---- wait options ----
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern WaitOptionsHandle noxy_wait_options_new();

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern void noxy_wait_options_free(IntPtr options);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern ErrorHandle noxy_wait_options_set_initial_interval_ms(WaitOptionsHandle options, ulong intervalMs);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern ErrorHandle noxy_wait_options_set_multiplier(WaitOptionsHandle options, double multiplier);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern ErrorHandle noxy_wait_options_set_max_interval_ms(WaitOptionsHandle options, ulong intervalMs);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern ErrorHandle noxy_wait_options_set_max_wait_ms(WaitOptionsHandle options, ulong maxWaitMs);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern ErrorHandle noxy_wait_options_set_jitter(WaitOptionsHandle options, double jitter);

        // ---- send options ----
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern SendOptionsHandle noxy_send_options_new();

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern void noxy_send_options_free(IntPtr options);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern ErrorHandle noxy_send_options_set_idempotency_key(SendOptionsHandle options, byte[] key);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern ErrorHandle noxy_send_options_set_ttl_seconds(SendOptionsHandle options, uint ttlSeconds);

        // ---- client ----
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern ErrorHandle noxy_client_new(ConfigHandle config, out ClientHandle client);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern ErrorHandle noxy_client_close(ClientHandle client);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern ErrorHandle noxy_client_drain(ClientHandle client, ulong timeoutMs);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern void noxy_free(IntPtr client);

        // ---- blocking calls ----
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern ErrorHandle noxy_send_and_wait(ClientHandle client, byte[] identityId,
            byte[] payloadJson, UIntPtr payloadLen, SendOptionsHandle sendOptions, WaitOptionsHandle waitOptions,
            out DecisionResultHandle result);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern ErrorHandle noxy_send_decision(ClientHandle client, byte[] identityId,
            byte[] payloadJson, UIntPtr payloadLen, SendOptionsHandle sendOptions, out SendResultHandle result);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern ErrorHandle noxy_wait_for_outcome(ClientHandle client, byte[] decisionId,
            byte[] identityId, WaitOptionsHandle waitOptions, out DecisionResultHandle result);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern ErrorHandle noxy_get_decision_outcome(ClientHandle client, byte[] decisionId,
            byte[] identityId, out DecisionResultHandle result);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern ErrorHandle noxy_get_quota(ClientHandle client, out QuotaHandle quota);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern ErrorHandle noxy_get_identity_devices(ClientHandle client, byte[] identityId,
            out DevicesHandle devices);

        // ---- async calls ----
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern ErrorHandle noxy_send_and_wait_async(ClientHandle client, byte[] identityId,
            byte[] payloadJson, UIntPtr payloadLen, SendOptionsHandle sendOptions, WaitOptionsHandle waitOptions,
            CompletionCallback callback, IntPtr userData, out OperationHandle operation);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern ErrorHandle noxy_send_decision_async(ClientHandle client, byte[] identityId,
            byte[] payloadJson, UIntPtr payloadLen, SendOptionsHandle sendOptions,
            CompletionCallback callback, IntPtr userData, out OperationHandle operation);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern ErrorHandle noxy_wait_for_outcome_async(ClientHandle client, byte[] decisionId,
            byte[] identityId, WaitOptionsHandle waitOptions,
            CompletionCallback callback, IntPtr userData, out OperationHandle operation);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern ErrorHandle noxy_get_decision_outcome_async(ClientHandle client, byte[] decisionId,
            byte[] identityId, CompletionCallback callback, IntPtr userData, out OperationHandle operation);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern ErrorHandle noxy_get_quota_async(ClientHandle client,
            CompletionCallback callback, IntPtr userData, out OperationHandle operation);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern ErrorHandle noxy_get_identity_devices_async(ClientHandle client, byte[] identityId,
            CompletionCallback callback, IntPtr userData, out OperationHandle operation);

        // ---- operations ----
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern ErrorHandle noxy_operation_cancel(OperationHandle operation);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern void noxy_operation_free(IntPtr operation);

        // ---- deliveries (borrowed from their owner) ----
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern IntPtr noxy_delivery_device_id(IntPtr delivery);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern IntPtr noxy_delivery_request_id(IntPtr delivery);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int noxy_delivery_status(IntPtr delivery);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern IntPtr noxy_delivery_decision_id(IntPtr delivery);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int noxy_delivery_error_code(IntPtr delivery);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern IntPtr noxy_delivery_error_message(IntPtr delivery);

        // ---- send results ----
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern IntPtr noxy_send_result_decision_id(SendResultHandle result);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern IntPtr noxy_send_result_accepted_decision_id(SendResultHandle result);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int noxy_send_result_plaintext_sha256(SendResultHandle result, [Out] byte[] digest);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern UIntPtr noxy_send_result_delivery_count(SendResultHandle result);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern IntPtr noxy_send_result_delivery(SendResultHandle result, UIntPtr index);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern void noxy_send_result_free(IntPtr result);

        // ---- decision results ----
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int noxy_decision_result_outcome(DecisionResultHandle result);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int noxy_decision_result_is_pending(DecisionResultHandle result);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern IntPtr noxy_decision_result_decision_id(DecisionResultHandle result);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int noxy_decision_result_plaintext_sha256(DecisionResultHandle result, [Out] byte[] digest);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern UIntPtr noxy_decision_result_delivery_count(DecisionResultHandle result);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern IntPtr noxy_decision_result_delivery(DecisionResultHandle result, UIntPtr index);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern void noxy_decision_result_free(IntPtr result);

        // ---- quota ----
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern IntPtr noxy_quota_app_name(QuotaHandle quota);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern ulong noxy_quota_total(QuotaHandle quota);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern ulong noxy_quota_remaining(QuotaHandle quota);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int noxy_quota_status(QuotaHandle quota);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern void noxy_quota_free(IntPtr quota);

        // ---- devices ----
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern UIntPtr noxy_devices_count(DevicesHandle devices);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern IntPtr noxy_devices_device_id(DevicesHandle devices, UIntPtr index);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern IntPtr noxy_devices_public_key(DevicesHandle devices, UIntPtr index, out UIntPtr length);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern IntPtr noxy_devices_pq_public_key(DevicesHandle devices, UIntPtr index, out UIntPtr length);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern void noxy_devices_free(IntPtr devices);
    }
}
