package network.noxy.internal

import com.sun.jna.Pointer
import network.noxy.NoxyErrorCode
import network.noxy.NoxyException
import java.util.concurrent.atomic.AtomicBoolean
import java.util.concurrent.atomic.AtomicLong

/**
 * The `noxy_client *` and the rule of `noxy_free`: no other thread may be inside a call with the
 * client when it runs. Every call goes through [use], which counts the threads inside; [close]
 * marks the handle closed (later calls fail with CANCELLED, as libnoxy answers calls on a closed
 * client) and the last thread out — or [close] itself when nobody is inside — calls `noxy_free`.
 * Neither ever blocks: the calls counted are the non-blocking `_async` starts, and `noxy_free`
 * never blocks either. Separate from `NoxyClient` so that a `Cleaner` can run [close] once the
 * client became unreachable.
 */
internal class ClientHandle(private val client: Pointer) : Runnable {
    /** Bit 0: closed. Bits 1..63: the number of threads inside a call. */
    private val state = AtomicLong(0)
    private val freed = AtomicBoolean(false)

    val isClosed: Boolean get() = state.get() and CLOSED != 0L

    inline fun <R> use(block: (Pointer) -> R): R {
        acquire()
        try {
            return block(pointer())
        } finally {
            release()
        }
    }

    fun pointer(): Pointer = client

    fun acquire() {
        while (true) {
            val s = state.get()
            if (s and CLOSED != 0L) throw NoxyException(NoxyErrorCode.CANCELLED, "the client is closed")
            if (state.compareAndSet(s, s + ONE)) return
        }
    }

    fun release() {
        if (state.addAndGet(-ONE) == CLOSED) free()
    }

    /** Idempotent; any thread; never blocks. */
    fun close() {
        while (true) {
            val s = state.get()
            if (s and CLOSED != 0L) return
            if (state.compareAndSet(s, s or CLOSED)) {
                if (s == 0L) free()
                return
            }
        }
    }

    /** The Cleaner's action. */
    override fun run() = close()

    private fun free() {
        // It closes the client: operations in flight end with CANCELLED; their callbacks still
        // run afterwards, and find their (static) callback objects and registry entries intact.
        if (freed.compareAndSet(false, true)) NoxyNative.noxy_free(client)
    }

    private companion object {
        const val CLOSED = 1L
        const val ONE = 2L
    }
}
