package network.noxy.internal

import com.sun.jna.Pointer
import network.noxy.LogLevel
import network.noxy.NoxyConfig
import network.noxy.NoxyErrorCode
import network.noxy.NoxyException
import network.noxy.SendOptions
import network.noxy.WaitOptions
import network.noxy.internal.NoxyNative as C

/** Builds the C option objects; each builder frees what it made if a setter fails. */
internal object NativeOptions {
    /** A new `noxy_config *` (the caller frees it with `noxy_config_free`). */
    fun config(config: NoxyConfig): Pointer {
        if (config.caPem != null && config.caPemFile != null) {
            throw NoxyException(NoxyErrorCode.INVALID_ARGUMENT, "ca_pem: set caPem or caPemFile, not both")
        }
        val endpoint = Utf8.cString(config.endpoint, "endpoint")
        val token = Utf8.cString(config.appToken, "app_token")
        val caPem = Utf8.cStringOrNull(config.caPem, "ca_pem")
        val caPemFile = Utf8.cStringOrNull(config.caPemFile, "ca_pem_path")
        val userAgent = Utf8.cStringOrNull(config.userAgent, "user_agent")
        val ttl = unsigned(config.decisionTtlSeconds, "decision_ttl_seconds")
        val maxAttempts = unsigned(config.maxAttempts, "max_attempts")
        val workers = unsigned(config.workerThreads, "worker_threads")
        val maxRequests = unsigned(config.maxConcurrentRequests, "max_concurrent_requests")

        val c = C.noxy_config_new() ?: throw OutOfMemoryError("noxy_config_new")
        try {
            Convert.check(C.noxy_config_set_endpoint(c, endpoint))
            Convert.check(C.noxy_config_set_app_token(c, token))
            if (caPem != null) Convert.check(C.noxy_config_set_ca_pem(c, caPem))
            if (caPemFile != null) Convert.check(C.noxy_config_set_ca_pem_file(c, caPemFile))
            if (ttl != null) Convert.check(C.noxy_config_set_decision_ttl_seconds(c, ttl))
            config.connectTimeoutMs?.let { Convert.check(C.noxy_config_set_connect_timeout_ms(c, it)) }
            config.requestTimeoutMs?.let { Convert.check(C.noxy_config_set_request_timeout_ms(c, it)) }
            if (maxAttempts != null) Convert.check(C.noxy_config_set_max_attempts(c, maxAttempts))
            config.retryBackoff?.let {
                Convert.check(C.noxy_config_set_retry_backoff(c, it.initialMs, it.multiplier, it.maxMs, it.jitter))
            }
            config.retryBudgetMs?.let { Convert.check(C.noxy_config_set_retry_budget_ms(c, it)) }
            if (workers != null) Convert.check(C.noxy_config_set_worker_threads(c, workers))
            if (maxRequests != null) Convert.check(C.noxy_config_set_max_concurrent_requests(c, maxRequests))
            if (config.sharedRuntime) Convert.check(C.noxy_config_set_shared_runtime(c, 1))
            if (userAgent != null) Convert.check(C.noxy_config_set_user_agent(c, userAgent))
            val logger = config.logger
            if (logger != null && config.logLevel != LogLevel.OFF) {
                // Last, so that only noxy_config_free (which releases it) can follow.
                val userData = Logging.register(logger)
                val error = C.noxy_config_set_log_callback(
                    c, Logging.callback, userData, Logging.release, config.logLevel.value,
                )
                if (error != null) {
                    Logging.unregister(userData) // on failure the library takes nothing
                    Convert.check(error)
                }
            }
            return c
        } catch (t: Throwable) {
            C.noxy_config_free(c)
            throw t
        }
    }

    /** `noxy_send_options *` for [options], or NULL for null (the caller frees it). */
    fun send(options: SendOptions?): Pointer? {
        if (options == null) return null
        val key = Utf8.cStringOrNull(options.idempotencyKey, "idempotency_key")
        val ttl = unsigned(options.ttlSeconds, "ttl_seconds")
        val o = C.noxy_send_options_new() ?: throw OutOfMemoryError("noxy_send_options_new")
        try {
            if (key != null) Convert.check(C.noxy_send_options_set_idempotency_key(o, key))
            if (ttl != null) Convert.check(C.noxy_send_options_set_ttl_seconds(o, ttl))
            return o
        } catch (t: Throwable) {
            C.noxy_send_options_free(o)
            throw t
        }
    }

    /** `noxy_wait_options *` for [options], or NULL for null (the caller frees it). */
    fun wait(options: WaitOptions?): Pointer? {
        if (options == null) return null
        val o = C.noxy_wait_options_new() ?: throw OutOfMemoryError("noxy_wait_options_new")
        try {
            options.initialIntervalMs?.let { Convert.check(C.noxy_wait_options_set_initial_interval_ms(o, it)) }
            options.multiplier?.let { Convert.check(C.noxy_wait_options_set_multiplier(o, it)) }
            options.maxIntervalMs?.let { Convert.check(C.noxy_wait_options_set_max_interval_ms(o, it)) }
            options.maxWaitMs?.let { Convert.check(C.noxy_wait_options_set_max_wait_ms(o, it)) }
            options.jitter?.let { Convert.check(C.noxy_wait_options_set_jitter(o, it)) }
            return o
        } catch (t: Throwable) {
            C.noxy_wait_options_free(o)
            throw t
        }
    }

    /** C takes `uint32_t`: a negative Int would arrive as a huge number, so it is refused here. */
    private fun unsigned(value: Int?, what: String): Int? {
        if (value != null && value < 0) {
            throw NoxyException(NoxyErrorCode.INVALID_ARGUMENT, "$what: must not be negative (got $value)")
        }
        return value
    }
}
