using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Linq;
using System.Runtime.CompilerServices;
using System.Text;
using System.Threading;
using System.Threading.Tasks;
using NUnit.Framework;
using Noxy;

namespace Noxy.Tests
{
    [TestFixture]
    public class ClientTests
    {
        private readonly List<NoxyClient> _clients = new List<NoxyClient>();

        /// <summary>A client on the test relay, shut down after the test.</summary>
        private NoxyClient Client(NoxyClientOptions options = null)
        {
            var client = new NoxyClient(options ?? Relay.Options());
            lock (_clients)
            {
                _clients.Add(client);
            }
            return client;
        }

        [TearDown]
        public void ShutDownClients()
        {
            // The orderly shutdown: no callback of these clients runs after the test.
            foreach (NoxyClient client in _clients)
            {
                try
                {
                    client.Close();
                    Assert.IsTrue(client.Drain(TimeSpan.FromSeconds(30)), "drain");
                }
                catch (ObjectDisposedException)
                {
                }
                client.Dispose();
            }
            _clients.Clear();
        }

        // ---- mapping of the C ABI ----

        [Test]
        public void NativeVersionIsTheHeaders()
        {
            Assert.AreEqual("0.1.0", NoxyClient.NativeVersion);
        }

        [Test]
        public void EnumsHaveTheCNumbersAndNames()
        {
            // 0..13, each named as the library names it, and nothing else.
            var codes = (NoxyErrorCode[])Enum.GetValues(typeof(NoxyErrorCode));
            Assert.AreEqual(14, codes.Length);
            for (int i = 0; i <= 13; i++)
            {
                Assert.IsTrue(Enum.IsDefined(typeof(NoxyErrorCode), i), "code " + i);
                Assert.AreEqual(CNames.ErrorCode(i), CNames.Snake(((NoxyErrorCode)i).ToString()));
            }
            foreach (DecisionOutcome outcome in Enum.GetValues(typeof(DecisionOutcome)))
            {
                Assert.AreEqual(CNames.Outcome((int)outcome), outcome.ToString().ToUpperInvariant());
            }
            Assert.AreEqual(5, Enum.GetValues(typeof(DecisionOutcome)).Length);
            foreach (DeliveryStatus status in Enum.GetValues(typeof(DeliveryStatus)))
            {
                Assert.AreEqual(CNames.DeliveryStatus((int)status), CNames.Snake(status.ToString()).ToUpperInvariant());
            }
            Assert.AreEqual(6, Enum.GetValues(typeof(DeliveryStatus)).Length);
        }

        // ---- outcomes ----

        private void ExpectOutcome(string identity, DecisionOutcome expected)
        {
            NoxyClient client = Client();
            DecisionResult result = Wait.For(client.SendDecisionAndWaitForOutcomeAsync(identity, Relay.Payload, null,
                Relay.FastWait(TimeSpan.FromSeconds(20))));
            Assert.AreEqual(expected, result.Outcome);
            Assert.IsFalse(result.IsPending);
            Assert.AreEqual(36, result.DecisionId.Length);
            Assert.AreEqual(Relay.PayloadSha256, Relay.Hex(result.PlaintextSha256));
            Assert.AreEqual(1, result.Deliveries.Count);
            Delivery delivery = result.Deliveries[0];
            Assert.AreEqual(DeliveryStatus.Delivered, delivery.Status);
            Assert.AreEqual(NoxyErrorCode.Ok, delivery.ErrorCode);
            Assert.IsNull(delivery.ErrorMessage);
            Assert.AreEqual(result.DecisionId, delivery.DecisionId);
            Assert.IsNotEmpty(delivery.DeviceId);
            Assert.AreEqual(36, delivery.RequestId.Length);
        }

        [Test]
        public void Approve()
        {
            ExpectOutcome(Relay.Alice, DecisionOutcome.Approved);
        }

        [Test]
        public void Reject()
        {
            ExpectOutcome(Relay.Bob, DecisionOutcome.Rejected);
        }

        [Test]
        public void Expire()
        {
            NoxyClient client = Client();
            var send = new SendOptions();
            send.TtlSeconds = 1;
            DecisionResult result = Wait.For(client.SendDecisionAndWaitForOutcomeAsync(Relay.Carol, Relay.Payload, send,
                Relay.FastWait(TimeSpan.FromSeconds(15))));
            Assert.AreEqual(DecisionOutcome.Expired, result.Outcome);
        }

        [Test]
        public void BlockingFormsApproveAndReject()
        {
            NoxyClient client = Client();
            DecisionResult approved = client.SendDecisionAndWaitForOutcome(Relay.Alice, Relay.Payload, null,
                Relay.FastWait(TimeSpan.FromSeconds(20)));
            Assert.AreEqual(DecisionOutcome.Approved, approved.Outcome);
            Assert.AreEqual(Relay.PayloadSha256, Relay.Hex(approved.PlaintextSha256));
            DecisionResult rejected = client.SendDecisionAndWaitForOutcome(Relay.Bob, Encoding.UTF8.GetBytes(Relay.Payload),
                null, Relay.FastWait(TimeSpan.FromSeconds(20)));
            Assert.AreEqual(DecisionOutcome.Rejected, rejected.Outcome);
        }

        [Test]
        public void SendThenGetThenWait()
        {
            NoxyClient client = Client();
            byte[] payload = Encoding.UTF8.GetBytes("{\"kind\":\"transfer\",\"amount\":\"1 ETH\",\"note\":\"caf\u00e9\"}");
            SendResult sent = Wait.For(client.SendDecisionAsync(Relay.Alice, payload));
            Assert.AreEqual(36, sent.DecisionId.Length);
            Assert.AreEqual(sent.DecisionId, sent.AcceptedDecisionId);
            Assert.AreEqual(Relay.Sha256Hex(payload), Relay.Hex(sent.PlaintextSha256));
            Assert.AreEqual(1, sent.Deliveries.Count);
            Assert.AreEqual(DeliveryStatus.Delivered, sent.Deliveries[0].Status);

            DecisionResult waited = Wait.For(client.WaitForDecisionOutcomeAsync(sent.AcceptedDecisionId, Relay.Alice,
                Relay.FastWait(TimeSpan.FromSeconds(20))));
            Assert.AreEqual(DecisionOutcome.Approved, waited.Outcome);
            Assert.AreEqual(sent.AcceptedDecisionId, waited.DecisionId);
            Assert.IsNull(waited.PlaintextSha256, "only send-and-wait results carry the digest");
            Assert.AreEqual(0, waited.Deliveries.Count);

            DecisionResult got = Wait.For(client.GetDecisionOutcomeAsync(sent.AcceptedDecisionId, Relay.Alice));
            Assert.AreEqual(DecisionOutcome.Approved, got.Outcome);
            Assert.IsFalse(got.IsPending);

            // Carol never answers: her decision stays pending.
            SendResult pendingSent = client.SendDecision(Relay.Carol, Relay.Payload);
            DecisionResult pending = client.GetDecisionOutcome(pendingSent.AcceptedDecisionId, Relay.Carol);
            Assert.AreEqual(DecisionOutcome.Pending, pending.Outcome);
            Assert.IsTrue(pending.IsPending);
            Wait.Noxy(client.GetDecisionOutcomeAsync("00000000-0000-4000-8000-000000000000", Relay.Alice),
                NoxyErrorCode.NotFound);
            NoxyException e = Assert.Throws<NoxyException>(
                () => client.WaitForDecisionOutcome(pendingSent.AcceptedDecisionId, Relay.Carol,
                    Relay.FastWait(TimeSpan.FromMilliseconds(200))));
            Assert.AreEqual(NoxyErrorCode.WaitTimedOut, e.Code);
        }

        [Test]
        public void NoDevicesIsNoDecisionId()
        {
            NoxyClient client = Client();
            NoxyException e = Wait.Noxy(client.SendDecisionAndWaitForOutcomeAsync(Relay.Nobody, Relay.Payload),
                NoxyErrorCode.NoDecisionId);
            StringAssert.Contains("no devices", e.Message);
            SendResult sent = client.SendDecision(Relay.Nobody, Relay.Payload);
            Assert.IsNull(sent.AcceptedDecisionId);
            Assert.AreEqual(0, sent.Deliveries.Count);
        }

        [Test]
        public void IdempotencyKeyGivesTheSameDecision()
        {
            NoxyClient client = Client();
            var send = new SendOptions();
            send.IdempotencyKey = "dotnet-" + Guid.NewGuid();
            SendResult first = Wait.For(client.SendDecisionAsync(Relay.Alice, Relay.Payload, send));
            SendResult again = client.SendDecision(Relay.Alice, Relay.Payload, send);
            Assert.AreEqual(first.DecisionId, again.DecisionId);
            SendResult changed = client.SendDecision(Relay.Alice, "{\"kind\":\"other\"}", send);
            Assert.AreNotEqual(first.DecisionId, changed.DecisionId);
        }

        // ---- quota and devices ----

        [Test]
        public void Quota()
        {
            NoxyClient client = Client();
            Quota quota = Wait.For(client.GetQuotaAsync());
            Assert.AreEqual(Relay.AppName, quota.AppName);
            Assert.AreEqual(10000000UL, quota.Total);
            Assert.LessOrEqual(quota.Remaining, quota.Total);
            Assert.AreEqual(QuotaStatus.Active, quota.Status);
            Quota again = client.GetQuota();
            Assert.AreEqual(Relay.AppName, again.AppName);
            Assert.AreEqual(quota.Total, again.Total);
        }

        [Test]
        public void IdentityDevices()
        {
            NoxyClient client = Client();
            IReadOnlyList<Device> team = Wait.For(client.GetIdentityDevicesAsync(Relay.Team));
            Assert.AreEqual(2, team.Count);
            Assert.AreNotEqual(team[0].DeviceId, team[1].DeviceId);
            foreach (Device device in team)
            {
                Assert.IsNotEmpty(device.DeviceId);
                Assert.AreEqual(1184, device.PqPublicKey.Count);
                Assert.Greater(device.PublicKey.Count, 0);
            }
            Assert.AreEqual(0, client.GetIdentityDevices(Relay.Nobody).Count);
            Assert.AreEqual(1, client.GetIdentityDevices(Relay.Alice).Count);
        }

        // ---- errors ----

        [Test]
        public void WrongTokenIsUnauthenticated()
        {
            NoxyClient client = Client(Relay.Options("wrong-token"));
            Wait.Noxy(client.SendDecisionAndWaitForOutcomeAsync(Relay.Alice, Relay.Payload), NoxyErrorCode.Unauthenticated);
            Wait.Noxy(client.GetQuotaAsync(), NoxyErrorCode.Unauthenticated);
            NoxyException e = Assert.Throws<NoxyException>(() => client.GetQuota());
            Assert.AreEqual(NoxyErrorCode.Unauthenticated, e.Code);
        }

        [Test]
        public void InvalidPayloads()
        {
            NoxyClient client = Client();
            var invalid = new List<byte[]>
            {
                Encoding.UTF8.GetBytes("not json"),
                Encoding.UTF8.GetBytes("[1, 2]"),
                Encoding.UTF8.GetBytes("{\"amount\":\"1\",\"amount\":\"1000\"}"),
                Encoding.UTF8.GetBytes("{\"a\":{\"b\":1,\"b\":2}}"),
                Encoding.UTF8.GetBytes("{\"big\":\"" + new string('x', 70 * 1024) + "\"}"),
                new byte[] { (byte)'{', (byte)'"', 0xff, (byte)'"', (byte)':', (byte)'1', (byte)'}' },
                Encoding.UTF8.GetBytes("{\"a\":1}\u0000"),
                new byte[0],
            };
            foreach (byte[] payload in invalid)
            {
                Wait.Noxy(client.SendDecisionAndWaitForOutcomeAsync(Relay.Alice, payload), NoxyErrorCode.InvalidPayload);
                NoxyException e = Assert.Throws<NoxyException>(() => client.SendDecision(Relay.Alice, payload));
                Assert.AreEqual(NoxyErrorCode.InvalidPayload, e.Code);
            }
            Wait.Noxy(client.SendDecisionAsync(Relay.Alice, "{\"a\":1,\"a\":1}"), NoxyErrorCode.InvalidPayload);
        }

        [Test]
        public void ArgumentsTheBindingRefuses()
        {
            NoxyClient client = Client();
            Assert.Throws<ArgumentException>(() => client.SendDecisionAsync("ali\u0000ce", Relay.Payload));
            Assert.Throws<ArgumentException>(() => client.SendDecision("ali\u0000ce", Relay.Payload));
            Assert.Throws<ArgumentException>(() => client.GetDecisionOutcomeAsync("d\u0000", Relay.Alice));
            Assert.Throws<ArgumentException>(() => client.GetIdentityDevicesAsync("\ud800"));
            Assert.Throws<ArgumentNullException>(() => client.GetIdentityDevicesAsync(null));
            Assert.Throws<ArgumentNullException>(() => client.SendDecisionAsync(Relay.Alice, (string)null));
            Assert.Throws<ArgumentNullException>(() => client.SendDecisionAsync(Relay.Alice, (byte[])null));
            var wait = new WaitOptions();
            wait.MaxWait = TimeSpan.FromSeconds(-1);
            Assert.Throws<ArgumentOutOfRangeException>(() => client.WaitForDecisionOutcomeAsync("d", Relay.Alice, wait));
            NoxyClientOptions options = Relay.Options();
            options.UserAgent = "agent\u0000";
            Assert.Throws<ArgumentException>(() => new NoxyClient(options));
        }

        [Test]
        public void SettingsTheLibraryRefuses()
        {
            NoxyClient client = Client();
            var wait = new WaitOptions();
            wait.InitialInterval = TimeSpan.FromSeconds(1);
            wait.MaxInterval = TimeSpan.FromMilliseconds(10);
            NoxyException e = Wait.Noxy(client.WaitForDecisionOutcomeAsync("d", Relay.Alice, wait),
                NoxyErrorCode.InvalidArgument);
            StringAssert.Contains("max_interval", e.Message);
            var send = new SendOptions();
            send.IdempotencyKey = "";
            e = Wait.Noxy(client.SendDecisionAsync(Relay.Alice, Relay.Payload, send), NoxyErrorCode.InvalidArgument);
            StringAssert.Contains("idempotency_key", e.Message);

            e = Assert.Throws<NoxyException>(() => new NoxyClient(new NoxyClientOptions(null, Relay.Token)));
            Assert.AreEqual(NoxyErrorCode.InvalidArgument, e.Code);
            StringAssert.Contains("endpoint", e.Message);
            NoxyClientOptions options = Relay.Options();
            options.WorkerThreads = 0;
            e = Assert.Throws<NoxyException>(() => new NoxyClient(options));
            Assert.AreEqual(NoxyErrorCode.InvalidArgument, e.Code);
        }

        [Test]
        public void UnreachableRelayIsUnavailable()
        {
            var options = new NoxyClientOptions("127.0.0.1:1", Relay.Token);
            options.ConnectTimeout = TimeSpan.FromSeconds(2);
            options.MaxAttempts = 1;
            NoxyClient client = Client(options);
            Wait.Noxy(client.GetQuotaAsync(), NoxyErrorCode.Unavailable);
        }

        // ---- timeouts ----

        [Test]
        public void WaitBudgetRunsOut()
        {
            NoxyClient client = Client();
            Stopwatch watch = Stopwatch.StartNew();
            NoxyException e = Wait.Noxy(client.SendDecisionAndWaitForOutcomeAsync(Relay.Carol, Relay.Payload, null,
                Relay.FastWait(TimeSpan.FromMilliseconds(300))), NoxyErrorCode.WaitTimedOut);
            // Errors of the waiting phase carry the per-device results of the send.
            Assert.AreEqual(1, e.Deliveries.Count);
            Assert.AreEqual(DeliveryStatus.Delivered, e.Deliveries[0].Status);
            SendResult sent = client.SendDecision(Relay.Carol, Relay.Payload);
            Wait.Noxy(client.WaitForDecisionOutcomeAsync(sent.AcceptedDecisionId, Relay.Carol,
                Relay.FastWait(TimeSpan.FromMilliseconds(300))), NoxyErrorCode.WaitTimedOut);
            Assert.Less(watch.Elapsed, TimeSpan.FromSeconds(15));
        }

        // ---- cancellation ----

        [Test]
        public void CancelThroughTheToken()
        {
            NoxyClient client = Client();
            SendResult sent = client.SendDecision(Relay.Carol, Relay.Payload);
            using (var cts = new CancellationTokenSource())
            {
                Task<DecisionResult> waiting = client.WaitForDecisionOutcomeAsync(sent.AcceptedDecisionId, Relay.Carol,
                    Relay.FastWait(TimeSpan.FromMinutes(5)), cts.Token);
                Task<DecisionResult> sendAndWait = client.SendDecisionAndWaitForOutcomeAsync(Relay.Carol, Relay.Payload,
                    null, Relay.FastWait(TimeSpan.FromMinutes(5)), cts.Token);
                Assert.IsFalse(waiting.IsCompleted);
                Stopwatch watch = Stopwatch.StartNew();
                cts.Cancel();
                foreach (Task<DecisionResult> task in new[] { waiting, sendAndWait })
                {
                    OperationCanceledException e = Wait.Throws<OperationCanceledException>(task);
                    Assert.IsTrue(task.IsCanceled);
                    Assert.AreEqual(cts.Token, e.CancellationToken);
                    var inner = e.InnerException as NoxyException;
                    Assert.IsNotNull(inner, "the library's error is the inner exception");
                    Assert.AreEqual(NoxyErrorCode.Cancelled, inner.Code);
                }
                Assert.Less(watch.Elapsed, TimeSpan.FromSeconds(5));
            }
            // The client is unaffected.
            Assert.AreEqual(DecisionOutcome.Approved, Wait.For(client.SendDecisionAndWaitForOutcomeAsync(Relay.Alice,
                Relay.Payload, null, Relay.FastWait(TimeSpan.FromSeconds(20)))).Outcome);
        }

        [Test]
        public void CancelAfterATimeAndBeforeTheStart()
        {
            NoxyClient client = Client();
            using (var cts = new CancellationTokenSource())
            {
                Task<DecisionResult> task = client.SendDecisionAndWaitForOutcomeAsync(Relay.Carol, Relay.Payload, null,
                    Relay.FastWait(TimeSpan.FromMinutes(5)), cts.Token);
                cts.CancelAfter(TimeSpan.FromMilliseconds(200));
                Wait.Throws<OperationCanceledException>(task);
                // An already cancelled token starts nothing.
                Task<Quota> quota = client.GetQuotaAsync(cts.Token);
                Assert.IsTrue(quota.IsCanceled);
            }
        }

        [Test]
        public void CancellingAfterCompletionChangesNothing()
        {
            NoxyClient client = Client();
            using (var cts = new CancellationTokenSource())
            {
                Task<Quota> quota = client.GetQuotaAsync(cts.Token);
                Assert.AreEqual(Relay.AppName, Wait.For(quota).AppName);
                cts.Cancel();
                Assert.IsTrue(quota.Status == TaskStatus.RanToCompletion);
            }
        }

        [Test]
        public void ManyCancelledAmongManyCompleted()
        {
            NoxyClient client = Client();
            using (var cts = new CancellationTokenSource())
            {
                var cancelled = new List<Task<DecisionResult>>();
                var approved = new List<Task<DecisionResult>>();
                for (int i = 0; i < 100; i++)
                {
                    cancelled.Add(client.SendDecisionAndWaitForOutcomeAsync(Relay.Carol, Relay.Payload, null,
                        Relay.FastWait(TimeSpan.FromMinutes(5)), cts.Token));
                    approved.Add(client.SendDecisionAndWaitForOutcomeAsync(Relay.Alice, Relay.Payload, null,
                        Relay.FastWait(TimeSpan.FromSeconds(60))));
                }
                cts.Cancel();
                foreach (Task<DecisionResult> task in cancelled)
                {
                    Wait.Throws<OperationCanceledException>(task, TimeSpan.FromSeconds(60));
                }
                foreach (Task<DecisionResult> task in approved)
                {
                    Assert.AreEqual(DecisionOutcome.Approved, Wait.For(task, TimeSpan.FromSeconds(60)).Outcome);
                }
            }
        }

        // ---- concurrency, threads, garbage collection ----

        [Test]
        public void ThousandConcurrentAwaits()
        {
            NoxyClient client = Client();
            WaitOptions wait = Relay.FastWait(TimeSpan.FromSeconds(90));
            var tasks = new Task<DecisionResult>[1000];
            for (int i = 0; i < tasks.Length; i++)
            {
                tasks[i] = client.SendDecisionAndWaitForOutcomeAsync(Relay.Alice, "{\"kind\":\"n\",\"n\":" + i + "}",
                    null, wait);
            }
            DecisionResult[] results = Wait.For(Task.WhenAll(tasks), TimeSpan.FromSeconds(120));
            Assert.IsTrue(results.All(r => r.Outcome == DecisionOutcome.Approved));
            Assert.AreEqual(1000, results.Select(r => r.DecisionId).Distinct().Count());
        }

        [Test]
        public void ContinuationsNeverRunOnTheCompletionThread()
        {
            // Blocking calls are refused on the library's completion thread (INVALID_ARGUMENT).
            // A continuation that asks to run synchronously and makes a blocking call therefore
            // fails if it runs there.
            NoxyClient client = Client();
            Task<string> inline = client.GetQuotaAsync().ContinueWith(t => client.GetQuota().AppName,
                TaskContinuationOptions.ExecuteSynchronously);
            Assert.AreEqual(Relay.AppName, Wait.For(inline));
            Func<Task<DecisionOutcome>> awaiting = async () =>
            {
                await client.GetQuotaAsync().ConfigureAwait(false);
                return client.SendDecisionAndWaitForOutcome(Relay.Alice, Relay.Payload, null,
                    Relay.FastWait(TimeSpan.FromSeconds(20))).Outcome;
            };
            Assert.AreEqual(DecisionOutcome.Approved, Wait.For(awaiting()));
        }

        [Test]
        public void BlockingCallsFromManyThreads()
        {
            NoxyClient client = Client();
            var outcomes = new DecisionOutcome[8];
            var threads = new Thread[outcomes.Length];
            for (int i = 0; i < threads.Length; i++)
            {
                int index = i;
                threads[i] = new Thread(() =>
                {
                    outcomes[index] = client.SendDecisionAndWaitForOutcome(index % 2 == 0 ? Relay.Alice : Relay.Bob,
                        Relay.Payload, null, Relay.FastWait(TimeSpan.FromSeconds(30))).Outcome;
                });
                threads[i].Start();
            }
            foreach (Thread thread in threads)
            {
                Assert.IsTrue(thread.Join(TimeSpan.FromSeconds(60)));
            }
            for (int i = 0; i < outcomes.Length; i++)
            {
                Assert.AreEqual(i % 2 == 0 ? DecisionOutcome.Approved : DecisionOutcome.Rejected, outcomes[i]);
            }
        }

        [MethodImpl(MethodImplOptions.NoInlining)]
        private static List<Task<DecisionResult>> StartOnAnAbandonedClient(int count)
        {
            // The client object is unreachable once this returns: its operations keep it alive.
            var client = new NoxyClient(Relay.Options());
            var tasks = new List<Task<DecisionResult>>();
            for (int i = 0; i < count; i++)
            {
                tasks.Add(client.SendDecisionAndWaitForOutcomeAsync(Relay.Steps, Relay.Payload, null,
                    Relay.FastWait(TimeSpan.FromSeconds(60))));
            }
            return tasks;
        }

        [Test]
        public void GarbageCollectionDuringWaits()
        {
            NoxyClient client = Client();
            var tasks = new List<Task<DecisionResult>>();
            for (int i = 0; i < 200; i++)
            {
                tasks.Add(client.SendDecisionAndWaitForOutcomeAsync(Relay.Steps, Relay.Payload, null,
                    Relay.FastWait(TimeSpan.FromSeconds(60))));
            }
            for (int i = 0; i < 5; i++)
            {
                tasks.AddRange(StartOnAnAbandonedClient(10));
            }
            Task all = Task.WhenAll(tasks);
            int collections = 0;
            Stopwatch watch = Stopwatch.StartNew();
            while (!all.IsCompleted && watch.Elapsed < TimeSpan.FromSeconds(90))
            {
                GC.Collect();
                GC.WaitForPendingFinalizers();
                collections++;
            }
            Wait.Completes(all, TimeSpan.FromSeconds(1));
            Assert.Greater(collections, 0);
            foreach (Task<DecisionResult> task in tasks)
            {
                Assert.AreEqual(DecisionOutcome.Approved, task.Result.Outcome);
            }
        }

        [ThreadStatic]
        private static bool _threadRecorded;

        /// <summary>The Linux thread id of the calling thread.</summary>
        private static string OsThreadId()
        {
            return File.ReadAllText("/proc/thread-self/stat").Split(' ')[0];
        }

        [Test]
        public void FinalizerReleasesAnUndisposedClient()
        {
            // The library's threads that log (its runtime workers, named "noxy-...") are
            // recorded by their Linux thread ids; they end only when their client is released.
            var threads = new HashSet<string>();
            NoxyClientOptions options = Relay.Options();
            options.LogLevel = NoxyLogLevel.Trace;
            options.Logger = (level, message) =>
            {
                // Only the library's own threads: events are also logged on the host threads
                // that call the library (this one, and the finalizer's in noxy_free).
                if (!_threadRecorded)
                {
                    _threadRecorded = true;
                    if (File.ReadAllText("/proc/thread-self/comm").StartsWith("noxy-", StringComparison.Ordinal))
                    {
                        string id = OsThreadId();
                        lock (threads)
                        {
                            threads.Add(id);
                        }
                    }
                }
            };
            // A client that nobody disposes, made on a thread of its own, which then ends: no
            // stale reference on a stack that the (conservative) collector scans keeps it alive.
            var maker = new Thread(() =>
            {
                var client = new NoxyClient(options);
                Wait.For(client.GetQuotaAsync());
            });
            maker.Start();
            Assert.IsTrue(maker.Join(TimeSpan.FromSeconds(30)));
            Func<int> running = () =>
            {
                lock (threads)
                {
                    return threads.Count(id => Directory.Exists("/proc/self/task/" + id));
                }
            };
            Assert.Greater(running(), 0, "the client's threads run");
            // Only the finalizer of its SafeHandle (noxy_free) can end them.
            bool released = Wait.Until(() =>
            {
                GC.Collect();
                GC.WaitForPendingFinalizers();
                return running() == 0;
            }, TimeSpan.FromSeconds(30));
            Assert.IsTrue(released, "the undisposed client was never released");
        }

        // ---- shutdown ----

        [Test]
        public void DisposeDuringWaits()
        {
            NoxyClient client = Client();
            var tasks = new List<Task<DecisionResult>>();
            for (int i = 0; i < 50; i++)
            {
                tasks.Add(client.SendDecisionAndWaitForOutcomeAsync(Relay.Carol, Relay.Payload, null,
                    Relay.FastWait(TimeSpan.FromMinutes(5))));
            }
            tasks.Add(client.SendDecisionAndWaitForOutcomeAsync(Relay.Carol, Relay.Payload, null,
                Relay.FastWait(TimeSpan.FromMinutes(5)), new CancellationTokenSource().Token));
            Stopwatch watch = Stopwatch.StartNew();
            client.Dispose();
            foreach (Task<DecisionResult> task in tasks)
            {
                // Not the caller's cancellation: the library's CANCELLED error.
                Wait.Noxy(task, NoxyErrorCode.Cancelled, TimeSpan.FromSeconds(10));
            }
            Assert.Less(watch.Elapsed, TimeSpan.FromSeconds(10));
            Assert.Throws<ObjectDisposedException>(() => client.GetQuotaAsync());
            Assert.Throws<ObjectDisposedException>(() => client.GetQuota());
            Assert.Throws<ObjectDisposedException>(() => client.Close());
            client.Dispose();
        }

        [Test]
        public void DisposeDuringBlockingCalls()
        {
            // The library logs on the thread that makes a blocking call while the call runs:
            // once a thread's id shows up in the log, that thread is inside its call.
            var logging = new HashSet<int>();
            NoxyClientOptions options = Relay.Options();
            options.LogLevel = NoxyLogLevel.Debug;
            options.Logger = (level, message) =>
            {
                lock (logging)
                {
                    logging.Add(Thread.CurrentThread.ManagedThreadId);
                }
            };
            NoxyClient client = Client(options);
            SendResult sent = client.SendDecision(Relay.Carol, Relay.Payload);
            var outcomes = new Exception[4];
            var threads = new Thread[outcomes.Length];
            for (int i = 0; i < threads.Length; i++)
            {
                int index = i;
                threads[i] = new Thread(() =>
                {
                    try
                    {
                        client.WaitForDecisionOutcome(sent.AcceptedDecisionId, Relay.Carol,
                            Relay.FastWait(TimeSpan.FromMinutes(5)));
                    }
                    catch (Exception e)
                    {
                        outcomes[index] = e;
                    }
                });
            }
            lock (logging)
            {
                logging.Clear();
            }
            foreach (Thread thread in threads)
            {
                thread.Start();
            }
            Assert.IsTrue(Wait.Until(() =>
            {
                lock (logging)
                {
                    return threads.All(t => logging.Contains(t.ManagedThreadId));
                }
            }, TimeSpan.FromSeconds(20)), "every thread is inside its blocking call");
            Stopwatch watch = Stopwatch.StartNew();
            client.Dispose();
            foreach (Thread thread in threads)
            {
                Assert.IsTrue(thread.Join(TimeSpan.FromSeconds(10)), "a blocking call outlived Dispose");
            }
            Assert.Less(watch.Elapsed, TimeSpan.FromSeconds(10));
            foreach (Exception e in outcomes)
            {
                var noxy = e as NoxyException;
                Assert.IsNotNull(noxy, e == null ? "no error" : e.ToString());
                Assert.AreEqual(NoxyErrorCode.Cancelled, noxy.Code);
            }
        }

        [Test]
        public void CloseThenDrain()
        {
            NoxyClient client = Client();
            Assert.IsTrue(client.Drain(TimeSpan.Zero), "nothing outstanding");
            var tasks = new List<Task<DecisionResult>>();
            for (int i = 0; i < 10; i++)
            {
                tasks.Add(client.SendDecisionAndWaitForOutcomeAsync(Relay.Carol, Relay.Payload, null,
                    Relay.FastWait(TimeSpan.FromMinutes(5))));
            }
            Assert.IsFalse(client.Drain(TimeSpan.FromMilliseconds(50)), "ten outstanding");
            client.Close();
            Assert.IsTrue(client.Drain(TimeSpan.FromSeconds(10)));
            // After a successful drain every callback has run; the tasks complete on the
            // thread pool.
            foreach (Task<DecisionResult> task in tasks)
            {
                Wait.Noxy(task, NoxyErrorCode.Cancelled);
            }
            Wait.Noxy(client.GetQuotaAsync(), NoxyErrorCode.Cancelled);
            NoxyException e = Assert.Throws<NoxyException>(() => client.GetQuota());
            Assert.AreEqual(NoxyErrorCode.Cancelled, e.Code);
            client.Close();
        }

        // ---- settings ----

        [Test]
        public void LoggerReceivesEventsWithoutTheToken()
        {
            var messages = new List<string>();
            NoxyClientOptions options = Relay.Options();
            options.LogLevel = NoxyLogLevel.Debug;
            options.Logger = (level, message) =>
            {
                lock (messages)
                {
                    messages.Add(level + " " + message);
                }
                throw new InvalidOperationException("a logger's exception never reaches the library");
            };
            NoxyClient client = Client(options);
            Assert.AreEqual(Relay.AppName, client.GetQuota().AppName);
            Assert.AreEqual(DecisionOutcome.Approved, client.SendDecisionAndWaitForOutcome(Relay.Alice, Relay.Payload,
                null, Relay.FastWait(TimeSpan.FromSeconds(20))).Outcome);
            lock (messages)
            {
                Assert.Greater(messages.Count, 0);
                Assert.IsFalse(messages.Any(m => m.Contains(Relay.Token)), "the token was logged");
                Assert.IsFalse(messages.Any(m => m.Contains("Deploy to prod")), "the payload was logged");
            }
        }

        [Test]
        public void SharedRuntimeClients()
        {
            NoxyClientOptions options = Relay.Options();
            options.SharedRuntime = true;
            NoxyClient first = Client(options);
            NoxyClient second = Client(options);
            Task<DecisionResult> a = first.SendDecisionAndWaitForOutcomeAsync(Relay.Alice, Relay.Payload, null,
                Relay.FastWait(TimeSpan.FromSeconds(20)));
            Task<DecisionResult> b = second.SendDecisionAndWaitForOutcomeAsync(Relay.Bob, Relay.Payload, null,
                Relay.FastWait(TimeSpan.FromSeconds(20)));
            Assert.AreEqual(DecisionOutcome.Approved, Wait.For(a).Outcome);
            Assert.AreEqual(DecisionOutcome.Rejected, Wait.For(b).Outcome);
        }
    }
}
