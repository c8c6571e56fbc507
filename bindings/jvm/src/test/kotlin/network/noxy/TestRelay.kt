package network.noxy

import java.io.File
import java.nio.file.Files
import java.util.concurrent.TimeUnit

/**
 * The development relay the tests run against: started once per test JVM on free loopback ports
 * (port 0, `--ready-file`), stopped by a shutdown hook when the JVM exits — and, should the JVM
 * die without running it, by the small shell wrapper it runs under, which stops the relay as
 * soon as the JVM's end of its stdin pipe closes.
 *
 * The binary comes from the system property `noxy.devrelay` (set by the pom / `make test-jvm`).
 */
object TestRelay {
    const val APP = "jvmtests"
    const val QUOTA = 10_000_000L
    val token = "jvm-tests-token-${ProcessHandle.current().pid()}"

    /** A suspended app with one identity, `dave`, whose device would approve. */
    const val FROZEN_APP = "jvmfrozen"
    val frozenToken = "jvm-tests-frozen-${ProcessHandle.current().pid()}"

    /** Identity → device policies (one simulated device per policy). */
    val identities = linkedMapOf(
        "alice" to "approve",
        "bob" to "reject",
        "carol" to "ignore",
        "slow" to "approve-after=300",
        "team" to "approve,ignore,reject-after=30000",
    )

    private val state: File = Files.createTempDirectory("noxy-jvm-tests").toFile()
    private val process: Process
    val endpoint: String
    val caPath: String

    init {
        val binary = System.getProperty("noxy.devrelay")
            ?: error("system property noxy.devrelay (the noxy-devrelay binary) is not set")
        check(File(binary).canExecute()) { "noxy-devrelay not found at $binary: run `make test-jvm`" }
        val ready = File(state, "ready.json")
        val args = mutableListOf(
            "/bin/sh", "-c",
            // Runs the relay in the background and stops it when stdin (our pipe) closes.
            "relay=\"\$1\"; shift; \"\$relay\" \"\$@\" & pid=\$!; read _; kill \$pid 2>/dev/null; wait \$pid",
            "sh", binary,
            "--listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0",
            "--state-dir", File(state, "relay").path, "--ready-file", ready.path,
            "--log-level", "warn", "--app", "$token:$APP:$QUOTA",
            "--app", "$frozenToken:$FROZEN_APP:10:suspended", "--identity", "$FROZEN_APP:dave:approve",
        )
        for ((identity, policies) in identities) args += listOf("--identity", "$APP:$identity:$policies")
        process = ProcessBuilder(args)
            .redirectErrorStream(true)
            .redirectOutput(File(state, "relay.log"))
            .start()
        Runtime.getRuntime().addShutdownHook(Thread(::stop, "noxy-test-relay-stop"))
        // A bounded poll for a condition (the ready file exists), not a sleep for timing.
        val deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30)
        while (!ready.isFile) {
            check(process.isAlive) { "the relay exited: " + File(state, "relay.log").readText() }
            check(System.nanoTime() < deadline) { "the relay was not ready after 30 s" }
            Thread.sleep(20)
        }
        val json = ready.readText()
        endpoint = field(json, "endpoint")
        caPath = field(json, "ca_path")
    }

    /** A configuration for this relay's app. */
    fun config(): NoxyConfig = NoxyConfig(endpoint, token, caPemFile = caPath)

    private fun field(json: String, name: String): String =
        Regex("\"$name\"\\s*:\\s*\"([^\"]*)\"").find(json)?.groupValues?.get(1)
            ?: error("no $name in the ready file: $json")

    private fun stop() {
        try {
            process.outputStream.close()
            if (!process.waitFor(10, TimeUnit.SECONDS)) process.destroyForcibly()
        } finally {
            state.deleteRecursively()
        }
    }
}
