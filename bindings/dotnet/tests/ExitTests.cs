using System;
using System.Diagnostics;
using System.IO;
using NUnit.Framework;

namespace Noxy.Tests
{
    [TestFixture]
    public class ExitTests
    {
        // How often the scenario runs: the hang it guards against was a race (a blocking call's
        // thread aborted before it released its client) that showed in about one run in ten.
        private const int Runs = 5;

        [Test]
        public void ProcessExitsWithUndisposedClientsInUse()
        {
            string program = Path.Combine(Path.GetDirectoryName(typeof(ExitTests).Assembly.Location), "ExitScenario.exe");
            Assert.IsTrue(File.Exists(program), program);
            for (int run = 1; run <= Runs; run++)
            {
                RunScenario(program, run);
            }
        }

        private static void RunScenario(string program, int run)
        {
            var start = new ProcessStartInfo(Environment.GetEnvironmentVariable("NOXY_TEST_MONO") ?? "mono",
                "\"" + program + "\"");
            start.UseShellExecute = false;
            start.RedirectStandardOutput = true;
            start.RedirectStandardError = true;
            using (Process process = Process.Start(start))
            {
                var output = process.StandardOutput.ReadToEndAsync();
                var errorOutput = process.StandardError.ReadToEndAsync();
                bool exited = process.WaitForExit(30000);
                if (!exited)
                {
                    process.Kill();
                }
                string errors = "run " + run + ": " + Wait.For(errorOutput) + Wait.For(output);
                Assert.IsTrue(exited, "the process did not exit within 30 s, " + errors);
                Assert.AreEqual(0, process.ExitCode, errors);
                StringAssert.Contains("quota: " + Relay.AppName + ", " + Relay.AppName, output.Result);
                StringAssert.Contains("exiting with a wait in flight: pending", output.Result);
            }
        }
    }
}
