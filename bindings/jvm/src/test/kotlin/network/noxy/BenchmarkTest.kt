package network.noxy

import com.sun.jna.CallbackThreadInitializer
import com.sun.jna.Native
import com.sun.jna.Pointer
import com.sun.jna.ptr.PointerByReference
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.joinAll
import kotlinx.coroutines.launch
import kotlinx.coroutines.runBlocking
import network.noxy.internal.CompletionCallback
import network.noxy.internal.Convert
import network.noxy.internal.SizeT
import network.noxy.internal.Utf8
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.condition.EnabledIfSystemProperty
import java.io.File
import java.lang.management.ManagementFactory
import java.util.concurrent.CountDownLatch
import java.util.concurrent.TimeUnit
import java.util.concurrent.atomic.AtomicInteger
import java.util.concurrent.atomic.AtomicLong
import network.noxy.internal.NoxyNative as C

/**
 * Decisions per second through the binding against the C async API, on the same relay, with
 * the same settings: `send_and_wait` to an identity whose device approves at once, WINDOW
 * decisions in flight, polls every POLL_MS. Variants, run in turn ROUNDS times (medians
 * reported):
 * - `c`: bench/c_async_bench.c, a C program on `noxy_send_and_wait_async` (each callback starts
 *   the next decision);
 * - `jna-raw`: the same loop in this JVM through JNA with a minimal callback (no binding);
 * - `kotlin-suspend`: [NoxyClient.sendDecisionAndWaitForOutcome], WINDOW coroutines on
 *   `Dispatchers.Default`;
 * - `java-future`: [NoxyClient.sendDecisionAndWaitForOutcomeAsync], each completion starting the next.
 *
 * Run by bench/run.sh (`-Dnoxy.bench=true`); not part of `mvn verify`.
 */
@EnabledIfSystemProperty(named = "noxy.bench", matches = "true")
class BenchmarkTest {
    private val total = Integer.getInteger("noxy.bench.total", 3000)
    private val window = Integer.getInteger("noxy.bench.window", 200)
    private val pollMs = java.lang.Long.getLong("noxy.bench.pollMs", 10)
    private val rounds = Integer.getInteger("noxy.bench.rounds", 5)
    private val identity = "alice"
    private val variants = (System.getProperty("noxy.bench.variants") ?: "c,jna-raw,kotlin-suspend,java-future").split(",")
    private val wait = WaitOptions(initialIntervalMs = pollMs, maxIntervalMs = pollMs)
    private val os = ManagementFactory.getOperatingSystemMXBean() as com.sun.management.OperatingSystemMXBean

    private class Figure(val perSecond: Double, val cpuUsPerDecision: Double)

    @Test
    fun `decisions per second, binding against the C async API`() {
        val cBench = System.getProperty("noxy.bench.c") ?: error("noxy.bench.c (the C benchmark binary) not set")
        NoxyClient(TestRelay.config()).use { client ->
            val raw = RawJna()
            try {
                // Warm-up: JIT, connections.
                val runs = linkedMapOf<String, () -> Figure>(
                    "c" to { cRun(cBench) },
                    "jna-raw" to { measure { raw.run(total) } },
                    "kotlin-suspend" to { measure { kotlinRun(client, total) } },
                    "java-future" to { measure { futureRun(client, total) } },
                ).filterKeys { it in variants }
                repeat(2) { runs.filterKeys { it != "c" }.values.forEach { it() } }
                val figures = linkedMapOf<String, MutableList<Figure>>()
                repeat(rounds) {
                    for ((name, run) in runs) figures.getOrPut(name) { mutableListOf() } += run()
                }
                val report = StringBuilder()
                report.append("benchmark: $total decisions per run, $window in flight, polls every $pollMs ms, $rounds rounds, medians\n")
                val cMedian = median((figures["c"] ?: figures.values.first()).map { it.perSecond })
                for ((name, list) in figures) {
                    val perSecond = median(list.map { it.perSecond })
                    val cpu = median(list.map { it.cpuUsPerDecision })
                    val all = list.joinToString(" ") { "%.0f".format(it.perSecond) }
                    report.append(
                        "%-15s %8.1f decisions/s  %+6.1f%% vs c  %7.1f CPU us/decision  (runs: %s)\n"
                            .format(name, perSecond, (perSecond / cMedian - 1) * 100, cpu, all),
                    )
                }
                print(report)
                File(System.getProperty("noxy.bench.out") ?: "target/benchmark.txt").writeText(report.toString())
            } finally {
                raw.close()
            }
        }
    }

    private fun measure(run: () -> Unit): Figure {
        val cpu0 = os.processCpuTime
        val t0 = System.nanoTime()
        run()
        val seconds = (System.nanoTime() - t0) / 1e9
        val cpu = (os.processCpuTime - cpu0) / 1e3
        return Figure(total / seconds, cpu / total)
    }

    private fun cRun(binary: String): Figure {
        val process = ProcessBuilder(
            binary, TestRelay.endpoint, TestRelay.caPath, TestRelay.token, identity,
            total.toString(), window.toString(), pollMs.toString(),
        ).redirectErrorStream(true).start()
        val out = process.inputStream.bufferedReader().readText()
        check(process.waitFor(120, TimeUnit.SECONDS) && process.exitValue() == 0) { "C benchmark failed: $out" }
        fun field(name: String) = Regex("$name=([0-9.]+)").find(out)!!.groupValues[1].toDouble()
        return Figure(field("per_second"), field("cpu_us_per_decision"))
    }

    private fun kotlinRun(client: NoxyClient, n: Int) = runBlocking(Dispatchers.Default) {
        val approved = AtomicInteger()
        (0 until window).map { w ->
            launch {
                for (i in w until n step window) {
                    val r = client.sendDecisionAndWaitForOutcome(identity, """{"kind":"bench","title":"decision $i"}""", waitOptions = wait)
                    if (r.outcome == DecisionOutcome.APPROVED) approved.incrementAndGet()
                }
            }
        }.joinAll()
        assertEquals(n, approved.get())
    }

    private fun futureRun(client: NoxyClient, n: Int) {
        val started = AtomicInteger()
        val approved = AtomicInteger()
        val done = CountDownLatch(n)
        fun next() {
            val i = started.getAndIncrement()
            if (i >= n) return
            client.sendDecisionAndWaitForOutcomeAsync(identity, """{"kind":"bench","title":"decision $i"}""", null, wait)
                .whenComplete { r, _ ->
                    if (r?.outcome == DecisionOutcome.APPROVED) approved.incrementAndGet()
                    done.countDown()
                    next()
                }
        }
        repeat(window) { next() }
        check(done.await(120, TimeUnit.SECONDS))
        assertEquals(n, approved.get())
    }

    /** The C loop through JNA with nothing of the binding: one static callback, no conversions. */
    private class RawJna : AutoCloseable {
        private val client: Pointer
        private val waitOptions: Pointer = C.noxy_wait_options_new()!!
        private val identity = Utf8.cString("alice", "identity")
        private var total = 0
        private val started = AtomicLong()
        private val approved = AtomicInteger()
        private var done = CountDownLatch(0)
        private val callback = CompletionCallback { _, error, result ->
            if (error == null && C.noxy_decision_result_outcome(result) == DecisionOutcome.APPROVED.value) {
                approved.incrementAndGet()
            }
            C.noxy_error_free(error)
            C.noxy_decision_result_free(result)
            done.countDown()
            next()
        }

        init {
            Native.setCallbackThreadInitializer(callback, CallbackThreadInitializer(true, false, "raw-completion"))
            val config = C.noxy_config_new()
            Convert.check(C.noxy_config_set_endpoint(config, Utf8.cString(TestRelay.endpoint, "endpoint")))
            Convert.check(C.noxy_config_set_app_token(config, Utf8.cString(TestRelay.token, "token")))
            Convert.check(C.noxy_config_set_ca_pem_file(config, Utf8.cString(TestRelay.caPath, "ca")))
            val out = PointerByReference()
            Convert.check(C.noxy_client_new(config, out))
            C.noxy_config_free(config)
            client = out.value
            val poll = java.lang.Long.getLong("noxy.bench.pollMs", 10)
            Convert.check(C.noxy_wait_options_set_initial_interval_ms(waitOptions, poll))
            Convert.check(C.noxy_wait_options_set_max_interval_ms(waitOptions, poll))
        }

        private fun next() {
            val i = started.getAndIncrement()
            if (i >= total) return
            val payload = """{"kind":"bench","title":"decision $i"}""".toByteArray()
            Convert.check(
                C.noxy_send_and_wait_async(
                    client, identity, payload, SizeT(payload.size.toLong()), null, waitOptions, callback, null, null,
                ),
            )
        }

        fun run(n: Int) {
            total = n
            started.set(0)
            approved.set(0)
            done = CountDownLatch(n)
            repeat(Integer.getInteger("noxy.bench.window", 200)) { next() }
            check(done.await(120, TimeUnit.SECONDS))
            assertEquals(n, approved.get())
        }

        override fun close() {
            C.noxy_wait_options_free(waitOptions)
            C.noxy_free(client) // every callback ran (counted)
        }
    }

    private fun median(values: List<Double>): Double = values.sorted().let { s ->
        if (s.size % 2 == 1) s[s.size / 2] else (s[s.size / 2 - 1] + s[s.size / 2]) / 2
    }
}
