// Helpers of the tests: the relay the runner started, clients that are always shut down, and
// bounded waits on tasks (never a sleep).
using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using System.Threading.Tasks;
using NUnit.Framework;
using Noxy;

namespace Noxy.Tests
{
    internal static class Relay
    {
        // Identities of the relay started by run-tests.sh.
        internal const string Alice = "alice";   // approves
        internal const string Bob = "bob";       // rejects
        internal const string Carol = "carol";   // never answers
        internal const string Steps = "steps";   // approves after 300 ms
        internal const string Team = "team";     // two devices: approve, ignore
        internal const string Nobody = "nobody"; // no devices

        internal const string Payload =
            "{\"kind\":\"tool\",\"tool\":\"deploy\",\"title\":\"Deploy to prod\",\"args\":{\"n\":1}}";
        // SHA-256 of Payload's UTF-8 bytes, computed outside the library (the C tests use it too).
        internal const string PayloadSha256 = "3554dbfe7a822daecb3c966a81870d608bc89afdab20f2ae4e7c535db8672e4f";

        internal static string Endpoint
        {
            get { return Env("NOXY_TEST_ENDPOINT"); }
        }

        internal static string CaPath
        {
            get { return Env("NOXY_TEST_CA_PATH"); }
        }

        internal static string Token
        {
            get { return Env("NOXY_TEST_TOKEN"); }
        }

        internal static string AppName
        {
            get { return Env("NOXY_TEST_APP"); }
        }

        private static string Env(string name)
        {
            string value = Environment.GetEnvironmentVariable(name);
            if (string.IsNullOrEmpty(value))
            {
                Assert.Fail(name + " is not set: run the tests through bindings/dotnet/run-tests.sh");
            }
            return value;
        }

        internal static NoxyClientOptions Options(string token = null)
        {
            var options = new NoxyClientOptions(Endpoint, token ?? Token);
            options.CaPemFile = CaPath;
            options.RequestTimeout = TimeSpan.FromSeconds(10);
            return options;
        }

        /// <summary>Fast polling so that tests finish quickly, with a generous budget.</summary>
        internal static WaitOptions FastWait(TimeSpan maxWait)
        {
            var wait = new WaitOptions();
            wait.InitialInterval = TimeSpan.FromMilliseconds(25);
            wait.Multiplier = 1.5;
            wait.MaxInterval = TimeSpan.FromMilliseconds(250);
            wait.MaxWait = maxWait;
            return wait;
        }

        internal static string Hex(IReadOnlyList<byte> bytes)
        {
            var text = new StringBuilder();
            foreach (byte b in bytes)
            {
                text.Append(b.ToString("x2"));
            }
            return text.ToString();
        }

        internal static string Sha256Hex(byte[] bytes)
        {
            using (SHA256 sha = SHA256.Create())
            {
                return Hex(sha.ComputeHash(bytes));
            }
        }
    }

    internal static class Wait
    {
        internal static readonly TimeSpan Default = TimeSpan.FromSeconds(30);

        /// <summary>The task's result; fails the test when it does not complete in time.</summary>
        internal static T For<T>(Task<T> task, TimeSpan? timeout = null)
        {
            Completes(task, timeout);
            return task.GetAwaiter().GetResult();
        }

        internal static void Completes(Task task, TimeSpan? timeout = null)
        {
            TimeSpan limit = timeout ?? Default;
            if (!((IAsyncResult)task).AsyncWaitHandle.WaitOne(limit))
            {
                Assert.Fail("the task did not complete within " + limit);
            }
        }

        /// <summary>The exception the task ends with (its own, not an AggregateException).</summary>
        internal static TException Throws<TException>(Task task, TimeSpan? timeout = null) where TException : Exception
        {
            Completes(task, timeout);
            try
            {
                task.GetAwaiter().GetResult();
            }
            catch (TException e)
            {
                return e;
            }
            catch (Exception e)
            {
                Assert.Fail("expected " + typeof(TException).Name + ", got " + e.GetType().Name + ": " + e.Message);
            }
            Assert.Fail("expected " + typeof(TException).Name + ", the task succeeded");
            return null;
        }

        internal static NoxyException Noxy(Task task, NoxyErrorCode code, TimeSpan? timeout = null)
        {
            NoxyException e = Throws<NoxyException>(task, timeout);
            Assert.AreEqual(code, e.Code, e.Message);
            return e;
        }

        /// <summary>Polls a condition until it holds or the time is up (a bounded wait on a condition).</summary>
        internal static bool Until(Func<bool> condition, TimeSpan timeout)
        {
            Stopwatch watch = Stopwatch.StartNew();
            while (!condition())
            {
                if (watch.Elapsed > timeout)
                {
                    return false;
                }
                System.Threading.Thread.Sleep(10);
            }
            return true;
        }
    }

    /// <summary>The C names of codes, to check the C# enums against the library.</summary>
    internal static class CNames
    {
        [DllImport("noxy", CallingConvention = CallingConvention.Cdecl)]
        private static extern IntPtr noxy_error_code_name(int code);

        [DllImport("noxy", CallingConvention = CallingConvention.Cdecl)]
        private static extern IntPtr noxy_outcome_name(int outcome);

        [DllImport("noxy", CallingConvention = CallingConvention.Cdecl)]
        private static extern IntPtr noxy_delivery_status_name(int status);

        internal static string ErrorCode(int code)
        {
            return Marshal.PtrToStringAnsi(noxy_error_code_name(code));
        }

        internal static string Outcome(int outcome)
        {
            return Marshal.PtrToStringAnsi(noxy_outcome_name(outcome));
        }

        internal static string DeliveryStatus(int status)
        {
            return Marshal.PtrToStringAnsi(noxy_delivery_status_name(status));
        }

        /// <summary>"InvalidArgument" -> "invalid_argument".</summary>
        internal static string Snake(string pascal)
        {
            var text = new StringBuilder();
            for (int i = 0; i < pascal.Length; i++)
            {
                if (i > 0 && char.IsUpper(pascal[i]))
                {
                    text.Append('_');
                }
                text.Append(char.ToLowerInvariant(pascal[i]));
            }
            return text.ToString();
        }
    }
}
