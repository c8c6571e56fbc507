package network.noxy.internal

import com.sun.jna.CallbackThreadInitializer
import com.sun.jna.Native
import com.sun.jna.Pointer
import com.sun.jna.ptr.PointerByReference
import kotlinx.coroutines.CancellableContinuation
import kotlinx.coroutines.CoroutineDispatcher
import network.noxy.NoxyErrorCode
import network.noxy.NoxyException
import java.util.concurrent.CompletableFuture
import java.util.concurrent.ConcurrentHashMap
import java.util.concurrent.Executor
import java.util.concurrent.RejectedExecutionException
import java.util.concurrent.atomic.AtomicLong
import kotlin.coroutines.ContinuationInterceptor
import network.noxy.internal.NoxyNative as C

/**
 * One kind of async result: the JNA callback that receives it and the conversion to a Kotlin
 * value. The four callbacks are static objects, created once and never released, so no
 * callback object can ever be garbage-collected while libnoxy may still call it; what belongs
 * to one operation (its [Pending]) is found through `user_data`, which carries an id into
 * [Operations.pending] rather than a pointer to any Java object.
 */
internal class ResultKind<T>(val callback: CompletionCallback, val convert: (Pointer) -> T)

/**
 * The operations in flight. An entry is added before the `_async` call starts the operation and
 * removed by the callback (or at once when the call fails to start): it holds the continuation
 * or future strongly until the callback ran, and the client strongly, so that neither the
 * caller's coroutine nor the client can be collected while libnoxy works for them.
 */
internal object Operations {
    private val pending = ConcurrentHashMap<Long, Pending<*>>()
    private val nextId = AtomicLong(1)

    val decision: ResultKind<network.noxy.DecisionResult> =
        ResultKind(completion { C.noxy_decision_result_free(it) }, Convert::decisionResult)
    val send: ResultKind<network.noxy.SendResult> =
        ResultKind(completion { C.noxy_send_result_free(it) }, Convert::sendResult)
    val quota: ResultKind<network.noxy.Quota> =
        ResultKind(completion { C.noxy_quota_free(it) }, Convert::quota)
    val devices: ResultKind<List<network.noxy.Device>> =
        ResultKind(completion { C.noxy_devices_free(it) }, Convert::devices)

    /** How many operations have started and not reported yet (tests). */
    val inFlight: Int get() = pending.size

    /**
     * Starts an operation: registers [op], runs [start] (the `_async` call) with the callback,
     * the `user_data` id and the out-parameter for the handle, and hands the handle to [op].
     * Throws (and unregisters) when the call fails; then the callback never runs.
     */
    fun start(
        op: Pending<*>,
        callback: CompletionCallback,
        start: (CompletionCallback, Pointer, PointerByReference) -> Pointer?,
    ) {
        val id = nextId.getAndIncrement()
        pending[id] = op
        val out = PointerByReference()
        val error = try {
            start(callback, Pointer(id), out)
        } catch (t: Throwable) {
            pending.remove(id)
            throw t
        }
        if (error != null) {
            pending.remove(id)
            Convert.check(error)
        }
        op.attach(out.value)
    }

    /**
     * A completion callback for results freed with [free]. It runs on libnoxy's completion
     * thread: it copies the result out, frees every C object it received, completes the
     * operation's continuation or future (which never runs caller code here, see [Pending]) and
     * returns. Nothing it does can throw into native code.
     */
    private fun completion(free: (Pointer) -> Unit): CompletionCallback {
        val callback = CompletionCallback { userData, error, result ->
            try {
                val op = pending.remove(Pointer.nativeValue(userData))
                val handle = op?.finish()
                try {
                    when {
                        op == null -> Unit
                        error != null -> op.fail(Convert.exception(error))
                        result != null -> op.succeed(result)
                        else -> op.fail(NoxyException(NoxyErrorCode.INTERNAL, "callback without error or result"))
                    }
                } finally {
                    if (error != null) C.noxy_error_free(error)
                    if (result != null) free(result)
                    if (handle != null) C.noxy_operation_free(handle)
                }
            } catch (t: Throwable) {
                lastResort(t)
            }
        }
        // The completion thread is a native thread: JNA attaches it to the JVM on its first
        // callback. Keep it attached (as a daemon, so it never holds the JVM up) instead of
        // attaching and detaching it around every callback; JNA detaches it when it exits.
        Native.setCallbackThreadInitializer(callback, CallbackThreadInitializer(true, false, "noxy-completion"))
        return callback
    }

    /** A throwable that escaped everything (an Error): reported, never rethrown into C. */
    fun lastResort(t: Throwable) {
        try {
            val thread = Thread.currentThread()
            thread.uncaughtExceptionHandler?.uncaughtException(thread, t)
        } catch (_: Throwable) {
            // Nothing left to do: the callback must return normally.
        }
    }
}

/**
 * What one operation completes, and its `noxy_operation` handle. The handle is written by the
 * `_async` call, but the callback may run before that call returns, and a cancellation may come
 * at any time from any thread, so the three meet under this object's lock: the handle is freed
 * exactly once, by whichever of [attach] and [finish] comes last, and cancelled only while it
 * is live and the operation unfinished.
 */
internal abstract class Pending<T>(
    /** Kept strongly reachable while the operation is in flight. */
    @Suppress("unused") private val owner: Any,
    private val kind: ResultKind<T>,
) {
    private var handle: Pointer? = null
    private var finished = false
    private var cancelRequested = false

    /** Called by [Operations.start] with the handle the `_async` call wrote. */
    fun attach(operation: Pointer?) {
        val freeNow: Boolean
        synchronized(this) {
            freeNow = finished
            if (!finished) {
                handle = operation
                if (cancelRequested) cancelNative(operation)
            }
        }
        if (freeNow) C.noxy_operation_free(operation)
    }

    /** Called by the callback: the operation is over; returns the handle to free, if attached. */
    fun finish(): Pointer? = synchronized(this) {
        finished = true
        val h = handle
        handle = null
        h
    }

    /** Cancels the native operation (any thread); its callback then reports CANCELLED. */
    fun requestCancel() {
        synchronized(this) {
            if (finished) return
            val h = handle
            if (h == null) cancelRequested = true else cancelNative(h)
        }
    }

    private fun cancelNative(operation: Pointer?) {
        val error = C.noxy_operation_cancel(operation)
        if (error != null) C.noxy_error_free(error) // only for NULL or a forked child
    }

    fun succeed(result: Pointer) {
        val value = try {
            kind.convert(result)
        } catch (t: Throwable) {
            fail(t)
            return
        }
        deliver(Result.success(value))
    }

    fun fail(t: Throwable) = deliver(Result.failure(t))

    /** Hands the outcome over; runs on the completion thread, so it must not run caller code. */
    protected abstract fun deliver(outcome: Result<T>)
}

/** Runs [block] on [executor]; inline only if the executor refuses it. */
internal fun hop(executor: Executor, block: () -> Unit) {
    try {
        executor.execute(block)
    } catch (_: RejectedExecutionException) {
        block()
    }
}

/** Resumes a suspended caller. */
internal class ContinuationPending<T>(
    owner: Any,
    kind: ResultKind<T>,
    private val continuation: CancellableContinuation<T>,
    private val executor: Executor,
) : Pending<T>(owner, kind) {
    override fun deliver(outcome: Result<T>) {
        // A dispatcher that needs dispatching only queues the resumption; one that would resume
        // in place (Unconfined, none) would run the caller's code here: go through the executor.
        val dispatcher = continuation.context[ContinuationInterceptor] as? CoroutineDispatcher
        if (dispatcher != null && dispatcher.isDispatchNeeded(continuation.context)) {
            continuation.resumeWith(outcome)
        } else {
            hop(executor) { continuation.resumeWith(outcome) }
        }
    }
}

/**
 * Completes a future. With an [executor] (the `...Async` methods) the completion runs there,
 * because a `CompletableFuture` runs the dependent stages registered without `Async` on the
 * thread that completes it; without (the blocking methods, whose future nobody else sees) it
 * completes in place, which only wakes the waiting thread.
 */
internal class FuturePending<T>(
    owner: Any,
    kind: ResultKind<T>,
    private val future: CompletableFuture<T>,
    private val executor: Executor?,
) : Pending<T>(owner, kind) {
    override fun deliver(outcome: Result<T>) {
        if (executor == null) complete(outcome) else hop(executor) { complete(outcome) }
    }

    private fun complete(outcome: Result<T>) {
        outcome.fold({ future.complete(it) }, { future.completeExceptionally(it) })
    }
}

/** A future whose `cancel` also cancels the native operation. */
internal class NoxyFuture<T> : CompletableFuture<T>() {
    @Volatile
    var operation: Pending<T>? = null

    override fun cancel(mayInterruptIfRunning: Boolean): Boolean {
        val cancelled = super.cancel(mayInterruptIfRunning)
        if (cancelled) operation?.requestCancel()
        return cancelled
    }
}
