// The C enums, with the C numbers. A number this version does not know is still passed through
// (an enum holds any int), never mapped to another value.
namespace Noxy
{
    /// <summary>Stable error codes: the C <c>NOXY_ERROR_*</c> numbers (<c>noxy_code</c>).</summary>
    public enum NoxyErrorCode
    {
        /// <summary>No error (a <see cref="Delivery"/> the relay answered).</summary>
        Ok = 0,
        /// <summary>An argument or a configuration value is invalid; the message names it.</summary>
        InvalidArgument = 1,
        /// <summary>The payload is not a UTF-8 JSON object, has a duplicate key, or is over 64 KiB.</summary>
        InvalidPayload = 2,
        /// <summary>The relay could not be reached, the connection was lost, or it answered UNAVAILABLE.</summary>
        Unavailable = 3,
        /// <summary>A call's deadline passed before the relay answered.</summary>
        DeadlineExceeded = 4,
        /// <summary>The relay did not accept the app token.</summary>
        Unauthenticated = 5,
        /// <summary>The relay refused the call for this app.</summary>
        PermissionDenied = 6,
        /// <summary>The relay rejected the decision or the call (quota exhausted, app suspended, ...).</summary>
        Rejected = 7,
        /// <summary>The relay knows no such decision for this identity.</summary>
        NotFound = 8,
        /// <summary>Waiting used up its whole budget without a final outcome.</summary>
        WaitTimedOut = 9,
        /// <summary>The operation was cancelled, or the client was closed or disposed.</summary>
        Cancelled = 10,
        /// <summary>No device accepted the decision, so there is nothing to wait on.</summary>
        NoDecisionId = 11,
        /// <summary>The relay's answer was malformed.</summary>
        Protocol = 12,
        /// <summary>A bug in the library, or an internal relay error.</summary>
        Internal = 13,
    }

    /// <summary>A decision's outcome (<c>noxy_outcome</c>).</summary>
    public enum DecisionOutcome
    {
        /// <summary>Not an outcome (<c>NOXY_OUTCOME_INVALID</c>).</summary>
        Invalid = -1,
        /// <summary>Not answered yet (only from <see cref="NoxyClient.GetDecisionOutcomeAsync"/>).</summary>
        Pending = 0,
        /// <summary>The person approved.</summary>
        Approved = 1,
        /// <summary>The person rejected.</summary>
        Rejected = 2,
        /// <summary>Nobody answered within the decision's TTL.</summary>
        Expired = 3,
    }

    /// <summary>The relay's answer for one device (<c>noxy_delivery_state</c>).</summary>
    public enum DeliveryStatus
    {
        /// <summary>Not a delivery state (<c>NOXY_DELIVERY_INVALID</c>).</summary>
        Invalid = -1,
        /// <summary>The device was online and received the decision.</summary>
        Delivered = 0,
        /// <summary>The device was offline; the relay stored the decision and woke the device.</summary>
        Queued = 1,
        /// <summary>The relay knows no device to deliver to.</summary>
        NoDevices = 2,
        /// <summary>The relay refused the decision (quota exhausted, app suspended, ...).</summary>
        Rejected = 3,
        /// <summary>This device's delivery failed (see <see cref="Delivery.ErrorCode"/>).</summary>
        Error = 4,
    }

    /// <summary>The app's quota status (<c>noxy_quota_state</c>).</summary>
    public enum QuotaStatus
    {
        /// <summary>Not a status (<c>NOXY_QUOTA_INVALID</c>).</summary>
        Invalid = -1,
        /// <summary>The app may route decisions.</summary>
        Active = 0,
        /// <summary>The app is suspended.</summary>
        Suspended = 1,
        /// <summary>The app was deleted.</summary>
        Deleted = 2,
    }

    /// <summary>Log levels, most severe first (<c>noxy_log_level</c>).</summary>
    public enum NoxyLogLevel
    {
        /// <summary>No logging.</summary>
        Off = 0,
        /// <summary>Errors.</summary>
        Error = 1,
        /// <summary>Warnings.</summary>
        Warn = 2,
        /// <summary>Informational events (retries, transient failures while waiting).</summary>
        Info = 3,
        /// <summary>Debugging detail.</summary>
        Debug = 4,
        /// <summary>Very verbose detail, including the HTTP/2 and TLS layers.</summary>
        Trace = 5,
    }
}
