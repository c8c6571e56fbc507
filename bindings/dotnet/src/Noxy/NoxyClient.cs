using System;
using System.Collections.Generic;
using System.Runtime.InteropServices;
using System.Threading;
using System.Threading.Tasks;

namespace Noxy
{
    /// <summary>
    /// A client of the Noxy relay: routes end-to-end encrypted decisions to the devices a person
    /// registered and waits for the person's answer. Thread-safe: share one client between
    /// threads and tasks.
    /// </summary>
    /// <remarks>
    /// <para>Every call has an <c>...Async</c> form (over the library's async C API, cancelled
    /// through its <see cref="CancellationToken"/>) and a blocking form (which blocks the calling
    /// thread). Errors the library reports are <see cref="NoxyException"/>s, in the returned task
    /// for the async forms. A call cancelled through its token ends with an
    /// <see cref="OperationCanceledException"/> whose inner exception is the library's
    /// <see cref="NoxyErrorCode.Cancelled"/> error (with the per-device results of a send).
    /// Invalid arguments the binding itself refuses (null, a string with a NUL character, a
    /// negative duration) throw <see cref="ArgumentException"/>s at once.</para>
    /// <para>Continuations of the returned tasks never run on the library's completion thread.
    /// An operation in flight keeps its client alive until it has completed, also when the
    /// client object is no longer referenced.</para>
    /// <para><see cref="Dispose"/> ends every call in flight with
    /// <see cref="NoxyErrorCode.Cancelled"/> and releases the client without blocking; after it
    /// every method throws <see cref="ObjectDisposedException"/>.</para>
    /// </remarks>
    public sealed class NoxyClient : IDisposable
    {
        // The function pointers handed to the library point at these delegates, which live as
        // long as the process: they can never be collected before the library calls them.
        private static readonly Native.CompletionCallback CompletionCallback = OnCompletion;
        private static readonly Native.LogCallback LogCallback = OnLog;
        private static readonly Native.FreeUserData FreeLogger = OnFreeLogger;
        private static readonly Action<object> CancelOperation = OnCancel;

        private readonly ClientHandle _handle;

        /// <summary>
        /// Creates a client. It does not connect: the relay is contacted on the first call.
        /// </summary>
        /// <exception cref="NoxyException">A setting is invalid (the message names it).</exception>
        /// <exception cref="ArgumentException">A string contains a NUL character, or a duration is negative.</exception>
        public NoxyClient(NoxyClientOptions options)
        {
            if (options == null)
            {
                throw new ArgumentNullException("options");
            }
            using (ConfigHandle config = Native.noxy_config_new())
            {
                Configure(config, options);
                ClientHandle client;
                NoxyException.ThrowIfError(Native.noxy_client_new(config, out client));
                _handle = client;
                _handle.Track();
            }
        }

        /// <summary>The native library's version, <c>MAJOR.MINOR.PATCH</c>.</summary>
        public static string NativeVersion
        {
            get { return Utf8.Decode(Native.noxy_version()); }
        }

        // ---- routing ----

        /// <summary>
        /// Routes a decision to every device of <paramref name="identityId"/> (one encrypted
        /// copy per device) and completes without waiting for an answer. Succeeds when the
        /// devices could be listed, even if deliveries failed: see <see cref="SendResult.Deliveries"/>
        /// and <see cref="SendResult.AcceptedDecisionId"/>.
        /// </summary>
        /// <param name="identityId">The person's identity.</param>
        /// <param name="payloadJson">A JSON object, sent as its UTF-8 bytes.</param>
        /// <param name="options">Idempotency key, TTL; null for defaults.</param>
        /// <param name="cancellationToken">Cancels the operation in the library.</param>
        public Task<SendResult> SendDecisionAsync(string identityId, string payloadJson, SendOptions options = null,
            CancellationToken cancellationToken = default(CancellationToken))
        {
            return SendDecisionAsync(identityId, Utf8.Payload(payloadJson, "payloadJson"), options, cancellationToken);
        }

        /// <summary>As <see cref="SendDecisionAsync(string, string, SendOptions, CancellationToken)"/>,
        /// with the payload's exact UTF-8 bytes (these bytes are encrypted, and their SHA-256 is reported).</summary>
        /// <param name="identityId">The person's identity.</param>
        /// <param name="payloadJson">UTF-8 JSON text of an object, at most 64 KiB.</param>
        /// <param name="options">Idempotency key, TTL; null for defaults.</param>
        /// <param name="cancellationToken">Cancels the operation in the library.</param>
        public Task<SendResult> SendDecisionAsync(string identityId, byte[] payloadJson, SendOptions options = null,
            CancellationToken cancellationToken = default(CancellationToken))
        {
            ThrowIfDisposed();
            byte[] identity = Utf8.Encode(identityId, "identityId");
            CheckPayload(payloadJson);
            return Start(delegate(Native.CompletionCallback callback, IntPtr userData, out OperationHandle operation)
            {
                using (SendOptionsHandle send = SendOptions.ToNative(options))
                {
                    return Native.noxy_send_decision_async(_handle, identity, payloadJson, Length(payloadJson), send,
                        callback, userData, out operation);
                }
            }, TakeSendResult, cancellationToken);
        }

        /// <summary>Blocking form of <see cref="SendDecisionAsync(string, string, SendOptions, CancellationToken)"/>.</summary>
        /// <param name="identityId">The person's identity.</param>
        /// <param name="payloadJson">A JSON object, sent as its UTF-8 bytes.</param>
        /// <param name="options">Idempotency key, TTL; null for defaults.</param>
        public SendResult SendDecision(string identityId, string payloadJson, SendOptions options = null)
        {
            return SendDecision(identityId, Utf8.Payload(payloadJson, "payloadJson"), options);
        }

        /// <summary>Blocking form of <see cref="SendDecisionAsync(string, byte[], SendOptions, CancellationToken)"/>.</summary>
        /// <param name="identityId">The person's identity.</param>
        /// <param name="payloadJson">UTF-8 JSON text of an object, at most 64 KiB.</param>
        /// <param name="options">Idempotency key, TTL; null for defaults.</param>
        public SendResult SendDecision(string identityId, byte[] payloadJson, SendOptions options = null)
        {
            ThrowIfDisposed();
            byte[] identity = Utf8.Encode(identityId, "identityId");
            CheckPayload(payloadJson);
            SendResultHandle result;
            using (SendOptionsHandle send = SendOptions.ToNative(options))
            {
                NoxyException.ThrowIfError(Native.noxy_send_decision(_handle, identity, payloadJson, Length(payloadJson),
                    send, out result));
            }
            using (result)
            {
                return SendResult.From(result);
            }
        }

        // ---- outcomes ----

        /// <summary>
        /// Asks the relay once for the state of a decision; the outcome may be
        /// <see cref="DecisionOutcome.Pending"/>.
        /// </summary>
        /// <param name="decisionId">The decision (<see cref="SendResult.AcceptedDecisionId"/>).</param>
        /// <param name="identityId">The identity it was sent to.</param>
        /// <param name="cancellationToken">Cancels the operation in the library.</param>
        public Task<DecisionResult> GetDecisionOutcomeAsync(string decisionId, string identityId,
            CancellationToken cancellationToken = default(CancellationToken))
        {
            ThrowIfDisposed();
            byte[] decision = Utf8.Encode(decisionId, "decisionId");
            byte[] identity = Utf8.Encode(identityId, "identityId");
            return Start(delegate(Native.CompletionCallback callback, IntPtr userData, out OperationHandle operation)
            {
                return Native.noxy_get_decision_outcome_async(_handle, decision, identity, callback, userData,
                    out operation);
            }, TakeDecisionResult, cancellationToken);
        }

        /// <summary>Blocking form of <see cref="GetDecisionOutcomeAsync"/>.</summary>
        /// <param name="decisionId">The decision (<see cref="SendResult.AcceptedDecisionId"/>).</param>
        /// <param name="identityId">The identity it was sent to.</param>
        public DecisionResult GetDecisionOutcome(string decisionId, string identityId)
        {
            ThrowIfDisposed();
            byte[] decision = Utf8.Encode(decisionId, "decisionId");
            byte[] identity = Utf8.Encode(identityId, "identityId");
            DecisionResultHandle result;
            NoxyException.ThrowIfError(Native.noxy_get_decision_outcome(_handle, decision, identity, out result));
            using (result)
            {
                return DecisionResult.From(result);
            }
        }

        /// <summary>
        /// Polls until the decision is APPROVED, REJECTED or EXPIRED, within the budget of
        /// <paramref name="options"/> (default 15 minutes), then fails with
        /// <see cref="NoxyErrorCode.WaitTimedOut"/>.
        /// </summary>
        /// <param name="decisionId">The decision (<see cref="SendResult.AcceptedDecisionId"/>).</param>
        /// <param name="identityId">The identity it was sent to.</param>
        /// <param name="options">Polling intervals and budget; null for defaults.</param>
        /// <param name="cancellationToken">Cancels the operation in the library.</param>
        public Task<DecisionResult> WaitForDecisionOutcomeAsync(string decisionId, string identityId,
            WaitOptions options = null, CancellationToken cancellationToken = default(CancellationToken))
        {
            ThrowIfDisposed();
            byte[] decision = Utf8.Encode(decisionId, "decisionId");
            byte[] identity = Utf8.Encode(identityId, "identityId");
            return Start(delegate(Native.CompletionCallback callback, IntPtr userData, out OperationHandle operation)
            {
                using (WaitOptionsHandle wait = WaitOptions.ToNative(options))
                {
                    return Native.noxy_wait_for_outcome_async(_handle, decision, identity, wait, callback, userData,
                        out operation);
                }
            }, TakeDecisionResult, cancellationToken);
        }

        /// <summary>Blocking form of <see cref="WaitForDecisionOutcomeAsync"/>.</summary>
        /// <param name="decisionId">The decision (<see cref="SendResult.AcceptedDecisionId"/>).</param>
        /// <param name="identityId">The identity it was sent to.</param>
        /// <param name="options">Polling intervals and budget; null for defaults.</param>
        public DecisionResult WaitForDecisionOutcome(string decisionId, string identityId, WaitOptions options = null)
        {
            ThrowIfDisposed();
            byte[] decision = Utf8.Encode(decisionId, "decisionId");
            byte[] identity = Utf8.Encode(identityId, "identityId");
            DecisionResultHandle result;
            using (WaitOptionsHandle wait = WaitOptions.ToNative(options))
            {
                NoxyException.ThrowIfError(Native.noxy_wait_for_outcome(_handle, decision, identity, wait, out result));
            }
            using (result)
            {
                return DecisionResult.From(result);
            }
        }

        /// <summary>
        /// Routes a decision to every device of <paramref name="identityId"/> and completes when
        /// it is APPROVED, REJECTED or EXPIRED. Fails with <see cref="NoxyErrorCode.NoDecisionId"/>
        /// when no device accepted it and <see cref="NoxyErrorCode.WaitTimedOut"/> after the wait
        /// budget; errors after routing carry the per-device results.
        /// </summary>
        /// <param name="identityId">The person's identity.</param>
        /// <param name="payloadJson">A JSON object, sent as its UTF-8 bytes.</param>
        /// <param name="sendOptions">Idempotency key, TTL; null for defaults.</param>
        /// <param name="waitOptions">Polling intervals and budget; null for defaults.</param>
        /// <param name="cancellationToken">Cancels the operation in the library.</param>
        public Task<DecisionResult> SendDecisionAndWaitForOutcomeAsync(string identityId, string payloadJson,
            SendOptions sendOptions = null, WaitOptions waitOptions = null,
            CancellationToken cancellationToken = default(CancellationToken))
        {
            return SendDecisionAndWaitForOutcomeAsync(identityId, Utf8.Payload(payloadJson, "payloadJson"), sendOptions,
                waitOptions, cancellationToken);
        }

        /// <summary>As <see cref="SendDecisionAndWaitForOutcomeAsync(string, string, SendOptions, WaitOptions, CancellationToken)"/>,
        /// with the payload's exact UTF-8 bytes.</summary>
        /// <param name="identityId">The person's identity.</param>
        /// <param name="payloadJson">UTF-8 JSON text of an object, at most 64 KiB.</param>
        /// <param name="sendOptions">Idempotency key, TTL; null for defaults.</param>
        /// <param name="waitOptions">Polling intervals and budget; null for defaults.</param>
        /// <param name="cancellationToken">Cancels the operation in the library.</param>
        public Task<DecisionResult> SendDecisionAndWaitForOutcomeAsync(string identityId, byte[] payloadJson,
            SendOptions sendOptions = null, WaitOptions waitOptions = null,
            CancellationToken cancellationToken = default(CancellationToken))
        {
            ThrowIfDisposed();
            byte[] identity = Utf8.Encode(identityId, "identityId");
            CheckPayload(payloadJson);
            return Start(delegate(Native.CompletionCallback callback, IntPtr userData, out OperationHandle operation)
            {
                using (SendOptionsHandle send = SendOptions.ToNative(sendOptions))
                using (WaitOptionsHandle wait = WaitOptions.ToNative(waitOptions))
                {
                    return Native.noxy_send_and_wait_async(_handle, identity, payloadJson, Length(payloadJson), send,
                        wait, callback, userData, out operation);
                }
            }, TakeDecisionResult, cancellationToken);
        }

        /// <summary>Blocking form of <see cref="SendDecisionAndWaitForOutcomeAsync(string, string, SendOptions, WaitOptions, CancellationToken)"/>.</summary>
        /// <param name="identityId">The person's identity.</param>
        /// <param name="payloadJson">A JSON object, sent as its UTF-8 bytes.</param>
        /// <param name="sendOptions">Idempotency key, TTL; null for defaults.</param>
        /// <param name="waitOptions">Polling intervals and budget; null for defaults.</param>
        public DecisionResult SendDecisionAndWaitForOutcome(string identityId, string payloadJson,
            SendOptions sendOptions = null, WaitOptions waitOptions = null)
        {
            return SendDecisionAndWaitForOutcome(identityId, Utf8.Payload(payloadJson, "payloadJson"), sendOptions,
                waitOptions);
        }

        /// <summary>Blocking form of <see cref="SendDecisionAndWaitForOutcomeAsync(string, byte[], SendOptions, WaitOptions, CancellationToken)"/>.</summary>
        /// <param name="identityId">The person's identity.</param>
        /// <param name="payloadJson">UTF-8 JSON text of an object, at most 64 KiB.</param>
        /// <param name="sendOptions">Idempotency key, TTL; null for defaults.</param>
        /// <param name="waitOptions">Polling intervals and budget; null for defaults.</param>
        public DecisionResult SendDecisionAndWaitForOutcome(string identityId, byte[] payloadJson,
            SendOptions sendOptions = null, WaitOptions waitOptions = null)
        {
            ThrowIfDisposed();
            byte[] identity = Utf8.Encode(identityId, "identityId");
            CheckPayload(payloadJson);
            DecisionResultHandle result;
            using (SendOptionsHandle send = SendOptions.ToNative(sendOptions))
            using (WaitOptionsHandle wait = WaitOptions.ToNative(waitOptions))
            {
                NoxyException.ThrowIfError(Native.noxy_send_and_wait(_handle, identity, payloadJson, Length(payloadJson),
                    send, wait, out result));
            }
            using (result)
            {
                return DecisionResult.From(result);
            }
        }

        // ---- app and identities ----

        /// <summary>The app's quota.</summary>
        /// <param name="cancellationToken">Cancels the operation in the library.</param>
        public Task<Quota> GetQuotaAsync(CancellationToken cancellationToken = default(CancellationToken))
        {
            ThrowIfDisposed();
            return Start(delegate(Native.CompletionCallback callback, IntPtr userData, out OperationHandle operation)
            {
                return Native.noxy_get_quota_async(_handle, callback, userData, out operation);
            }, TakeQuota, cancellationToken);
        }

        /// <summary>Blocking form of <see cref="GetQuotaAsync"/>.</summary>
        public Quota GetQuota()
        {
            ThrowIfDisposed();
            QuotaHandle quota;
            NoxyException.ThrowIfError(Native.noxy_get_quota(_handle, out quota));
            using (quota)
            {
                return Quota.From(quota);
            }
        }

        /// <summary>The devices registered for an identity (empty when it has none).</summary>
        /// <param name="identityId">The identity.</param>
        /// <param name="cancellationToken">Cancels the operation in the library.</param>
        public Task<IReadOnlyList<Device>> GetIdentityDevicesAsync(string identityId,
            CancellationToken cancellationToken = default(CancellationToken))
        {
            ThrowIfDisposed();
            byte[] identity = Utf8.Encode(identityId, "identityId");
            return Start(delegate(Native.CompletionCallback callback, IntPtr userData, out OperationHandle operation)
            {
                return Native.noxy_get_identity_devices_async(_handle, identity, callback, userData, out operation);
            }, TakeDevices, cancellationToken);
        }

        /// <summary>Blocking form of <see cref="GetIdentityDevicesAsync"/>.</summary>
        /// <param name="identityId">The identity.</param>
        public IReadOnlyList<Device> GetIdentityDevices(string identityId)
        {
            ThrowIfDisposed();
            byte[] identity = Utf8.Encode(identityId, "identityId");
            DevicesHandle devices;
            NoxyException.ThrowIfError(Native.noxy_get_identity_devices(_handle, identity, out devices));
            using (devices)
            {
                return Device.List(devices);
            }
        }

        // ---- shutdown ----

        /// <summary>
        /// Closes the client without releasing it: every call in flight ends with
        /// <see cref="NoxyErrorCode.Cancelled"/>, and so does every later call. Returns at once.
        /// Idempotent.
        /// </summary>
        public void Close()
        {
            ThrowIfDisposed();
            NoxyException.ThrowIfError(Native.noxy_client_close(_handle));
        }

        /// <summary>
        /// Waits until every async operation of this client has completed, at most
        /// <paramref name="timeout"/> (zero: just check). It cancels nothing: call
        /// <see cref="Close"/> first to end the operations quickly. The orderly shutdown is
        /// <see cref="Close"/>, <see cref="Drain"/>, <see cref="Dispose"/>: after a successful
        /// drain no callback of this client runs any more (the tasks they completed run their
        /// continuations on the thread pool).
        /// </summary>
        /// <param name="timeout">The longest wait.</param>
        /// <returns>true when no operation is outstanding; false at the timeout.</returns>
        public bool Drain(TimeSpan timeout)
        {
            ThrowIfDisposed();
            using (ErrorHandle error = Native.noxy_client_drain(_handle, WaitOptions.Milliseconds(timeout, "timeout")))
            {
                if (error.IsInvalid)
                {
                    return true;
                }
                NoxyException e = NoxyException.From(error);
                if (e.Code == NoxyErrorCode.DeadlineExceeded)
                {
                    return false;
                }
                throw e;
            }
        }

        /// <summary>
        /// Closes and releases the client (<c>noxy_client_close</c>, then <c>noxy_free</c> once
        /// no other thread is inside a call with it). Never blocks. Calls in flight end with
        /// <see cref="NoxyErrorCode.Cancelled"/>. Idempotent.
        /// </summary>
        public void Dispose()
        {
            if (_handle.IsClosed)
            {
                return;
            }
            // Closing first ends the blocking calls other threads may be inside: the SafeHandle
            // releases the client (noxy_free) only when the last of those calls has returned.
            try
            {
                using (Native.noxy_client_close(_handle))
                {
                }
            }
            catch (ObjectDisposedException)
            {
                // Another thread disposed it meanwhile.
            }
            _handle.Dispose();
        }

        // ---- the async machinery ----

        private delegate ErrorHandle Starter(Native.CompletionCallback callback, IntPtr userData,
            out OperationHandle operation);

        /// <summary>An operation whose callback has not run yet; reachable through a GCHandle until it has.</summary>
        private abstract class PendingOperation
        {
            internal abstract void Complete(IntPtr error, IntPtr result);
        }

        private sealed class PendingOperation<T> : PendingOperation
        {
            // Continuations never run on the library's completion thread.
            private readonly TaskCompletionSource<T> _completion =
                new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);

            private readonly Func<IntPtr, T> _take;

            // Keeps the client alive (no finalizer runs noxy_free) until the callback ran; then
            // cleared, so that a stale copy of this object's address (Mono scans the stacks of
            // the library's threads conservatively) never keeps an unused client alive.
            private ClientHandle _client;

            internal PendingOperation(Func<IntPtr, T> take, ClientHandle client)
            {
                _take = take;
                _client = client;
            }

            internal Task<T> Task
            {
                get { return _completion.Task; }
            }

            /// <summary>Takes ownership of both pointers, frees them, completes the task. Never throws.</summary>
            internal override void Complete(IntPtr error, IntPtr result)
            {
                try
                {
                    T value = default(T);
                    if (result != IntPtr.Zero)
                    {
                        value = _take(result);
                    }
                    using (var owned = new ErrorHandle(error))
                    {
                        if (owned.IsInvalid)
                        {
                            _completion.TrySetResult(value);
                        }
                        else
                        {
                            _completion.TrySetException(NoxyException.From(owned));
                        }
                    }
                }
                catch (Exception e)
                {
                    _completion.TrySetException(e);
                }
                GC.KeepAlive(_client);
                _client = null;
            }
        }

        private Task<T> Start<T>(Starter start, Func<IntPtr, T> take, CancellationToken cancellationToken)
        {
            if (cancellationToken.IsCancellationRequested)
            {
                return Task.FromCanceled<T>(cancellationToken);
            }
            var pending = new PendingOperation<T>(take, _handle);
            GCHandle self = GCHandle.Alloc(pending);
            OperationHandle operation;
            ErrorHandle error;
            try
            {
                error = start(CompletionCallback, GCHandle.ToIntPtr(self), out operation);
            }
            catch (NoxyException e)
            {
                // Options the library refused: nothing was started.
                self.Free();
                return Task.FromException<T>(e);
            }
            catch
            {
                self.Free();
                throw;
            }
            using (error)
            {
                if (!error.IsInvalid)
                {
                    // Nothing started: the callback will never run.
                    self.Free();
                    operation.Dispose();
                    return Task.FromException<T>(NoxyException.From(error));
                }
            }
            return Complete(pending.Task, operation, cancellationToken);
        }

        private static async Task<T> Complete<T>(Task<T> task, OperationHandle operation,
            CancellationToken cancellationToken)
        {
            using (operation)
            using (cancellationToken.Register(CancelOperation, operation))
            {
                try
                {
                    return await task.ConfigureAwait(false);
                }
                catch (NoxyException e)
                {
                    if (e.Code == NoxyErrorCode.Cancelled && cancellationToken.IsCancellationRequested)
                    {
                        throw new OperationCanceledException("The operation was cancelled through its CancellationToken.",
                            e, cancellationToken);
                    }
                    throw;
                }
            }
        }

        private static void OnCancel(object state)
        {
            // Runs on the thread that cancelled the token; the registration is disposed before
            // the operation handle, so the handle is alive here.
            using (Native.noxy_operation_cancel((OperationHandle)state))
            {
            }
        }

        [MonoPInvokeCallback(typeof(Native.CompletionCallback))]
        private static void OnCompletion(IntPtr userData, IntPtr error, IntPtr result)
        {
            // Runs on the library's completion thread. Nothing may unwind into native code.
            try
            {
                MarkBackground();
                GCHandle self = GCHandle.FromIntPtr(userData);
                var pending = (PendingOperation)self.Target;
                self.Free();
                pending.Complete(error, result);
            }
            catch
            {
                // Unreachable: Complete never throws, and userData is always a live GCHandle.
            }
        }

        private static SendResult TakeSendResult(IntPtr result)
        {
            using (var owned = new SendResultHandle(result))
            {
                return SendResult.From(owned);
            }
        }

        private static DecisionResult TakeDecisionResult(IntPtr result)
        {
            using (var owned = new DecisionResultHandle(result))
            {
                return DecisionResult.From(owned);
            }
        }

        private static Quota TakeQuota(IntPtr result)
        {
            using (var owned = new QuotaHandle(result))
            {
                return Quota.From(owned);
            }
        }

        private static IReadOnlyList<Device> TakeDevices(IntPtr result)
        {
            using (var owned = new DevicesHandle(result))
            {
                return Device.List(owned);
            }
        }

        // ---- configuration and logging ----

        private static void Configure(ConfigHandle config, NoxyClientOptions options)
        {
            // Unset values keep the library's defaults; a missing endpoint or token is reported
            // by noxy_client_new, which names the field.
            if (options.Endpoint != null)
            {
                NoxyException.ThrowIfError(Native.noxy_config_set_endpoint(config, Utf8.Encode(options.Endpoint, "Endpoint")));
            }
            if (options.AppToken != null)
            {
                NoxyException.ThrowIfError(Native.noxy_config_set_app_token(config, Utf8.Encode(options.AppToken, "AppToken")));
            }
            if (options.DecisionTtlSeconds.HasValue)
            {
                NoxyException.ThrowIfError(Native.noxy_config_set_decision_ttl_seconds(config, options.DecisionTtlSeconds.Value));
            }
            if (options.CaPem != null)
            {
                NoxyException.ThrowIfError(Native.noxy_config_set_ca_pem(config, Utf8.Encode(options.CaPem, "CaPem")));
            }
            if (options.CaPemFile != null)
            {
                NoxyException.ThrowIfError(Native.noxy_config_set_ca_pem_file(config, Utf8.Encode(options.CaPemFile, "CaPemFile")));
            }
            if (options.ConnectTimeout.HasValue)
            {
                NoxyException.ThrowIfError(Native.noxy_config_set_connect_timeout_ms(config,
                    WaitOptions.Milliseconds(options.ConnectTimeout.Value, "ConnectTimeout")));
            }
            if (options.RequestTimeout.HasValue)
            {
                NoxyException.ThrowIfError(Native.noxy_config_set_request_timeout_ms(config,
                    WaitOptions.Milliseconds(options.RequestTimeout.Value, "RequestTimeout")));
            }
            if (options.MaxAttempts.HasValue)
            {
                NoxyException.ThrowIfError(Native.noxy_config_set_max_attempts(config, options.MaxAttempts.Value));
            }
            if (options.RetryBackoff != null)
            {
                RetryBackoff backoff = options.RetryBackoff;
                NoxyException.ThrowIfError(Native.noxy_config_set_retry_backoff(config,
                    WaitOptions.Milliseconds(backoff.Initial, "RetryBackoff.Initial"), backoff.Multiplier,
                    WaitOptions.Milliseconds(backoff.Max, "RetryBackoff.Max"), backoff.Jitter));
            }
            if (options.RetryBudget.HasValue)
            {
                NoxyException.ThrowIfError(Native.noxy_config_set_retry_budget_ms(config,
                    WaitOptions.Milliseconds(options.RetryBudget.Value, "RetryBudget")));
            }
            if (options.WorkerThreads.HasValue)
            {
                NoxyException.ThrowIfError(Native.noxy_config_set_worker_threads(config, options.WorkerThreads.Value));
            }
            if (options.MaxConcurrentRequests.HasValue)
            {
                NoxyException.ThrowIfError(Native.noxy_config_set_max_concurrent_requests(config,
                    options.MaxConcurrentRequests.Value));
            }
            if (options.SharedRuntime)
            {
                NoxyException.ThrowIfError(Native.noxy_config_set_shared_runtime(config, 1));
            }
            if (options.UserAgent != null)
            {
                NoxyException.ThrowIfError(Native.noxy_config_set_user_agent(config, Utf8.Encode(options.UserAgent, "UserAgent")));
            }
            if (options.Logger != null && options.LogLevel != NoxyLogLevel.Off)
            {
                // The library owns this GCHandle once the call succeeded, and frees it through
                // FreeLogger after the logger's last call; on failure it takes nothing.
                GCHandle logger = GCHandle.Alloc(options.Logger);
                ErrorHandle error = Native.noxy_config_set_log_callback(config, LogCallback, GCHandle.ToIntPtr(logger),
                    FreeLogger, (int)options.LogLevel);
                if (!error.IsInvalid)
                {
                    logger.Free();
                }
                NoxyException.ThrowIfError(error);
            }
        }

        [MonoPInvokeCallback(typeof(Native.LogCallback))]
        private static void OnLog(int level, IntPtr message, IntPtr userData)
        {
            try
            {
                MarkBackground();
                var logger = (Action<NoxyLogLevel, string>)GCHandle.FromIntPtr(userData).Target;
                logger((NoxyLogLevel)level, Utf8.Decode(message));
            }
            catch
            {
                // A logger's exception must not unwind into the library.
            }
        }

        [MonoPInvokeCallback(typeof(Native.FreeUserData))]
        private static void OnFreeLogger(IntPtr userData)
        {
            try
            {
                // Often the first managed call of its thread: a worker of the shared runtime
                // dropping a client's logger, which would otherwise keep Mono from exiting.
                MarkBackground();
                GCHandle.FromIntPtr(userData).Free();
            }
            catch
            {
                // Unreachable: userData is the GCHandle allocated in Configure.
            }
        }

        // ---- helpers ----

        /// <summary>
        /// Marks a library thread that calls into managed code as a background thread. Mono
        /// attaches such threads as foreground threads, and a process then waits for them at
        /// exit forever (they only end when their client is released). CoreCLR already makes
        /// them background threads.
        /// </summary>
        private static void MarkBackground()
        {
            Thread thread = Thread.CurrentThread;
            if (!thread.IsBackground)
            {
                thread.IsBackground = true;
            }
        }

        private void ThrowIfDisposed()
        {
            if (_handle.IsClosed)
            {
                throw new ObjectDisposedException(typeof(NoxyClient).FullName);
            }
        }

        private static void CheckPayload(byte[] payloadJson)
        {
            if (payloadJson == null)
            {
                throw new ArgumentNullException("payloadJson");
            }
        }

        private static UIntPtr Length(byte[] payload)
        {
            return new UIntPtr((uint)payload.Length);
        }
    }
}
