// The Kotlin example of the README (between the README markers, verbatim); ExamplesTest runs it
// as a program against the development relay and checks that the README shows this code.
package network.noxy.examples

// README:begin
import kotlinx.coroutines.runBlocking
import network.noxy.DecisionOutcome
import network.noxy.NoxyClient
import network.noxy.NoxyConfig
import network.noxy.NoxyErrorCode
import network.noxy.NoxyException
import network.noxy.WaitOptions

fun main() = runBlocking {
    val config = NoxyConfig(
        endpoint = System.getenv("NOXY_ENDPOINT") ?: "https://relay.noxy.network",
        appToken = System.getenv("NOXY_APP_TOKEN") ?: error("set NOXY_APP_TOKEN"),
        caPemFile = System.getenv("NOXY_CA_PEM_PATH"), // a private or development relay's CA
    )
    NoxyClient(config).use { client ->
        try {
            val result = client.sendDecisionAndWaitForOutcome(
                identityId = System.getenv("NOXY_IDENTITY") ?: "demo-user",
                payloadJson = """{"kind":"transfer","title":"Send 1 ETH","amount":"1"}""",
                waitOptions = WaitOptions(maxWaitMs = 120_000),
            )
            println("decision ${result.decisionId}: ${result.outcome}")
            if (result.outcome == DecisionOutcome.APPROVED) {
                // act
            }
        } catch (e: NoxyException) {
            if (e.code == NoxyErrorCode.WAIT_TIMED_OUT) println("nobody answered in time")
            println("failed: ${e.code}: ${e.message}")
        }
    }
}
// README:end
