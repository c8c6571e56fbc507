package network.noxy

/**
 * The stable error codes of libnoxy: [value] is the C `NOXY_ERROR_*` number (and the Rust
 * `noxy::ErrorCode` number), which never changes.
 */
public enum class NoxyErrorCode(public val value: Int) {
    /** An argument or configuration value is invalid; the message names it. */
    INVALID_ARGUMENT(1),

    /** The payload is not a UTF-8 JSON object, has a duplicate key, or is over 64 KiB. */
    INVALID_PAYLOAD(2),

    /** The relay could not be reached, the connection was lost, or it answered UNAVAILABLE. */
    UNAVAILABLE(3),

    /** A call's deadline passed. */
    DEADLINE_EXCEEDED(4),

    /** The relay did not accept the app token. */
    UNAUTHENTICATED(5),

    /** The relay refused the call for this app. */
    PERMISSION_DENIED(6),

    /** Quota exhausted, app suspended, rate limited. */
    REJECTED(7),

    /** No such decision for this identity in this app. */
    NOT_FOUND(8),

    /** The wait budget ran out before a final outcome. */
    WAIT_TIMED_OUT(9),

    /** Cancelled by the caller, or the client was closed; never anything else. */
    CANCELLED(10),

    /** The relay accepted no delivery: nothing to wait on (see [NoxyException.deliveries]). */
    NO_DECISION_ID(11),

    /** The relay's answer was malformed. */
    PROTOCOL(12),

    /** A bug in the library (a caught panic), or the relay's internal error. */
    INTERNAL(13),
    ;

    public companion object {
        /** The code with C number [value], or null for 0 (`NOXY_OK`) and numbers this version does not know. */
        @JvmStatic
        public fun fromValue(value: Int): NoxyErrorCode? = entries.firstOrNull { it.value == value }
    }
}

/**
 * An error reported by libnoxy: its [code], the library's message, and for
 * [NoxyErrorCode.NO_DECISION_ID], errors while waiting after a send, and a cancelled send, the
 * per-device results ([deliveries]; empty otherwise).
 *
 * A few errors are the binding's own, always with the code the library gives to the same
 * mistake: a string with an embedded NUL or an unpaired surrogate ([NoxyErrorCode.INVALID_ARGUMENT],
 * [NoxyErrorCode.INVALID_PAYLOAD] for the payload), a negative value where C takes an unsigned one
 * ([NoxyErrorCode.INVALID_ARGUMENT]), and a call on a closed client ([NoxyErrorCode.CANCELLED],
 * as libnoxy answers calls on a client closed with `noxy_client_close`).
 */
public class NoxyException @JvmOverloads constructor(
    public val code: NoxyErrorCode,
    message: String,
    public val deliveries: List<Delivery> = emptyList(),
) : RuntimeException(message) {
    override val message: String get() = super.message ?: ""

    override fun toString(): String = "NoxyException($code): $message"
}
