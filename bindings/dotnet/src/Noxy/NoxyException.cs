using System;
using System.Collections.Generic;

namespace Noxy
{
    /// <summary>
    /// An error the library reported: its stable <see cref="Code"/> (the C number), its message,
    /// and for <see cref="NoxyErrorCode.NoDecisionId"/>, errors while waiting after a send, and a
    /// cancelled send, the per-device <see cref="Deliveries"/>.
    /// </summary>
    public class NoxyException : Exception
    {
        /// <summary>An error with a code and a message, without deliveries.</summary>
        public NoxyException(NoxyErrorCode code, string message)
            : this(code, message, Delivery.None)
        {
        }

        private NoxyException(NoxyErrorCode code, string message, IReadOnlyList<Delivery> deliveries)
            : base(message)
        {
            Code = code;
            Deliveries = deliveries;
        }

        /// <summary>The stable error code.</summary>
        public NoxyErrorCode Code { get; private set; }

        /// <summary>The per-device delivery results the error carries; empty for most errors.</summary>
        public IReadOnlyList<Delivery> Deliveries { get; private set; }

        /// <summary>Copies an error out of a live noxy_error (the caller frees it).</summary>
        internal static NoxyException From(ErrorHandle error)
        {
            return new NoxyException(
                (NoxyErrorCode)Native.noxy_error_code(error),
                Utf8.Decode(Native.noxy_error_message(error)),
                Delivery.List(Native.noxy_error_delivery_count(error), i => Native.noxy_error_delivery(error, i)));
        }

        /// <summary>Frees <paramref name="error"/>, and throws it as a NoxyException when it is one (not NULL).</summary>
        internal static void ThrowIfError(ErrorHandle error)
        {
            using (error)
            {
                if (!error.IsInvalid)
                {
                    throw From(error);
                }
            }
        }
    }
}
