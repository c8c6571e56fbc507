// A program that ends while clients are still in use, none of them disposed: an async wait in
// flight, a background thread inside a blocking call, a logger, one client on the shared
// runtime. ExitTests runs it and checks that the process exits at once with status 0 (on Mono
// a library thread attached to the runtime would otherwise keep it from exiting).
using System;
using System.Threading;
using System.Threading.Tasks;
using Noxy;

internal static class ExitScenario
{
    private static int Main()
    {
        var options = new NoxyClientOptions(Environment.GetEnvironmentVariable("NOXY_TEST_ENDPOINT"),
            Environment.GetEnvironmentVariable("NOXY_TEST_TOKEN"));
        options.CaPemFile = Environment.GetEnvironmentVariable("NOXY_TEST_CA_PATH");
        options.Logger = (level, message) => { };
        options.LogLevel = NoxyLogLevel.Debug;
        var client = new NoxyClient(options);
        options.SharedRuntime = true;
        var shared = new NoxyClient(options);
        var wait = new WaitOptions();
        wait.MaxWait = TimeSpan.FromMinutes(5);

        // Each client has run a callback on its completion thread.
        Console.WriteLine("quota: " + client.GetQuotaAsync().Result.AppName + ", " + shared.GetQuotaAsync().Result.AppName);
        Task<DecisionResult> pending = client.SendDecisionAndWaitForOutcomeAsync("carol", "{\"kind\":\"exit\"}", null, wait);
        SendResult sent = shared.SendDecision("carol", "{\"kind\":\"exit\"}");
        var inside = new ManualResetEventSlim();
        var blocking = new Thread(() =>
        {
            inside.Set();
            try
            {
                shared.WaitForDecisionOutcome(sent.AcceptedDecisionId, "carol", wait);
            }
            catch (NoxyException)
            {
            }
        });
        blocking.IsBackground = true;
        blocking.Start();
        inside.Wait();
        Console.WriteLine("exiting with a wait in flight: " + (pending.IsCompleted ? "completed" : "pending"));
        return 0;
    }
}
