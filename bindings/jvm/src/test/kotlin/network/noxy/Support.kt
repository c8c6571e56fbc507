package network.noxy

import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.fail
import java.security.MessageDigest
import java.util.concurrent.TimeUnit

/** Polls [condition] until it holds or [timeoutMs] passes (a bounded wait, not a sleep). */
fun awaitCondition(what: String, timeoutMs: Long = 10_000, condition: () -> Boolean) {
    val deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(timeoutMs)
    while (!condition()) {
        if (System.nanoTime() > deadline) fail<Unit>("timed out after $timeoutMs ms waiting for: $what")
        Thread.sleep(5)
    }
}

fun sha256(text: String): ByteArray = MessageDigest.getInstance("SHA-256").digest(text.toByteArray(Charsets.UTF_8))

/** Runs [block] and returns the [NoxyException] it throws, checking its code. */
inline fun expectNoxy(code: NoxyErrorCode, block: () -> Unit): NoxyException {
    try {
        block()
    } catch (e: NoxyException) {
        assertEquals(code, e.code, "unexpected code; message: ${e.message}")
        return e
    }
    fail<Unit>("expected NoxyException($code), nothing was thrown")
    throw AssertionError()
}

/** Waits short between polls so that the tests do not wait the default 400 ms. */
val FAST_WAIT = WaitOptions(initialIntervalMs = 50, maxIntervalMs = 200, maxWaitMs = 20_000)

fun payload(title: String) = """{"kind":"tool_call","title":"$title","args":{"n":1}}"""
