package network.noxy.internal

import com.sun.jna.Pointer
import network.noxy.DecisionOutcome
import network.noxy.DecisionResult
import network.noxy.Delivery
import network.noxy.DeliveryStatus
import network.noxy.Device
import network.noxy.NoxyErrorCode
import network.noxy.NoxyException
import network.noxy.Quota
import network.noxy.QuotaStatus
import network.noxy.SendResult
import network.noxy.internal.NoxyNative as C

/**
 * Copies what the C objects hold into Kotlin values. Every function borrows its argument: the
 * caller frees the C object (at once, right after).
 */
internal object Convert {
    /** An error as an exception; the caller frees [error]. */
    fun exception(error: Pointer): NoxyException {
        val raw = C.noxy_error_code(error)
        val message = Utf8.read(C.noxy_error_message(error)) ?: ""
        val deliveries = list(C.noxy_error_delivery_count(error).toLong()) { i ->
            C.noxy_error_delivery(error, SizeT(i))
        }
        val code = NoxyErrorCode.fromValue(raw)
            ?: return NoxyException(NoxyErrorCode.INTERNAL, "libnoxy error code $raw unknown to this binding: $message", deliveries)
        return NoxyException(code, message, deliveries)
    }

    /** Throws the error of a call that failed (freeing it); does nothing for NULL (success). */
    fun check(error: Pointer?) {
        if (error == null) return
        val exception = try {
            exception(error)
        } finally {
            C.noxy_error_free(error)
        }
        throw exception
    }

    fun sendResult(result: Pointer): SendResult {
        val digest = ByteArray(32)
        check(C.noxy_send_result_plaintext_sha256(result, digest) == 1) { "noxy_send_result_plaintext_sha256 failed" }
        return SendResult(
            decisionId = Utf8.read(C.noxy_send_result_decision_id(result)) ?: "",
            acceptedDecisionId = Utf8.read(C.noxy_send_result_accepted_decision_id(result)),
            deliveries = list(C.noxy_send_result_delivery_count(result).toLong()) { i ->
                C.noxy_send_result_delivery(result, SizeT(i))
            },
            plaintextSha256 = digest,
        )
    }

    fun decisionResult(result: Pointer): DecisionResult {
        val digest = ByteArray(32)
        val hasDigest = C.noxy_decision_result_plaintext_sha256(result, digest) == 1
        val raw = C.noxy_decision_result_outcome(result)
        return DecisionResult(
            decisionId = Utf8.read(C.noxy_decision_result_decision_id(result)) ?: "",
            outcome = DecisionOutcome.fromValue(raw) ?: throw unknown("outcome", raw),
            isPending = C.noxy_decision_result_is_pending(result) == 1,
            plaintextSha256 = if (hasDigest) digest else null,
            deliveries = list(C.noxy_decision_result_delivery_count(result).toLong()) { i ->
                C.noxy_decision_result_delivery(result, SizeT(i))
            },
        )
    }

    fun quota(quota: Pointer): Quota {
        val raw = C.noxy_quota_status(quota)
        return Quota(
            appName = Utf8.read(C.noxy_quota_app_name(quota)) ?: "",
            total = C.noxy_quota_total(quota),
            remaining = C.noxy_quota_remaining(quota),
            status = QuotaStatus.fromValue(raw) ?: throw unknown("quota status", raw),
        )
    }

    fun devices(devices: Pointer): List<Device> {
        val count = C.noxy_devices_count(devices).toLong()
        return List(count.toInt()) { i ->
            val index = SizeT(i.toLong())
            Device(
                deviceId = Utf8.read(C.noxy_devices_device_id(devices, index)) ?: "",
                publicKey = bytes { len -> C.noxy_devices_public_key(devices, index, len) },
                pqPublicKey = bytes { len -> C.noxy_devices_pq_public_key(devices, index, len) },
            )
        }
    }

    private fun bytes(get: (SizeTByReference) -> Pointer?): ByteArray {
        val len = SizeTByReference()
        val data = get(len) ?: return ByteArray(0)
        return data.getByteArray(0, len.value.toInt())
    }

    private fun delivery(delivery: Pointer): Delivery {
        val raw = C.noxy_delivery_status(delivery)
        val rawCode = C.noxy_delivery_error_code(delivery)
        return Delivery(
            deviceId = Utf8.read(C.noxy_delivery_device_id(delivery)) ?: "",
            requestId = Utf8.read(C.noxy_delivery_request_id(delivery)) ?: "",
            status = DeliveryStatus.fromValue(raw) ?: throw unknown("delivery status", raw),
            decisionId = Utf8.read(C.noxy_delivery_decision_id(delivery)),
            errorCode = if (rawCode == 0) null else NoxyErrorCode.fromValue(rawCode) ?: NoxyErrorCode.INTERNAL,
            errorMessage = Utf8.read(C.noxy_delivery_error_message(delivery)),
        )
    }

    private inline fun list(count: Long, at: (Long) -> Pointer?): List<Delivery> {
        if (count == 0L) return emptyList()
        val out = ArrayList<Delivery>(count.toInt())
        for (i in 0 until count) {
            out.add(delivery(at(i) ?: error("delivery $i of $count is NULL")))
        }
        return out
    }

    private fun unknown(what: String, value: Int) =
        NoxyException(NoxyErrorCode.INTERNAL, "libnoxy returned $what $value, unknown to this binding")
}
