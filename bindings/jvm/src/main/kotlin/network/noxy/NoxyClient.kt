package network.noxy

import com.sun.jna.Pointer
import com.sun.jna.ptr.PointerByReference
import kotlinx.coroutines.suspendCancellableCoroutine
import network.noxy.internal.ClientHandle
import network.noxy.internal.Cleanable
import network.noxy.internal.Cleaners
import network.noxy.internal.CompletionCallback
import network.noxy.internal.ContinuationPending
import network.noxy.internal.Convert
import network.noxy.internal.FuturePending
import network.noxy.internal.NativeOptions
import network.noxy.internal.NoxyFuture
import network.noxy.internal.Operations
import network.noxy.internal.Pending
import network.noxy.internal.ResultKind
import network.noxy.internal.SizeT
import network.noxy.internal.Utf8
import java.util.concurrent.CompletableFuture
import java.util.concurrent.ExecutionException
import java.util.concurrent.Executor
import java.util.concurrent.ForkJoinPool
import network.noxy.internal.NoxyNative as C

/**
 * A client of the Noxy relay over libnoxy: it routes end-to-end encrypted decisions to the
 * devices a person registered and waits for the person's answer.
 *
 * Thread-safe: share one client. Every call comes in three forms:
 * - Kotlin `suspend` functions (`sendDecision`, ...): cancelling the coroutine cancels the
 *   native operation (the coroutine ends at once with `CancellationException`);
 * - `...Async` methods returning a `CompletableFuture`: `cancel()` cancels the native operation;
 *   the future is completed on [NoxyConfig.callbackExecutor], so dependent stages never run on
 *   libnoxy's completion thread;
 * - `...Blocking` methods: they block the calling thread; interrupting it cancels the native
 *   operation (the call then throws [NoxyException] with [NoxyErrorCode.CANCELLED], or returns
 *   the result if it was already there, and the thread's interrupt flag stays set).
 *
 * Failures are [NoxyException]s with libnoxy's code and message. The client does not connect
 * until the first call.
 *
 * [close] releases the native client: it never blocks, is idempotent, and may run while
 * operations are in flight on other threads (they end with [NoxyErrorCode.CANCELLED]; later
 * calls fail with it). A client that becomes unreachable without [close] is closed by a
 * cleaner, but only once no operation of it is in flight (each one keeps it reachable).
 */
public class NoxyClient(config: NoxyConfig) : AutoCloseable {
    private val handle: ClientHandle
    private val cleanable: Cleanable
    private val executor: Executor = config.callbackExecutor ?: ForkJoinPool.commonPool()

    init {
        val nativeConfig = NativeOptions.config(config)
        try {
            val out = PointerByReference()
            Convert.check(C.noxy_client_new(nativeConfig, out))
            handle = ClientHandle(out.value)
        } finally {
            C.noxy_config_free(nativeConfig) // the client copied it
        }
        cleanable = Cleaners.register(this, handle)
    }

    /** Whether [close] was called. */
    public val isClosed: Boolean get() = handle.isClosed

    /** Releases the native client (idempotent, any thread, never blocks; see the class comment). */
    override fun close() {
        cleanable.clean()
    }

    // ---------------------------------------------------------------- sendDecision

    /**
     * Routes a decision ([payloadJson]: a JSON object, sent as its exact UTF-8 bytes) to every
     * device of [identityId] and returns without waiting for an answer. Succeeds when the devices
     * could be listed, even if deliveries failed: see [SendResult.deliveries] and
     * [SendResult.acceptedDecisionId].
     */
    public suspend fun sendDecision(identityId: String, payloadJson: String, options: SendOptions? = null): SendResult =
        suspendOn(Operations.send, sendStarter(identityId, payloadJson, options))

    /** [sendDecision] as a future. */
    @JvmOverloads
    public fun sendDecisionAsync(
        identityId: String,
        payloadJson: String,
        options: SendOptions? = null,
    ): CompletableFuture<SendResult> = futureOf(Operations.send) { sendStarter(identityId, payloadJson, options) }

    /** [sendDecision], blocking the calling thread. */
    @JvmOverloads
    public fun sendDecisionBlocking(identityId: String, payloadJson: String, options: SendOptions? = null): SendResult =
        block(Operations.send, sendStarter(identityId, payloadJson, options))

    private fun sendStarter(identityId: String, payloadJson: String, options: SendOptions?): Starter {
        val identity = Utf8.cString(identityId, "identity_id")
        val payload = Utf8.payload(payloadJson)
        return { client, callback, userData, out ->
            withSendOptions(options) { send ->
                C.noxy_send_decision_async(
                    client, identity, payload, SizeT(payload.size.toLong()), send, callback, userData, out,
                )
            }
        }
    }

    // ---------------------------------------------------------------- getDecisionOutcome

    /** Asks the relay once for the state of [decisionId] of [identityId]; it may be [DecisionOutcome.PENDING]. */
    public suspend fun getDecisionOutcome(decisionId: String, identityId: String): DecisionResult =
        suspendOn(Operations.decision, outcomeStarter(decisionId, identityId))

    /** [getDecisionOutcome] as a future. */
    public fun getDecisionOutcomeAsync(decisionId: String, identityId: String): CompletableFuture<DecisionResult> =
        futureOf(Operations.decision) { outcomeStarter(decisionId, identityId) }

    /** [getDecisionOutcome], blocking the calling thread. */
    public fun getDecisionOutcomeBlocking(decisionId: String, identityId: String): DecisionResult =
        block(Operations.decision, outcomeStarter(decisionId, identityId))

    private fun outcomeStarter(decisionId: String, identityId: String): Starter {
        val decision = Utf8.cString(decisionId, "decision_id")
        val identity = Utf8.cString(identityId, "identity_id")
        return { client, callback, userData, out ->
            C.noxy_get_decision_outcome_async(client, decision, identity, callback, userData, out)
        }
    }

    // ---------------------------------------------------------------- waitForDecisionOutcome

    /**
     * Polls until [decisionId] of [identityId] is APPROVED, REJECTED or EXPIRED, within the
     * budget of [options] (default 15 minutes), then [NoxyErrorCode.WAIT_TIMED_OUT].
     */
    public suspend fun waitForDecisionOutcome(
        decisionId: String,
        identityId: String,
        options: WaitOptions? = null,
    ): DecisionResult = suspendOn(Operations.decision, waitStarter(decisionId, identityId, options))

    /** [waitForDecisionOutcome] as a future. */
    @JvmOverloads
    public fun waitForDecisionOutcomeAsync(
        decisionId: String,
        identityId: String,
        options: WaitOptions? = null,
    ): CompletableFuture<DecisionResult> = futureOf(Operations.decision) { waitStarter(decisionId, identityId, options) }

    /** [waitForDecisionOutcome], blocking the calling thread. */
    @JvmOverloads
    public fun waitForDecisionOutcomeBlocking(
        decisionId: String,
        identityId: String,
        options: WaitOptions? = null,
    ): DecisionResult = block(Operations.decision, waitStarter(decisionId, identityId, options))

    private fun waitStarter(decisionId: String, identityId: String, options: WaitOptions?): Starter {
        val decision = Utf8.cString(decisionId, "decision_id")
        val identity = Utf8.cString(identityId, "identity_id")
        return { client, callback, userData, out ->
            withWaitOptions(options) { wait ->
                C.noxy_wait_for_outcome_async(client, decision, identity, wait, callback, userData, out)
            }
        }
    }

    // ---------------------------------------------------------------- sendDecisionAndWaitForOutcome

    /**
     * Routes a decision to every device of [identityId] and waits until it is APPROVED,
     * REJECTED or EXPIRED. Fails with [NoxyErrorCode.NO_DECISION_ID] when no device accepted it,
     * [NoxyErrorCode.WAIT_TIMED_OUT] after the wait budget; errors after routing carry the
     * per-device results.
     */
    public suspend fun sendDecisionAndWaitForOutcome(
        identityId: String,
        payloadJson: String,
        sendOptions: SendOptions? = null,
        waitOptions: WaitOptions? = null,
    ): DecisionResult = suspendOn(Operations.decision, sendAndWaitStarter(identityId, payloadJson, sendOptions, waitOptions))

    /** [sendDecisionAndWaitForOutcome] as a future. */
    @JvmOverloads
    public fun sendDecisionAndWaitForOutcomeAsync(
        identityId: String,
        payloadJson: String,
        sendOptions: SendOptions? = null,
        waitOptions: WaitOptions? = null,
    ): CompletableFuture<DecisionResult> =
        futureOf(Operations.decision) { sendAndWaitStarter(identityId, payloadJson, sendOptions, waitOptions) }

    /** [sendDecisionAndWaitForOutcome], blocking the calling thread. */
    @JvmOverloads
    public fun sendDecisionAndWaitForOutcomeBlocking(
        identityId: String,
        payloadJson: String,
        sendOptions: SendOptions? = null,
        waitOptions: WaitOptions? = null,
    ): DecisionResult = block(Operations.decision, sendAndWaitStarter(identityId, payloadJson, sendOptions, waitOptions))

    private fun sendAndWaitStarter(
        identityId: String,
        payloadJson: String,
        sendOptions: SendOptions?,
        waitOptions: WaitOptions?,
    ): Starter {
        val identity = Utf8.cString(identityId, "identity_id")
        val payload = Utf8.payload(payloadJson)
        return { client, callback, userData, out ->
            withSendOptions(sendOptions) { send ->
                withWaitOptions(waitOptions) { wait ->
                    C.noxy_send_and_wait_async(
                        client, identity, payload, SizeT(payload.size.toLong()), send, wait, callback, userData, out,
                    )
                }
            }
        }
    }

    // ---------------------------------------------------------------- getQuota

    /** The app's quota. */
    public suspend fun getQuota(): Quota = suspendOn(Operations.quota, quotaStarter)

    /** [getQuota] as a future. */
    public fun getQuotaAsync(): CompletableFuture<Quota> = futureOf(Operations.quota) { quotaStarter }

    /** [getQuota], blocking the calling thread. */
    public fun getQuotaBlocking(): Quota = block(Operations.quota, quotaStarter)

    private val quotaStarter: Starter = { client, callback, userData, out ->
        C.noxy_get_quota_async(client, callback, userData, out)
    }

    // ---------------------------------------------------------------- getIdentityDevices

    /** The devices registered for [identityId]. */
    public suspend fun getIdentityDevices(identityId: String): List<Device> =
        suspendOn(Operations.devices, devicesStarter(identityId))

    /** [getIdentityDevices] as a future. */
    public fun getIdentityDevicesAsync(identityId: String): CompletableFuture<List<Device>> =
        futureOf(Operations.devices) { devicesStarter(identityId) }

    /** [getIdentityDevices], blocking the calling thread. */
    public fun getIdentityDevicesBlocking(identityId: String): List<Device> =
        block(Operations.devices, devicesStarter(identityId))

    private fun devicesStarter(identityId: String): Starter {
        val identity = Utf8.cString(identityId, "identity_id")
        return { client, callback, userData, out ->
            C.noxy_get_identity_devices_async(client, identity, callback, userData, out)
        }
    }

    // ---------------------------------------------------------------- the three forms

    /** Starts the operation once the client is known to be open, inside [ClientHandle.use]. */
    private fun <T> start(op: Pending<T>, kind: ResultKind<T>, starter: Starter) {
        Operations.start(op, kind.callback) { callback, userData, out ->
            handle.use { client -> starter(client, callback, userData, out) }
        }
    }

    private suspend fun <T> suspendOn(kind: ResultKind<T>, starter: Starter): T =
        suspendCancellableCoroutine { continuation ->
            val op = ContinuationPending(this, kind, continuation, executor)
            continuation.invokeOnCancellation { op.requestCancel() }
            try {
                start(op, kind, starter)
            } catch (t: Throwable) {
                continuation.resumeWith(Result.failure(t))
            }
        }

    /** Argument errors (made by [makeStarter]) fail the future rather than throw. */
    private inline fun <T> futureOf(kind: ResultKind<T>, makeStarter: () -> Starter): CompletableFuture<T> {
        val future = NoxyFuture<T>()
        try {
            val starter = makeStarter()
            val op = FuturePending(this, kind, future, executor)
            future.operation = op
            start(op, kind, starter)
        } catch (t: Throwable) {
            future.completeExceptionally(t)
        }
        return future
    }

    private fun <T> block(kind: ResultKind<T>, starter: Starter): T {
        val future = CompletableFuture<T>()
        val op = FuturePending(this, kind, future, null)
        start(op, kind, starter)
        var interrupted = false
        try {
            while (true) {
                try {
                    return future.get()
                } catch (e: InterruptedException) {
                    // Cancel, then wait for the callback: it reports CANCELLED (or the result,
                    // if the operation had finished), promptly.
                    interrupted = true
                    op.requestCancel()
                } catch (e: ExecutionException) {
                    val cause = e.cause ?: e
                    // The exception was made on the completion thread: give it this thread's stack.
                    cause.fillInStackTrace()
                    throw cause
                }
            }
        } finally {
            if (interrupted) Thread.currentThread().interrupt()
        }
    }

    private inline fun <R> withSendOptions(options: SendOptions?, block: (Pointer?) -> R): R {
        val native = NativeOptions.send(options)
        try {
            return block(native)
        } finally {
            C.noxy_send_options_free(native) // copied by the call
        }
    }

    private inline fun <R> withWaitOptions(options: WaitOptions?, block: (Pointer?) -> R): R {
        val native = NativeOptions.wait(options)
        try {
            return block(native)
        } finally {
            C.noxy_wait_options_free(native) // copied by the call
        }
    }
}

/** Calls one `_async` function: (client, callback, user_data, out_operation) -> error. */
private typealias Starter = (Pointer, CompletionCallback, Pointer, PointerByReference) -> Pointer?
