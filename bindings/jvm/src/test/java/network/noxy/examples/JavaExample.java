// The Java example of the README (between the README markers, verbatim); ExamplesTest runs it
// as a program against the development relay and checks that the README shows this code.
package network.noxy.examples;

// README:begin
import java.util.concurrent.CompletableFuture;

import network.noxy.DecisionOutcome;
import network.noxy.DecisionResult;
import network.noxy.NoxyClient;
import network.noxy.NoxyConfig;
import network.noxy.NoxyException;
import network.noxy.Quota;

public final class JavaExample {
    public static void main(String[] args) {
        NoxyConfig config = new NoxyConfig(System.getenv("NOXY_ENDPOINT"), System.getenv("NOXY_APP_TOKEN"))
                .withCaPemFile(System.getenv("NOXY_CA_PEM_PATH")); // null: the public web PKI
        String identity = System.getenv().getOrDefault("NOXY_IDENTITY", "demo-user");
        try (NoxyClient client = new NoxyClient(config)) {
            // Blocking: waits on this thread (interrupting it cancels the decision).
            DecisionResult result = client.sendDecisionAndWaitForOutcomeBlocking(
                    identity, "{\"kind\":\"transfer\",\"title\":\"Send 1 ETH\",\"amount\":\"1\"}");
            System.out.println("decision " + result.getDecisionId() + ": " + result.getOutcome());
            if (result.getOutcome() == DecisionOutcome.APPROVED) {
                // act
            }
            // Futures: cancel(true) cancels the native operation.
            CompletableFuture<Quota> quota = client.getQuotaAsync();
            System.out.println(quota.join().getRemaining() + " decisions left");
        } catch (NoxyException e) {
            System.err.println("failed: " + e.getCode() + ": " + e.getMessage());
            System.exit(1);
        }
    }
}
// README:end
