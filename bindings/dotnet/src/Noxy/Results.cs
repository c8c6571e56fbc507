// Immutable results. Each is copied out of its C object while that object is alive; the C
// object is freed right after (by the caller of the From method, through its SafeHandle).
using System;
using System.Collections.Generic;
using System.Collections.ObjectModel;
using System.Runtime.InteropServices;

namespace Noxy
{
    /// <summary>The result of routing a decision to one device.</summary>
    public sealed class Delivery
    {
        internal static readonly IReadOnlyList<Delivery> None = new ReadOnlyCollection<Delivery>(new Delivery[0]);

        private Delivery(string deviceId, string requestId, DeliveryStatus status, string decisionId,
            NoxyErrorCode errorCode, string errorMessage)
        {
            DeviceId = deviceId;
            RequestId = requestId;
            Status = status;
            DecisionId = decisionId;
            ErrorCode = errorCode;
            ErrorMessage = errorMessage;
        }

        /// <summary>The device this delivery was for.</summary>
        public string DeviceId { get; private set; }

        /// <summary>The request id of this device's RouteDecision (kept across retries).</summary>
        public string RequestId { get; private set; }

        /// <summary>The relay's answer; <see cref="DeliveryStatus.Error"/> also when the library could not deliver.</summary>
        public DeliveryStatus Status { get; private set; }

        /// <summary>The decision id the relay answered for this device; null when the delivery failed in the library.</summary>
        public string DecisionId { get; private set; }

        /// <summary><see cref="NoxyErrorCode.Ok"/> when the relay answered for this device, else what ended its delivery.</summary>
        public NoxyErrorCode ErrorCode { get; private set; }

        /// <summary>The message of this device's error; null when there is none.</summary>
        public string ErrorMessage { get; private set; }

        /// <inheritdoc/>
        public override string ToString()
        {
            return string.Format("{0}: {1}", DeviceId, Status);
        }

        /// <summary>Copies a delivery borrowed from a live owner.</summary>
        internal static Delivery From(IntPtr delivery)
        {
            return new Delivery(
                Utf8.Decode(Native.noxy_delivery_device_id(delivery)),
                Utf8.Decode(Native.noxy_delivery_request_id(delivery)),
                (DeliveryStatus)Native.noxy_delivery_status(delivery),
                Utf8.Decode(Native.noxy_delivery_decision_id(delivery)),
                (NoxyErrorCode)Native.noxy_delivery_error_code(delivery),
                Utf8.Decode(Native.noxy_delivery_error_message(delivery)));
        }

        /// <summary>Copies <paramref name="count"/> deliveries given by an accessor of a live owner.</summary>
        internal static IReadOnlyList<Delivery> List(UIntPtr count, Func<UIntPtr, IntPtr> at)
        {
            ulong n = count.ToUInt64();
            if (n == 0)
            {
                return None;
            }
            var list = new Delivery[n];
            for (ulong i = 0; i < n; i++)
            {
                list[i] = From(at(new UIntPtr(i)));
            }
            return new ReadOnlyCollection<Delivery>(list);
        }
    }

    /// <summary>What <see cref="NoxyClient.SendDecisionAsync(string, string, SendOptions, System.Threading.CancellationToken)"/> returns.</summary>
    public sealed class SendResult
    {
        private SendResult(string decisionId, string acceptedDecisionId, IReadOnlyList<byte> plaintextSha256,
            IReadOnlyList<Delivery> deliveries)
        {
            DecisionId = decisionId;
            AcceptedDecisionId = acceptedDecisionId;
            PlaintextSha256 = plaintextSha256;
            Deliveries = deliveries;
        }

        /// <summary>The decision id this client generated and sent to every device.</summary>
        public string DecisionId { get; private set; }

        /// <summary>The decision id of the first delivery the relay accepted (the one to wait on); null when no device accepted it.</summary>
        public string AcceptedDecisionId { get; private set; }

        /// <summary>The SHA-256 (32 bytes) of the exact payload bytes every device received.</summary>
        public IReadOnlyList<byte> PlaintextSha256 { get; private set; }

        /// <summary>One result per device of the identity.</summary>
        public IReadOnlyList<Delivery> Deliveries { get; private set; }

        internal static SendResult From(SendResultHandle result)
        {
            var digest = new byte[32];
            if (Native.noxy_send_result_plaintext_sha256(result, digest) != 1)
            {
                throw new InvalidOperationException("noxy_send_result_plaintext_sha256 gave no digest");
            }
            return new SendResult(
                Utf8.Decode(Native.noxy_send_result_decision_id(result)),
                Utf8.Decode(Native.noxy_send_result_accepted_decision_id(result)),
                Array.AsReadOnly(digest),
                Delivery.List(Native.noxy_send_result_delivery_count(result),
                    i => Native.noxy_send_result_delivery(result, i)));
        }
    }

    /// <summary>A decision's state: final from the waiting calls, possibly pending from <see cref="NoxyClient.GetDecisionOutcomeAsync"/>.</summary>
    public sealed class DecisionResult
    {
        private DecisionResult(string decisionId, DecisionOutcome outcome, bool isPending,
            IReadOnlyList<byte> plaintextSha256, IReadOnlyList<Delivery> deliveries)
        {
            DecisionId = decisionId;
            Outcome = outcome;
            IsPending = isPending;
            PlaintextSha256 = plaintextSha256;
            Deliveries = deliveries;
        }

        /// <summary>The decision id this result is about (for send-and-wait: the id that was waited on).</summary>
        public string DecisionId { get; private set; }

        /// <summary>APPROVED, REJECTED or EXPIRED; PENDING only from <see cref="NoxyClient.GetDecisionOutcomeAsync"/>.</summary>
        public DecisionOutcome Outcome { get; private set; }

        /// <summary>Whether the relay still waits for an answer.</summary>
        public bool IsPending { get; private set; }

        /// <summary>For send-and-wait: the SHA-256 (32 bytes) of the exact payload bytes every device received; null for the other calls.</summary>
        public IReadOnlyList<byte> PlaintextSha256 { get; private set; }

        /// <summary>For send-and-wait: one result per device; empty for the other calls.</summary>
        public IReadOnlyList<Delivery> Deliveries { get; private set; }

        /// <inheritdoc/>
        public override string ToString()
        {
            return string.Format("decision {0}: {1}", DecisionId, Outcome);
        }

        internal static DecisionResult From(DecisionResultHandle result)
        {
            var digest = new byte[32];
            int hasDigest = Native.noxy_decision_result_plaintext_sha256(result, digest);
            return new DecisionResult(
                Utf8.Decode(Native.noxy_decision_result_decision_id(result)),
                (DecisionOutcome)Native.noxy_decision_result_outcome(result),
                Native.noxy_decision_result_is_pending(result) == 1,
                hasDigest == 1 ? Array.AsReadOnly(digest) : null,
                Delivery.List(Native.noxy_decision_result_delivery_count(result),
                    i => Native.noxy_decision_result_delivery(result, i)));
        }
    }

    /// <summary>The app's quota.</summary>
    public sealed class Quota
    {
        private Quota(string appName, ulong total, ulong remaining, QuotaStatus status)
        {
            AppName = appName;
            Total = total;
            Remaining = remaining;
            Status = status;
        }

        /// <summary>The app's name.</summary>
        public string AppName { get; private set; }

        /// <summary>Decisions allowed in total.</summary>
        public ulong Total { get; private set; }

        /// <summary>Decisions left.</summary>
        public ulong Remaining { get; private set; }

        /// <summary>Whether the app may route decisions.</summary>
        public QuotaStatus Status { get; private set; }

        internal static Quota From(QuotaHandle quota)
        {
            return new Quota(
                Utf8.Decode(Native.noxy_quota_app_name(quota)),
                Native.noxy_quota_total(quota),
                Native.noxy_quota_remaining(quota),
                (QuotaStatus)Native.noxy_quota_status(quota));
        }
    }

    /// <summary>A device registered for an identity.</summary>
    public sealed class Device
    {
        private static readonly IReadOnlyList<Device> None = new ReadOnlyCollection<Device>(new Device[0]);

        private Device(string deviceId, IReadOnlyList<byte> publicKey, IReadOnlyList<byte> pqPublicKey)
        {
            DeviceId = deviceId;
            PublicKey = publicKey;
            PqPublicKey = pqPublicKey;
        }

        /// <summary>The relay's id of the device.</summary>
        public string DeviceId { get; private set; }

        /// <summary>The device's classical (Ed25519) public key.</summary>
        public IReadOnlyList<byte> PublicKey { get; private set; }

        /// <summary>The device's ML-KEM-768 public key (1184 bytes when well-formed).</summary>
        public IReadOnlyList<byte> PqPublicKey { get; private set; }

        internal static IReadOnlyList<Device> List(DevicesHandle devices)
        {
            ulong n = Native.noxy_devices_count(devices).ToUInt64();
            if (n == 0)
            {
                return None;
            }
            var list = new Device[n];
            for (ulong i = 0; i < n; i++)
            {
                var index = new UIntPtr(i);
                UIntPtr length;
                IntPtr key = Native.noxy_devices_public_key(devices, index, out length);
                IReadOnlyList<byte> publicKey = Copy(key, length);
                key = Native.noxy_devices_pq_public_key(devices, index, out length);
                IReadOnlyList<byte> pqPublicKey = Copy(key, length);
                list[i] = new Device(Utf8.Decode(Native.noxy_devices_device_id(devices, index)), publicKey, pqPublicKey);
            }
            return new ReadOnlyCollection<Device>(list);
        }

        private static IReadOnlyList<byte> Copy(IntPtr bytes, UIntPtr length)
        {
            var copy = new byte[bytes == IntPtr.Zero ? 0 : checked((int)length.ToUInt64())];
            if (copy.Length > 0)
            {
                Marshal.Copy(bytes, copy, 0, copy.Length);
            }
            return Array.AsReadOnly(copy);
        }
    }
}
