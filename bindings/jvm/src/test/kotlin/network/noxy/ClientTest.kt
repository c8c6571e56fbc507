package network.noxy

import kotlinx.coroutines.CancellationException
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.TimeoutCancellationException
import kotlinx.coroutines.launch
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withContext
import kotlinx.coroutines.withTimeout
import network.noxy.internal.Operations
import org.junit.jupiter.api.AfterAll
import org.junit.jupiter.api.Assertions.assertArrayEquals
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertFalse
import org.junit.jupiter.api.Assertions.assertNotEquals
import org.junit.jupiter.api.Assertions.assertNull
import org.junit.jupiter.api.Assertions.fail
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.TestInstance
import org.junit.jupiter.api.Timeout

/** The suspend API against the development relay. */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
@Timeout(60)
class ClientTest {
    private val client = NoxyClient(TestRelay.config())

    @AfterAll
    fun closeClient() = client.close()

    private suspend fun decide(identity: String, sendOptions: SendOptions? = null): DecisionResult =
        client.sendDecisionAndWaitForOutcome(identity, payload("decide for $identity"), sendOptions, FAST_WAIT)

    @Test
    fun `library version matches the binding`() {
        assertEquals(Noxy.BINDING_VERSION, Noxy.version())
    }

    @Test
    fun `approve returns APPROVED with the digest of the exact payload bytes`() = runBlocking<Unit> {
        val text = """{"kind":"transfer","title":"Send 1 ETH to «Zoë» ✓","amount":"1"}"""
        val result = client.sendDecisionAndWaitForOutcome("alice", text, waitOptions = FAST_WAIT)
        assertEquals(DecisionOutcome.APPROVED, result.outcome)
        assertFalse(result.isPending)
        assertArrayEquals(sha256(text), result.plaintextSha256)
        assertEquals(1, result.deliveries.size)
        val delivery = result.deliveries.single()
        assertEquals(DeliveryStatus.DELIVERED, delivery.status)
        assertEquals(result.decisionId, delivery.decisionId)
        assertNull(delivery.errorCode)
        assertTrue(delivery.deviceId.isNotEmpty() && delivery.requestId.isNotEmpty())
    }

    @Test
    fun `reject returns REJECTED`() = runBlocking<Unit> {
        assertEquals(DecisionOutcome.REJECTED, decide("bob").outcome)
    }

    @Test
    fun `an unanswered decision expires at its TTL`() = runBlocking<Unit> {
        val result = decide("carol", SendOptions(ttlSeconds = 1))
        assertEquals(DecisionOutcome.EXPIRED, result.outcome)
        assertFalse(result.isPending)
    }

    @Test
    fun `send, get pending, then wait for the outcome`() = runBlocking<Unit> {
        val text = payload("step by step")
        val sent = client.sendDecision("slow", text)
        assertArrayEquals(sha256(text), sent.plaintextSha256)
        val id = sent.acceptedDecisionId ?: fail<Nothing>("no accepted decision id")
        assertEquals(sent.decisionId, id)
        val first = client.getDecisionOutcome(id, "slow")
        assertEquals(DecisionOutcome.PENDING, first.outcome)
        assertTrue(first.isPending)
        assertNull(first.plaintextSha256, "results of calls that did not send carry no digest")
        assertTrue(first.deliveries.isEmpty())
        val final = client.waitForDecisionOutcome(id, "slow", FAST_WAIT)
        assertEquals(DecisionOutcome.APPROVED, final.outcome)
        assertEquals(id, final.decisionId)
    }

    @Test
    fun `an identity with several devices gets one delivery per device`() = runBlocking<Unit> {
        val devices = client.getIdentityDevices("team")
        assertEquals(3, devices.size)
        assertEquals(3, devices.map { it.deviceId }.toSet().size)
        for (device in devices) {
            assertEquals(1184, device.pqPublicKey.size)
            assertTrue(device.publicKey.isNotEmpty())
        }
        val result = decide("team")
        assertEquals(DecisionOutcome.APPROVED, result.outcome)
        assertEquals(devices.map { it.deviceId }.toSet(), result.deliveries.map { it.deviceId }.toSet())
        assertTrue(result.deliveries.all { it.status == DeliveryStatus.DELIVERED && it.decisionId == result.decisionId })
    }

    @Test
    fun `an identity without devices has nothing to wait on`() = runBlocking<Unit> {
        assertTrue(client.getIdentityDevices("nobody").isEmpty())
        val e = expectNoxy(NoxyErrorCode.NO_DECISION_ID) { decide("nobody") }
        assertTrue(e.message.contains("no devices"), e.message)
        assertTrue(e.deliveries.isEmpty())
        val sent = client.sendDecision("nobody", payload("no one"))
        assertNull(sent.acceptedDecisionId)
        assertTrue(sent.deliveries.isEmpty())
    }

    @Test
    fun `a refused decision carries the per-device results`() = runBlocking<Unit> {
        NoxyClient(TestRelay.config().copy(appToken = TestRelay.frozenToken)).use { frozen ->
            val e = expectNoxy(NoxyErrorCode.NO_DECISION_ID) {
                frozen.sendDecisionAndWaitForOutcome("dave", payload("frozen app"))
            }
            val delivery = e.deliveries.single()
            assertEquals(DeliveryStatus.REJECTED, delivery.status)
            assertTrue(delivery.deviceId.isNotEmpty())
            assertEquals(QuotaStatus.SUSPENDED, frozen.getQuota().status)
        }
    }

    @Test
    fun `quota of the app`() = runBlocking<Unit> {
        val quota = client.getQuota()
        assertEquals(TestRelay.APP, quota.appName)
        assertEquals(TestRelay.QUOTA, quota.total)
        assertTrue(quota.remaining in 1..quota.total)
        assertEquals(QuotaStatus.ACTIVE, quota.status)
    }

    @Test
    fun `the same idempotency key and payload give the same decision`() = runBlocking<Unit> {
        val key = "jvm-idem-${System.nanoTime()}"
        val text = payload("idempotent")
        val a = client.sendDecision("alice", text, SendOptions(idempotencyKey = key))
        val b = client.sendDecision("alice", text, SendOptions(idempotencyKey = key))
        assertEquals(a.decisionId, b.decisionId)
        val c = client.sendDecision("alice", payload("other content"), SendOptions(idempotencyKey = key))
        assertNotEquals(a.decisionId, c.decisionId)
    }

    @Test
    fun `a wrong token is UNAUTHENTICATED`() = runBlocking<Unit> {
        NoxyClient(TestRelay.config().copy(appToken = "not-the-token")).use { wrong ->
            expectNoxy(NoxyErrorCode.UNAUTHENTICATED) { wrong.getQuota() }
            expectNoxy(NoxyErrorCode.UNAUTHENTICATED) { wrong.sendDecisionAndWaitForOutcome("alice", payload("x")) }
        }
    }

    @Test
    fun `invalid payloads are INVALID_PAYLOAD`() = runBlocking<Unit> {
        for (bad in listOf("[1,2]", "not json", "", """{"amount":"1","amount":"1000"}""", "{\"a\":\"\uD800\"}")) {
            expectNoxy(NoxyErrorCode.INVALID_PAYLOAD) { client.sendDecision("alice", bad) }
        }
        val tooBig = """{"blob":"${"x".repeat(70_000)}"}"""
        expectNoxy(NoxyErrorCode.INVALID_PAYLOAD) { client.sendDecisionAndWaitForOutcome("alice", tooBig) }
        assertEquals(0, Operations.inFlight)
    }

    @Test
    fun `strings with an embedded NUL are refused before reaching C`() = runBlocking<Unit> {
        val e = expectNoxy(NoxyErrorCode.INVALID_ARGUMENT) { client.sendDecision("ali\u0000ce", payload("nul")) }
        assertTrue(e.message.contains("identity_id"), e.message)
        expectNoxy(NoxyErrorCode.INVALID_ARGUMENT) { client.getDecisionOutcome("id\u0000", "alice") }
        expectNoxy(NoxyErrorCode.INVALID_ARGUMENT) { client.sendDecision("alice", payload("k"), SendOptions(idempotencyKey = "a\u0000b")) }
    }

    @Test
    fun `an unknown decision is NOT_FOUND`() = runBlocking<Unit> {
        expectNoxy(NoxyErrorCode.NOT_FOUND) { client.getDecisionOutcome("00000000-0000-4000-8000-000000000000", "alice") }
    }

    @Test
    fun `the wait budget ends the wait with WAIT_TIMED_OUT`() = runBlocking<Unit> {
        val started = System.nanoTime()
        val e = expectNoxy(NoxyErrorCode.WAIT_TIMED_OUT) {
            client.sendDecisionAndWaitForOutcome("carol", payload("timeout"), waitOptions = WaitOptions(initialIntervalMs = 50, maxWaitMs = 400))
        }
        val elapsedMs = (System.nanoTime() - started) / 1_000_000
        assertTrue(elapsedMs in 300..10_000, "took $elapsedMs ms")
        assertEquals(1, e.deliveries.size, "errors after routing carry the per-device results")
    }

    @Test
    fun `withTimeout cancels the native operation`() = runBlocking<Unit> {
        try {
            withTimeout(300) { decide("carol") }
            fail<Nothing>("the wait did not time out")
        } catch (_: TimeoutCancellationException) {
            // expected
        }
        // The native wait (20 s budget) ended: its callback ran, reporting CANCELLED.
        awaitCondition("the cancelled operation's callback", 5_000) { Operations.inFlight == 0 }
    }

    @Test
    fun `cancelling a coroutine cancels the native operation`() = runBlocking<Unit> {
        var thrown: Throwable? = null
        val job = launch(Dispatchers.Default) {
            try {
                client.sendDecisionAndWaitForOutcome("carol", payload("cancel me"))
            } catch (t: Throwable) {
                thrown = t
                throw t
            }
        }
        awaitCondition("the operation in flight") { Operations.inFlight == 1 }
        job.cancel()
        job.join()
        assertTrue(thrown is CancellationException, "$thrown")
        awaitCondition("the cancelled operation's callback", 5_000) { Operations.inFlight == 0 }
        // The client still works.
        assertEquals(DecisionOutcome.APPROVED, decide("alice").outcome)
    }

    @Test
    fun `Unconfined coroutines are resumed off the completion thread`() = runBlocking<Unit> {
        val thread = withContext(Dispatchers.Unconfined) {
            client.getQuota()
            Thread.currentThread().name
        }
        assertFalse(thread.startsWith("noxy-completion"), thread)
    }
}
