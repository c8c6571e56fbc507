// Settings. Each property left null keeps the library's default; the library checks every
// value (a NoxyException with NoxyErrorCode.InvalidArgument names the field). The binding only
// refuses what C cannot represent (a negative TimeSpan, a string with a NUL).
using System;

namespace Noxy
{
    /// <summary>The backoff between retries of transient failures.</summary>
    public sealed class RetryBackoff
    {
        /// <summary>A backoff: <paramref name="initial"/> before the second attempt, multiplied by
        /// <paramref name="multiplier"/> (at least 1) after each retry, capped at <paramref name="max"/>,
        /// with a <paramref name="jitter"/> fraction in [0, 1] randomised away.</summary>
        public RetryBackoff(TimeSpan initial, double multiplier, TimeSpan max, double jitter)
        {
            Initial = initial;
            Multiplier = multiplier;
            Max = max;
            Jitter = jitter;
        }

        /// <summary>The pause before the second attempt.</summary>
        public TimeSpan Initial { get; private set; }

        /// <summary>The growth of the pause after each retry.</summary>
        public double Multiplier { get; private set; }

        /// <summary>The longest pause.</summary>
        public TimeSpan Max { get; private set; }

        /// <summary>The fraction of each pause randomised away.</summary>
        public double Jitter { get; private set; }
    }

    /// <summary>The configuration of a <see cref="NoxyClient"/>; copied when the client is created.</summary>
    public sealed class NoxyClientOptions
    {
        /// <summary>Options with the two required settings.</summary>
        public NoxyClientOptions(string endpoint, string appToken)
        {
            Endpoint = endpoint;
            AppToken = appToken;
            LogLevel = NoxyLogLevel.Info;
        }

        /// <summary>The relay endpoint: <c>https://relay.noxy.network</c>, <c>host:port</c> (always TLS).</summary>
        public string Endpoint { get; set; }

        /// <summary>The app's bearer token; never logged.</summary>
        public string AppToken { get; set; }

        /// <summary>How long the relay keeps a decision open before it expires (library default 600).</summary>
        public uint? DecisionTtlSeconds { get; set; }

        /// <summary>Root certificate(s), PEM text, to trust instead of the public web PKI.</summary>
        public string CaPem { get; set; }

        /// <summary>A file with root certificate(s), PEM, read when the client is created.</summary>
        public string CaPemFile { get; set; }

        /// <summary>The time allowed to connect (DNS, TCP and TLS together).</summary>
        public TimeSpan? ConnectTimeout { get; set; }

        /// <summary>The deadline of every single RPC attempt.</summary>
        public TimeSpan? RequestTimeout { get; set; }

        /// <summary>The cap on attempts per call, including the first: 1 disables retries, 0 removes the cap (the default).</summary>
        public uint? MaxAttempts { get; set; }

        /// <summary>The pause between retries.</summary>
        public RetryBackoff RetryBackoff { get; set; }

        /// <summary>How long transient failures are retried, from a call's first attempt (default 30 s; zero disables retries).</summary>
        public TimeSpan? RetryBudget { get; set; }

        /// <summary>The client's runtime worker threads (1 to 64; default 2).</summary>
        public uint? WorkerThreads { get; set; }

        /// <summary>How many RPCs the client keeps in flight at once (1 to 10 000; default 100).</summary>
        public uint? MaxConcurrentRequests { get; set; }

        /// <summary>Use the process-wide runtime and completion thread instead of the client's own.</summary>
        public bool SharedRuntime { get; set; }

        /// <summary>The user-agent sent with every call (visible ASCII).</summary>
        public string UserAgent { get; set; }

        /// <summary>
        /// This client's logger: called with each event up to <see cref="LogLevel"/>, on any thread
        /// (library threads included), possibly concurrently. Keep it short and thread-safe; it
        /// must not call the client (blocking calls fail there). Exceptions it throws are
        /// ignored: they must not unwind into the library. Null (the default): the library's
        /// process-wide logging, off unless the host set it.
        /// </summary>
        public Action<NoxyLogLevel, string> Logger { get; set; }

        /// <summary>The most detailed level passed to <see cref="Logger"/> (default <see cref="NoxyLogLevel.Info"/>).</summary>
        public NoxyLogLevel LogLevel { get; set; }
    }

    /// <summary>Options for routing a decision.</summary>
    public sealed class SendOptions
    {
        /// <summary>
        /// An idempotency key: the same key with the same payload and TTL gives the relay's
        /// existing decision back instead of a second prompt; with other content it is a new decision.
        /// </summary>
        public string IdempotencyKey { get; set; }

        /// <summary>This decision's TTL in seconds (at least 1), instead of the client's.</summary>
        public uint? TtlSeconds { get; set; }

        internal static SendOptionsHandle ToNative(SendOptions options)
        {
            SendOptionsHandle native = Native.noxy_send_options_new();
            try
            {
                if (options != null)
                {
                    if (options.IdempotencyKey != null)
                    {
                        NoxyException.ThrowIfError(Native.noxy_send_options_set_idempotency_key(native,
                            Utf8.Encode(options.IdempotencyKey, "IdempotencyKey")));
                    }
                    if (options.TtlSeconds.HasValue)
                    {
                        NoxyException.ThrowIfError(Native.noxy_send_options_set_ttl_seconds(native, options.TtlSeconds.Value));
                    }
                }
                return native;
            }
            catch
            {
                native.Dispose();
                throw;
            }
        }
    }

    /// <summary>How to wait for an outcome. Unset values keep the defaults: 400 ms first interval, x1.6, at most 30 s between polls, 15 minutes in total.</summary>
    public sealed class WaitOptions
    {
        /// <summary>The pause after the first poll.</summary>
        public TimeSpan? InitialInterval { get; set; }

        /// <summary>The growth of the pause between polls (at least 1).</summary>
        public double? Multiplier { get; set; }

        /// <summary>The longest pause between polls.</summary>
        public TimeSpan? MaxInterval { get; set; }

        /// <summary>The whole wait's budget; then <see cref="NoxyErrorCode.WaitTimedOut"/>.</summary>
        public TimeSpan? MaxWait { get; set; }

        /// <summary>The fraction in [0, 1] of each pause that is randomised downwards.</summary>
        public double? Jitter { get; set; }

        internal static WaitOptionsHandle ToNative(WaitOptions options)
        {
            WaitOptionsHandle native = Native.noxy_wait_options_new();
            try
            {
                if (options != null)
                {
                    if (options.InitialInterval.HasValue)
                    {
                        NoxyException.ThrowIfError(Native.noxy_wait_options_set_initial_interval_ms(native,
                            Milliseconds(options.InitialInterval.Value, "InitialInterval")));
                    }
                    if (options.Multiplier.HasValue)
                    {
                        NoxyException.ThrowIfError(Native.noxy_wait_options_set_multiplier(native, options.Multiplier.Value));
                    }
                    if (options.MaxInterval.HasValue)
                    {
                        NoxyException.ThrowIfError(Native.noxy_wait_options_set_max_interval_ms(native,
                            Milliseconds(options.MaxInterval.Value, "MaxInterval")));
                    }
                    if (options.MaxWait.HasValue)
                    {
                        NoxyException.ThrowIfError(Native.noxy_wait_options_set_max_wait_ms(native,
                            Milliseconds(options.MaxWait.Value, "MaxWait")));
                    }
                    if (options.Jitter.HasValue)
                    {
                        NoxyException.ThrowIfError(Native.noxy_wait_options_set_jitter(native, options.Jitter.Value));
                    }
                }
                return native;
            }
            catch
            {
                native.Dispose();
                throw;
            }
        }

        /// <summary>Whole milliseconds of a duration; negative durations are refused.</summary>
        internal static ulong Milliseconds(TimeSpan value, string paramName)
        {
            if (value < TimeSpan.Zero)
            {
                throw new ArgumentOutOfRangeException(paramName, value, "A duration must not be negative.");
            }
            return (ulong)(value.Ticks / TimeSpan.TicksPerMillisecond);
        }
    }
}
