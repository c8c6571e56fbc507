package network.noxy

import kotlinx.coroutines.runBlocking
import network.noxy.internal.Logging
import network.noxy.internal.NoxyNative
import network.noxy.internal.Operations
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertFalse
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.Timeout
import java.util.concurrent.ConcurrentLinkedQueue
import java.util.concurrent.atomic.AtomicInteger

@Timeout(60)
class LifecycleTest {
    @Test
    fun `configuration errors name the field`() {
        val e = expectNoxy(NoxyErrorCode.INVALID_ARGUMENT) { NoxyClient(TestRelay.config().copy(endpoint = "")) }
        assertTrue(e.message.contains("endpoint"), e.message)
        val ttl = expectNoxy(NoxyErrorCode.INVALID_ARGUMENT) { NoxyClient(TestRelay.config().withDecisionTtlSeconds(-1)) }
        assertTrue(ttl.message.contains("decision_ttl_seconds"), ttl.message)
        expectNoxy(NoxyErrorCode.INVALID_ARGUMENT) { NoxyClient(TestRelay.config().withWorkerThreads(0)) }
        expectNoxy(NoxyErrorCode.INVALID_ARGUMENT) { NoxyClient(TestRelay.config().withConnectTimeoutMs(-1)) }
        val ca = expectNoxy(NoxyErrorCode.INVALID_ARGUMENT) { NoxyClient(TestRelay.config().withCaPemFile("/nonexistent/ca.pem")) }
        assertTrue(ca.message.contains("ca_pem_path"), ca.message)
        expectNoxy(NoxyErrorCode.INVALID_ARGUMENT) { NoxyClient(TestRelay.config().withCaPem("x")) }
        expectNoxy(NoxyErrorCode.INVALID_ARGUMENT) { NoxyClient(TestRelay.config().copy(appToken = "tok\u0000en")) }
    }

    @Test
    fun `a library of another ABI version is refused`() {
        assertTrue(NoxyNative.compatible("0.1.0", "0.1.0"))
        assertTrue(NoxyNative.compatible("0.1.7", "0.1.0"))
        assertFalse(NoxyNative.compatible("0.2.0", "0.1.0"))
        assertFalse(NoxyNative.compatible("1.1.0", "0.1.0"))
        assertTrue(NoxyNative.compatible("1.4.2", "1.0.0"))
        assertFalse(NoxyNative.compatible("2.0.0", "1.0.0"))
        assertFalse(NoxyNative.compatible("", "0.1.0"))
    }

    @Test
    fun `toString leaves the token out`() {
        assertFalse(TestRelay.config().toString().contains(TestRelay.token))
    }

    @Test
    fun `close is idempotent and later calls fail with CANCELLED`() = runBlocking<Unit> {
        val client = NoxyClient(TestRelay.config())
        assertEquals(TestRelay.APP, client.getQuota().appName)
        client.close()
        client.close()
        assertTrue(client.isClosed)
        expectNoxy(NoxyErrorCode.CANCELLED) { client.getQuota() }
        expectNoxy(NoxyErrorCode.CANCELLED) { client.sendDecisionBlocking("alice", payload("late")) }
        assertEquals(0, Operations.inFlight)
    }

    @Test
    fun `a per-client logger receives events and is released after close`() = runBlocking<Unit> {
        val before = Logging.registered
        val messages = ConcurrentLinkedQueue<String>()
        val client = NoxyClient(TestRelay.config().withLogger({ _, m -> messages.add(m) }, LogLevel.DEBUG))
        assertEquals(before + 1, Logging.registered)
        client.getQuota()
        client.sendDecisionAndWaitForOutcome("alice", payload("logged"), waitOptions = FAST_WAIT)
        assertTrue(messages.isNotEmpty())
        assertTrue(messages.none { it.contains(TestRelay.token) || it.contains("logged") }, "no token or payload in logs")
        client.close()
        // free_user_data runs once the client is released: the logger is dropped then.
        awaitCondition("the logger released") { Logging.registered == before }
    }

    @Test
    fun `a logger that throws breaks nothing`() = runBlocking<Unit> {
        val calls = AtomicInteger()
        NoxyClient(TestRelay.config().withLogger({ _, _ -> calls.incrementAndGet(); throw IllegalStateException("boom") }, LogLevel.TRACE)).use { client ->
            assertEquals(TestRelay.APP, client.getQuota().appName)
            assertEquals(DecisionOutcome.APPROVED, client.sendDecisionAndWaitForOutcome("alice", payload("x"), waitOptions = FAST_WAIT).outcome)
        }
        assertTrue(calls.get() > 0)
    }

    @Test
    fun `the process-wide logger serves clients without their own`() = runBlocking<Unit> {
        val before = Logging.registered
        val messages = ConcurrentLinkedQueue<String>()
        Noxy.setLogger({ _, m -> messages.add(m) }, LogLevel.DEBUG)
        try {
            NoxyClient(TestRelay.config()).use { it.getQuota() }
            assertTrue(messages.isNotEmpty())
        } finally {
            Noxy.setLogger(null)
        }
        awaitCondition("the process-wide logger released") { Logging.registered == before }
    }

    @Test
    fun `a forgotten client is freed by the cleaner`() {
        val before = Logging.registered
        createAndForget()
        assertEquals(before + 1, Logging.registered)
        // The logger's free_user_data runs only after noxy_free: the cleaner ran it.
        awaitCondition("the forgotten client freed") {
            System.gc()
            Logging.registered == before
        }
    }

    private fun createAndForget() {
        NoxyClient(TestRelay.config().withLogger({ _, _ -> }, LogLevel.ERROR))
    }

    @Test
    fun `clients on the shared runtime`() = runBlocking<Unit> {
        val a = NoxyClient(TestRelay.config().withSharedRuntime(true))
        val b = NoxyClient(TestRelay.config().withSharedRuntime(true))
        try {
            assertEquals(DecisionOutcome.APPROVED, a.sendDecisionAndWaitForOutcome("alice", payload("a"), waitOptions = FAST_WAIT).outcome)
            assertEquals(DecisionOutcome.REJECTED, b.sendDecisionAndWaitForOutcome("bob", payload("b"), waitOptions = FAST_WAIT).outcome)
        } finally {
            a.close()
            b.close()
        }
    }
}
