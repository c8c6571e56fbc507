package network.noxy

/** A decision's outcome (the relay's wire values, as C `noxy_outcome`). */
public enum class DecisionOutcome(public val value: Int) {
    /** Not answered yet (only from [NoxyClient.getDecisionOutcome]). */
    PENDING(0),

    /** The person approved. */
    APPROVED(1),

    /** The person rejected. */
    REJECTED(2),

    /** Nobody answered within the decision's TTL. */
    EXPIRED(3),
    ;

    public companion object {
        /** The outcome with C number [value], or null for a number this version does not know. */
        @JvmStatic
        public fun fromValue(value: Int): DecisionOutcome? = entries.firstOrNull { it.value == value }
    }
}

/** The relay's answer for one device (as C `noxy_delivery_state`). */
public enum class DeliveryStatus(public val value: Int) {
    /** The device was online and received the decision. */
    DELIVERED(0),

    /** The device was offline; the relay stored the decision and woke the device. */
    QUEUED(1),

    /** The relay knows no device to deliver to. */
    NO_DEVICES(2),

    /** The relay refused the decision (quota exhausted, app suspended, ...). */
    REJECTED(3),

    /** This device's delivery failed ([Delivery.errorCode] says why when the library failed it). */
    ERROR(4),
    ;

    public companion object {
        /** The status with C number [value], or null for a number this version does not know. */
        @JvmStatic
        public fun fromValue(value: Int): DeliveryStatus? = entries.firstOrNull { it.value == value }
    }
}

/** The app's quota status (as C `noxy_quota_state`). */
public enum class QuotaStatus(public val value: Int) {
    /** The app may route decisions. */
    ACTIVE(0),

    /** The app is suspended. */
    SUSPENDED(1),

    /** The app was deleted. */
    DELETED(2),
    ;

    public companion object {
        /** The status with C number [value], or null for a number this version does not know. */
        @JvmStatic
        public fun fromValue(value: Int): QuotaStatus? = entries.firstOrNull { it.value == value }
    }
}

/** The result of routing a decision to one device. */
public data class Delivery(
    /** The device this delivery was for. */
    val deviceId: String,
    /** The request id of this device's RouteDecision (kept across retries). */
    val requestId: String,
    /** The relay's answer, or [DeliveryStatus.ERROR] when the library could not deliver. */
    val status: DeliveryStatus,
    /** The decision id the relay answered for this device; null when the delivery failed in the library. */
    val decisionId: String?,
    /** Null when the relay answered for this device, else the error that ended its delivery. */
    val errorCode: NoxyErrorCode?,
    /** The message of [errorCode], or null. */
    val errorMessage: String?,
)

/** What [NoxyClient.sendDecision] returns. */
public data class SendResult(
    /** The decision id this client generated and sent to every device. */
    val decisionId: String,
    /** The decision id of the first delivery the relay accepted (the one to wait on); null when none was. */
    val acceptedDecisionId: String?,
    /** One result per device of the identity. */
    val deliveries: List<Delivery>,
    /** SHA-256 of the exact payload bytes (the UTF-8 of the payload string) every device received: 32 bytes. */
    val plaintextSha256: ByteArray,
) {
    override fun equals(other: Any?): Boolean =
        other is SendResult && decisionId == other.decisionId &&
            acceptedDecisionId == other.acceptedDecisionId && deliveries == other.deliveries &&
            plaintextSha256.contentEquals(other.plaintextSha256)

    override fun hashCode(): Int =
        ((decisionId.hashCode() * 31 + acceptedDecisionId.hashCode()) * 31 + deliveries.hashCode()) * 31 +
            plaintextSha256.contentHashCode()
}

/**
 * A decision's state: terminal (APPROVED, REJECTED, EXPIRED) from the waiting calls, possibly
 * [DecisionOutcome.PENDING] from [NoxyClient.getDecisionOutcome].
 */
public data class DecisionResult(
    /** The decision this result is about (for send-and-wait: the id that was waited on). */
    val decisionId: String,
    /** The outcome. */
    val outcome: DecisionOutcome,
    /** Whether the relay still waits for an answer. */
    val isPending: Boolean,
    /** For send-and-wait: SHA-256 of the exact payload bytes every device received (32 bytes); null otherwise. */
    val plaintextSha256: ByteArray?,
    /** For send-and-wait: the per-device results; empty otherwise. */
    val deliveries: List<Delivery>,
) {
    override fun equals(other: Any?): Boolean =
        other is DecisionResult && decisionId == other.decisionId && outcome == other.outcome &&
            isPending == other.isPending && deliveries == other.deliveries &&
            plaintextSha256 contentEquals other.plaintextSha256

    override fun hashCode(): Int =
        (((decisionId.hashCode() * 31 + outcome.hashCode()) * 31 + isPending.hashCode()) * 31 +
            deliveries.hashCode()) * 31 + plaintextSha256.contentHashCode()
}

/**
 * The app's quota. [total] and [remaining] are C `uint64_t`: read them with
 * `java.lang.Long.toUnsignedString` if they could exceed `Long.MAX_VALUE`.
 */
public data class Quota(
    /** The app's name. */
    val appName: String,
    /** Decisions allowed in total. */
    val total: Long,
    /** Decisions left. */
    val remaining: Long,
    /** Whether the app may route decisions. */
    val status: QuotaStatus,
)

/** A device registered for an identity. */
public data class Device(
    /** The relay's id of the device. */
    val deviceId: String,
    /** The device's classical (Ed25519) public key. */
    val publicKey: ByteArray,
    /** The device's ML-KEM-768 public key (1184 bytes when well-formed). */
    val pqPublicKey: ByteArray,
) {
    override fun equals(other: Any?): Boolean =
        other is Device && deviceId == other.deviceId && publicKey.contentEquals(other.publicKey) &&
            pqPublicKey.contentEquals(other.pqPublicKey)

    override fun hashCode(): Int =
        (deviceId.hashCode() * 31 + publicKey.contentHashCode()) * 31 + pqPublicKey.contentHashCode()
}

/**
 * Options for routing a decision; null fields keep the library's defaults (random ids, the
 * client's TTL). Java: `new SendOptions().withIdempotencyKey("k")`.
 */
public data class SendOptions(
    /**
     * Derives the decision id and request ids from the endpoint, identity, this key, the SHA-256
     * of the payload bytes and the TTL: re-sending the same decision returns the existing one.
     */
    val idempotencyKey: String? = null,
    /** The decision's TTL for this send, in seconds (at least 1). */
    val ttlSeconds: Int? = null,
) {
    /** A copy with [idempotencyKey] set. */
    public fun withIdempotencyKey(idempotencyKey: String?): SendOptions = copy(idempotencyKey = idempotencyKey)

    /** A copy with [ttlSeconds] set. */
    public fun withTtlSeconds(ttlSeconds: Int?): SendOptions = copy(ttlSeconds = ttlSeconds)
}

/**
 * How to wait for an outcome; null fields keep the library's defaults (400 ms first interval,
 * x1.6, at most 30 s between polls, at most 15 minutes in total, no jitter). Java:
 * `new WaitOptions().withMaxWaitMs(60_000L)`.
 */
public data class WaitOptions(
    /** The pause after the first poll, in milliseconds. */
    val initialIntervalMs: Long? = null,
    /** The growth of the pause between polls (at least 1). */
    val multiplier: Double? = null,
    /** The longest pause between polls, in milliseconds. */
    val maxIntervalMs: Long? = null,
    /** The whole wait's budget in milliseconds, then [NoxyErrorCode.WAIT_TIMED_OUT]; 0 gives up at once. */
    val maxWaitMs: Long? = null,
    /** The fraction in [0, 1] of each pause that is randomised downwards. */
    val jitter: Double? = null,
) {
    /** A copy with [initialIntervalMs] set. */
    public fun withInitialIntervalMs(initialIntervalMs: Long?): WaitOptions = copy(initialIntervalMs = initialIntervalMs)

    /** A copy with [multiplier] set. */
    public fun withMultiplier(multiplier: Double?): WaitOptions = copy(multiplier = multiplier)

    /** A copy with [maxIntervalMs] set. */
    public fun withMaxIntervalMs(maxIntervalMs: Long?): WaitOptions = copy(maxIntervalMs = maxIntervalMs)

    /** A copy with [maxWaitMs] set. */
    public fun withMaxWaitMs(maxWaitMs: Long?): WaitOptions = copy(maxWaitMs = maxWaitMs)

    /** A copy with [jitter] set. */
    public fun withJitter(jitter: Double?): WaitOptions = copy(jitter = jitter)
}
