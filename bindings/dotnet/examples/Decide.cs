// Routes one decision and waits for the person's answer: the example of bindings/dotnet/README.md,
// run by run-tests.sh against the development relay.
//   NOXY_ENDPOINT, NOXY_APP_TOKEN, NOXY_IDENTITY, NOXY_CA_PEM_PATH (optional: a private relay's CA)
using System;
using System.Threading;
using System.Threading.Tasks;
using Noxy;

internal static class Decide
{
    private static async Task<int> RunAsync()
    {
        var options = new NoxyClientOptions(
            Environment.GetEnvironmentVariable("NOXY_ENDPOINT"),
            Environment.GetEnvironmentVariable("NOXY_APP_TOKEN"));
        options.CaPemFile = Environment.GetEnvironmentVariable("NOXY_CA_PEM_PATH");
        using (var client = new NoxyClient(options))
        using (var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(5)))
        {
            try
            {
                DecisionResult result = await client.SendDecisionAndWaitForOutcomeAsync(
                    Environment.GetEnvironmentVariable("NOXY_IDENTITY"),
                    "{\"kind\":\"transfer\",\"title\":\"Send 1 ETH\"}",
                    cancellationToken: timeout.Token);
                Console.WriteLine("decision {0}: {1}", result.DecisionId, result.Outcome);
                return result.Outcome == DecisionOutcome.Approved ? 0 : 1;
            }
            catch (NoxyException e)
            {
                // e.Code is the C number (NoxyErrorCode.WaitTimedOut, .Unauthenticated, ...).
                Console.Error.WriteLine("{0}: {1}", e.Code, e.Message);
                return 2;
            }
            catch (OperationCanceledException)
            {
                Console.Error.WriteLine("no answer within 5 minutes");
                return 3;
            }
        }
    }

    private static int Main()
    {
        return RunAsync().GetAwaiter().GetResult();
    }
}
