package network.noxy

import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.Timeout
import java.io.File
import java.util.concurrent.TimeUnit

/** The README's examples: the code it shows is these files', and each runs as a program. */
@Timeout(120)
class ExamplesTest {
    private val readme = File(System.getProperty("noxy.readme") ?: "../../README.md").readText()

    private fun shown(source: String): String {
        val text = File(source).readText()
        return text.substringAfter("// README:begin\n").substringBefore("// README:end")
    }

    /** Runs [mainClass] in a new JVM with the environment the examples read. */
    private fun run(mainClass: String, identity: String): Pair<Int, String> {
        val java = ProcessHandle.current().info().command().orElse("java")
        val process = ProcessBuilder(
            java, "-cp", System.getProperty("java.class.path"),
            "-Djna.library.path=" + System.getProperty("jna.library.path"), mainClass,
        ).redirectErrorStream(true).also {
            it.environment()["NOXY_ENDPOINT"] = TestRelay.endpoint
            it.environment()["NOXY_APP_TOKEN"] = TestRelay.token
            it.environment()["NOXY_CA_PEM_PATH"] = TestRelay.caPath
            it.environment()["NOXY_IDENTITY"] = identity
        }.start()
        val out = process.inputStream.bufferedReader().readText()
        check(process.waitFor(60, TimeUnit.SECONDS)) { "$mainClass did not finish: $out" }
        return process.exitValue() to out
    }

    @Test
    fun `the README shows the examples' code`() {
        for (source in listOf(
            "src/test/kotlin/network/noxy/examples/KotlinExample.kt",
            "src/test/java/network/noxy/examples/JavaExample.java",
        )) {
            assertTrue(readme.contains(shown(source)), "README.md lacks the code of $source")
        }
    }

    @Test
    fun `the Kotlin example prints the outcome`() {
        val (status, out) = run("network.noxy.examples.KotlinExampleKt", "alice")
        assertEquals(0, status, out)
        assertTrue(Regex("(?m)^decision [0-9a-f-]+: APPROVED$").containsMatchIn(out), out)
        val (_, rejected) = run("network.noxy.examples.KotlinExampleKt", "bob")
        assertTrue(Regex("(?m)^decision [0-9a-f-]+: REJECTED$").containsMatchIn(rejected), rejected)
    }

    @Test
    fun `the Java example prints the outcome and the quota`() {
        val (status, out) = run("network.noxy.examples.JavaExample", "alice")
        assertEquals(0, status, out)
        assertTrue(Regex("(?m)^decision [0-9a-f-]+: APPROVED$").containsMatchIn(out), out)
        assertTrue(Regex("(?m)^[0-9]+ decisions left$").containsMatchIn(out), out)
        val (failed, err) = run("network.noxy.examples.JavaExample", "nobody")
        assertEquals(1, failed, err)
        assertTrue(err.contains("failed: NO_DECISION_ID"), err)
    }
}
