package network.noxy.internal

import com.sun.jna.Callback
import com.sun.jna.IntegerType
import com.sun.jna.Native
import com.sun.jna.NativeLibrary
import com.sun.jna.Pointer
import com.sun.jna.ptr.PointerByReference

/**
 * C `size_t`: JNA's exact mapping is an unsigned integer of `Native.SIZE_T_SIZE` bytes (8 on
 * Linux x86-64 and every 64-bit platform, 4 on 32-bit Android ABIs), not `NativeLong` (C `long`,
 * which differs from `size_t` on 64-bit Windows).
 */
internal class SizeT(value: Long) : IntegerType(Native.SIZE_T_SIZE, value, true) {
    /** JNA creates instances reflectively when it converts a native return value. */
    @Suppress("unused")
    constructor() : this(0)

    override fun toByte(): Byte = toLong().toByte()

    override fun toShort(): Short = toLong().toShort()
}

/**
 * `noxy_decision_callback`, `noxy_send_callback`, `noxy_quota_callback` and
 * `noxy_devices_callback`: all four are `void (*)(void *user_data, T *error, U *result)`, so one
 * JNA callback type serves them.
 */
internal fun interface CompletionCallback : Callback {
    fun invoke(userData: Pointer?, error: Pointer?, result: Pointer?)
}

/** `noxy_log_callback`: `void (*)(int32_t level, const char *message, void *user_data)`. */
internal fun interface LogCallback : Callback {
    fun invoke(level: Int, message: Pointer?, userData: Pointer?)
}

/** `noxy_free_user_data`: `void (*)(void *user_data)`. */
internal fun interface FreeUserDataCallback : Callback {
    fun invoke(userData: Pointer?)
}

/**
 * The C ABI of `include/noxy.h`, bound with JNA direct mapping (`Native.register`): each
 * `external` function below becomes a JNI native method that calls the C function, without the
 * reflection and proxy of an interface mapping on every call (the choice UniFFI's Kotlin
 * bindings made for the same reason).
 *
 * Type mapping: enums, flags and `int32_t`/`uint32_t` are `Int`; `uint64_t` is `Long`; `size_t`
 * is [SizeT]; every C pointer is `Pointer` (strings are read from it as UTF-8 explicitly, so
 * nothing depends on `jna.encoding`); strings and payloads passed in are NUL-terminated /
 * length-delimited UTF-8 `ByteArray`s made by `Utf8`; out-parameters are `PointerByReference`.
 *
 * Loading: `NativeLibrary.getInstance("noxy")` searches `jna.library.path`, then the system
 * library path, then the class path under JNA's resource prefix (`linux-x86-64/libnoxy.so`
 * inside the jar), extracting it to a temporary file.
 */
@Suppress("FunctionName", "LongParameterList")
internal object NoxyNative {
    /** The library this binding is registered against. */
    val library: NativeLibrary = NativeLibrary.getInstance("noxy")

    init {
        Native.register(NoxyNative::class.java, library)
        val version = noxy_version()?.getString(0, "UTF-8") ?: ""
        if (!compatible(version, network.noxy.Noxy.BINDING_VERSION)) {
            throw UnsatisfiedLinkError(
                "libnoxy $version at ${library.file ?: library.name}: this binding needs " +
                    network.noxy.Noxy.BINDING_VERSION.substringBeforeLast('.') + ".x",
            )
        }
    }

    /** The ABI changes with the major version, and in 0.x with the minor: those must match. */
    fun compatible(library: String, binding: String): Boolean {
        val lib = library.split('.')
        val our = binding.split('.')
        if (lib.size != 3 || lib[0] != our[0]) return false
        return our[0] != "0" || lib[1] == our[1]
    }

    // ---- version, names ----
    external fun noxy_version(): Pointer?
    external fun noxy_error_code_name(code: Int): Pointer?

    // ---- errors ----
    external fun noxy_error_code(error: Pointer?): Int
    external fun noxy_error_message(error: Pointer?): Pointer?
    external fun noxy_error_delivery_count(error: Pointer?): SizeT
    external fun noxy_error_delivery(error: Pointer?, index: SizeT): Pointer?
    external fun noxy_error_free(error: Pointer?)

    // ---- configuration ----
    external fun noxy_config_new(): Pointer?
    external fun noxy_config_free(config: Pointer?)
    external fun noxy_config_set_endpoint(config: Pointer?, endpoint: ByteArray?): Pointer?
    external fun noxy_config_set_app_token(config: Pointer?, appToken: ByteArray?): Pointer?
    external fun noxy_config_set_decision_ttl_seconds(config: Pointer?, seconds: Int): Pointer?
    external fun noxy_config_set_ca_pem(config: Pointer?, caPem: ByteArray?): Pointer?
    external fun noxy_config_set_ca_pem_file(config: Pointer?, path: ByteArray?): Pointer?
    external fun noxy_config_set_connect_timeout_ms(config: Pointer?, timeoutMs: Long): Pointer?
    external fun noxy_config_set_request_timeout_ms(config: Pointer?, timeoutMs: Long): Pointer?
    external fun noxy_config_set_max_attempts(config: Pointer?, maxAttempts: Int): Pointer?
    external fun noxy_config_set_retry_backoff(
        config: Pointer?,
        initialMs: Long,
        multiplier: Double,
        maxMs: Long,
        jitter: Double,
    ): Pointer?
    external fun noxy_config_set_worker_threads(config: Pointer?, workerThreads: Int): Pointer?
    external fun noxy_config_set_retry_budget_ms(config: Pointer?, budgetMs: Long): Pointer?
    external fun noxy_config_set_max_concurrent_requests(config: Pointer?, maxRequests: Int): Pointer?
    external fun noxy_config_set_shared_runtime(config: Pointer?, shared: Int): Pointer?
    external fun noxy_config_set_user_agent(config: Pointer?, userAgent: ByteArray?): Pointer?
    external fun noxy_config_set_log_callback(
        config: Pointer?,
        callback: LogCallback?,
        userData: Pointer?,
        freeUserData: FreeUserDataCallback?,
        maxLevel: Int,
    ): Pointer?
    external fun noxy_set_log_callback(
        callback: LogCallback?,
        userData: Pointer?,
        freeUserData: FreeUserDataCallback?,
        maxLevel: Int,
    ): Pointer?

    // ---- client ----
    external fun noxy_client_new(config: Pointer?, outClient: PointerByReference?): Pointer?
    external fun noxy_client_close(client: Pointer?): Pointer?
    external fun noxy_client_drain(client: Pointer?, timeoutMs: Long): Pointer?
    external fun noxy_free(client: Pointer?)

    // ---- options ----
    external fun noxy_send_options_new(): Pointer?
    external fun noxy_send_options_free(options: Pointer?)
    external fun noxy_send_options_set_idempotency_key(options: Pointer?, key: ByteArray?): Pointer?
    external fun noxy_send_options_set_ttl_seconds(options: Pointer?, ttlSeconds: Int): Pointer?
    external fun noxy_wait_options_new(): Pointer?
    external fun noxy_wait_options_free(options: Pointer?)
    external fun noxy_wait_options_set_initial_interval_ms(options: Pointer?, intervalMs: Long): Pointer?
    external fun noxy_wait_options_set_multiplier(options: Pointer?, multiplier: Double): Pointer?
    external fun noxy_wait_options_set_max_interval_ms(options: Pointer?, intervalMs: Long): Pointer?
    external fun noxy_wait_options_set_max_wait_ms(options: Pointer?, maxWaitMs: Long): Pointer?
    external fun noxy_wait_options_set_jitter(options: Pointer?, jitter: Double): Pointer?

    // ---- async calls ----
    external fun noxy_send_decision_async(
        client: Pointer?,
        identityId: ByteArray?,
        payloadJson: ByteArray?,
        payloadLen: SizeT,
        sendOptions: Pointer?,
        callback: CompletionCallback?,
        userData: Pointer?,
        outOperation: PointerByReference?,
    ): Pointer?
    external fun noxy_send_and_wait_async(
        client: Pointer?,
        identityId: ByteArray?,
        payloadJson: ByteArray?,
        payloadLen: SizeT,
        sendOptions: Pointer?,
        waitOptions: Pointer?,
        callback: CompletionCallback?,
        userData: Pointer?,
        outOperation: PointerByReference?,
    ): Pointer?
    external fun noxy_wait_for_outcome_async(
        client: Pointer?,
        decisionId: ByteArray?,
        identityId: ByteArray?,
        waitOptions: Pointer?,
        callback: CompletionCallback?,
        userData: Pointer?,
        outOperation: PointerByReference?,
    ): Pointer?
    external fun noxy_get_decision_outcome_async(
        client: Pointer?,
        decisionId: ByteArray?,
        identityId: ByteArray?,
        callback: CompletionCallback?,
        userData: Pointer?,
        outOperation: PointerByReference?,
    ): Pointer?
    external fun noxy_get_quota_async(
        client: Pointer?,
        callback: CompletionCallback?,
        userData: Pointer?,
        outOperation: PointerByReference?,
    ): Pointer?
    external fun noxy_get_identity_devices_async(
        client: Pointer?,
        identityId: ByteArray?,
        callback: CompletionCallback?,
        userData: Pointer?,
        outOperation: PointerByReference?,
    ): Pointer?

    // ---- operations ----
    external fun noxy_operation_cancel(operation: Pointer?): Pointer?
    external fun noxy_operation_free(operation: Pointer?)

    // ---- deliveries ----
    external fun noxy_delivery_device_id(delivery: Pointer?): Pointer?
    external fun noxy_delivery_request_id(delivery: Pointer?): Pointer?
    external fun noxy_delivery_status(delivery: Pointer?): Int
    external fun noxy_delivery_decision_id(delivery: Pointer?): Pointer?
    external fun noxy_delivery_error_code(delivery: Pointer?): Int
    external fun noxy_delivery_error_message(delivery: Pointer?): Pointer?

    // ---- send results ----
    external fun noxy_send_result_decision_id(result: Pointer?): Pointer?
    external fun noxy_send_result_accepted_decision_id(result: Pointer?): Pointer?
    external fun noxy_send_result_plaintext_sha256(result: Pointer?, out: ByteArray?): Int
    external fun noxy_send_result_delivery_count(result: Pointer?): SizeT
    external fun noxy_send_result_delivery(result: Pointer?, index: SizeT): Pointer?
    external fun noxy_send_result_free(result: Pointer?)

    // ---- decision results ----
    external fun noxy_decision_result_outcome(result: Pointer?): Int
    external fun noxy_decision_result_is_pending(result: Pointer?): Int
    external fun noxy_decision_result_decision_id(result: Pointer?): Pointer?
    external fun noxy_decision_result_plaintext_sha256(result: Pointer?, out: ByteArray?): Int
    external fun noxy_decision_result_delivery_count(result: Pointer?): SizeT
    external fun noxy_decision_result_delivery(result: Pointer?, index: SizeT): Pointer?
    external fun noxy_decision_result_free(result: Pointer?)

    // ---- quota ----
    external fun noxy_quota_app_name(quota: Pointer?): Pointer?
    external fun noxy_quota_total(quota: Pointer?): Long
    external fun noxy_quota_remaining(quota: Pointer?): Long
    external fun noxy_quota_status(quota: Pointer?): Int
    external fun noxy_quota_free(quota: Pointer?)

    // ---- devices ----
    external fun noxy_devices_count(devices: Pointer?): SizeT
    external fun noxy_devices_device_id(devices: Pointer?, index: SizeT): Pointer?
    external fun noxy_devices_public_key(devices: Pointer?, index: SizeT, outLen: SizeTByReference?): Pointer?
    external fun noxy_devices_pq_public_key(devices: Pointer?, index: SizeT, outLen: SizeTByReference?): Pointer?
    external fun noxy_devices_free(devices: Pointer?)
}

/** A `size_t *` out-parameter. */
internal class SizeTByReference : com.sun.jna.ptr.ByReference(Native.SIZE_T_SIZE) {
    val value: Long
        get() = if (Native.SIZE_T_SIZE == 8) pointer.getLong(0) else pointer.getInt(0).toLong() and 0xffff_ffffL
}
