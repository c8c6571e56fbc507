package network.noxy

import kotlinx.coroutines.async
import kotlinx.coroutines.awaitAll
import kotlinx.coroutines.asCoroutineDispatcher
import kotlinx.coroutines.runBlocking
import network.noxy.internal.Operations
import org.junit.jupiter.api.AfterAll
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.TestInstance
import org.junit.jupiter.api.Timeout
import java.util.Collections
import java.util.concurrent.CompletableFuture
import java.util.concurrent.ConcurrentHashMap
import java.util.concurrent.CountDownLatch
import java.util.concurrent.Executors
import java.util.concurrent.TimeUnit
import java.util.concurrent.atomic.AtomicBoolean
import java.util.concurrent.atomic.AtomicInteger

@TestInstance(TestInstance.Lifecycle.PER_CLASS)
@Timeout(120)
class ConcurrencyTest {
    private val client = NoxyClient(TestRelay.config())

    @AfterAll
    fun closeClient() = client.close()

    @Test
    fun `1000 concurrent suspended waits on a 2-thread pool`() {
        val pool = Executors.newFixedThreadPool(2) { r -> Thread(r, "test-pool") }
        try {
            val threads = Collections.newSetFromMap(ConcurrentHashMap<Thread, Boolean>())
            val results = runBlocking(pool.asCoroutineDispatcher()) {
                (1..1000).map { i ->
                    async {
                        val r = client.sendDecisionAndWaitForOutcome("slow", payload("decision $i"), waitOptions = FAST_WAIT)
                        threads.add(Thread.currentThread())
                        r
                    }
                }.awaitAll()
            }
            assertEquals(1000, results.size)
            assertTrue(results.all { it.outcome == DecisionOutcome.APPROVED })
            assertEquals(1000, results.map { it.decisionId }.toSet().size)
            // Every continuation resumed on the pool's two threads: no thread per wait.
            assertTrue(threads.size <= 2 && threads.all { it.name == "test-pool" }, threads.toString())
        } finally {
            pool.shutdownNow()
        }
        awaitCondition("no operation left") { Operations.inFlight == 0 }
    }

    @Test
    fun `close during waits cancels them all`() {
        val c = NoxyClient(TestRelay.config())
        val futures = (1..50).map { c.sendDecisionAndWaitForOutcomeAsync("carol", payload("closed $it")) }
        awaitCondition("50 operations in flight") { Operations.inFlight >= 50 }
        c.close()
        assertTrue(c.isClosed)
        for (f in futures) {
            val e = runCatching { f.get(10, TimeUnit.SECONDS) }.exceptionOrNull()?.cause
            assertTrue(e is NoxyException && e.code == NoxyErrorCode.CANCELLED, "$e")
        }
        awaitCondition("no operation left") { Operations.inFlight == 0 }
        c.close() // idempotent
        expectNoxy(NoxyErrorCode.CANCELLED) { c.getQuotaBlocking() }
        val later = c.getQuotaAsync()
        val e = runCatching { later.get(5, TimeUnit.SECONDS) }.exceptionOrNull()?.cause
        assertTrue(e is NoxyException && e.code == NoxyErrorCode.CANCELLED, "$e")
        runBlocking { expectNoxy(NoxyErrorCode.CANCELLED) { c.getQuota() } }
    }

    @Test
    fun `close races with calls starting on other threads`() {
        repeat(20) { round ->
            val c = NoxyClient(TestRelay.config())
            val start = CountDownLatch(1)
            val stop = AtomicBoolean(false)
            val futures = ConcurrentHashMap.newKeySet<CompletableFuture<Quota>>()
            val refusedAtOnce = AtomicInteger()
            val workers = (1..4).map {
                Thread {
                    start.await()
                    while (!stop.get()) {
                        try {
                            futures.add(c.getQuotaAsync())
                        } catch (e: NoxyException) {
                            refusedAtOnce.incrementAndGet()
                        }
                        if (futures.size > 2_000) break
                    }
                }.apply { start() }
            }
            start.countDown()
            awaitCondition("calls started (round $round)") { futures.size >= 20 }
            // Several threads close at once, while the workers keep starting calls.
            val closers = (1..3).map { Thread { c.close() }.apply { start() } }
            closers.forEach { it.join(10_000) }
            stop.set(true)
            workers.forEach { it.join(10_000) }
            assertEquals(0, refusedAtOnce.get(), "the async forms fail their future, they do not throw")
            for (f in futures) {
                try {
                    assertEquals(TestRelay.APP, f.get(10, TimeUnit.SECONDS).appName)
                } catch (e: java.util.concurrent.ExecutionException) {
                    val cause = e.cause
                    assertTrue(cause is NoxyException && cause.code == NoxyErrorCode.CANCELLED, "$cause")
                }
            }
        }
        awaitCondition("no operation left") { Operations.inFlight == 0 }
    }

    @Test
    fun `a System gc storm during waits loses no completion`() {
        val done = AtomicInteger()
        val approved = AtomicInteger()
        val storming = AtomicBoolean(true)
        val storm = Thread {
            while (storming.get()) {
                System.gc()
                @Suppress("UNUSED_VARIABLE")
                val garbage = ByteArray(1 shl 20)
            }
        }.apply { start() }
        try {
            // Nothing here keeps the futures, nor the second client: only the binding does.
            startForgotten(100, done, approved)
            repeat(100) { i ->
                client.sendDecisionAndWaitForOutcomeAsync("slow", payload("gc $i"), waitOptions = FAST_WAIT)
                    .whenComplete { r, _ ->
                        if (r?.outcome == DecisionOutcome.APPROVED) approved.incrementAndGet()
                        done.incrementAndGet()
                    }
            }
            val pool = Executors.newFixedThreadPool(2)
            try {
                runBlocking(pool.asCoroutineDispatcher()) {
                    (1..100).map { i ->
                        async {
                            val r = client.sendDecisionAndWaitForOutcome("slow", payload("gc co $i"), waitOptions = FAST_WAIT)
                            if (r.outcome == DecisionOutcome.APPROVED) approved.incrementAndGet()
                            done.incrementAndGet()
                        }
                    }.awaitAll()
                }
            } finally {
                pool.shutdownNow()
            }
            awaitCondition("300 completions", 60_000) { done.get() == 300 }
            assertEquals(300, approved.get())
        } finally {
            storming.set(false)
            storm.join()
        }
    }

    /** Starts [n] decisions on a client nobody keeps a reference to. */
    private fun startForgotten(n: Int, done: AtomicInteger, approved: AtomicInteger) {
        val forgotten = NoxyClient(TestRelay.config())
        repeat(n) { i ->
            forgotten.sendDecisionAndWaitForOutcomeAsync("slow", payload("forgotten $i"), waitOptions = FAST_WAIT)
                .whenComplete { r, _ ->
                    if (r?.outcome == DecisionOutcome.APPROVED) approved.incrementAndGet()
                    done.incrementAndGet()
                }
        }
    }
}
