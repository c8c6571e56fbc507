using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Threading;

namespace Noxy
{
    /// <summary>
    /// The clients not released yet, shut down in order when the process exits or the
    /// AppDomain unloads.
    /// </summary>
    /// <remarks>
    /// A library thread that called into managed code (the completion thread, a logging worker)
    /// is attached to the runtime until it ends, and it ends only when its client is released.
    /// Mono (and so Unity) waits for every attached thread when the process exits or a domain
    /// unloads, and runs no finalizers first: one client that was never disposed would hang the
    /// exit forever. So, at that point, every client still alive is closed, drained (no callback
    /// runs any more, so none enters a runtime that is shutting down) and released. Clients
    /// disposed or finalized before are no longer listed; the list holds them weakly.
    ///
    /// A client that a blocking call on another thread is inside is released by that thread,
    /// when the call (ended by the close) returns. Mono aborts that thread right after the exit
    /// handlers, possibly before it released the client, whose threads would then live on; so
    /// the handler also waits for those releases.
    /// </remarks>
    internal static class LiveClients
    {
        // The whole shutdown is bounded: hosts limit the time of exit handlers.
        private static readonly TimeSpan ExitBudget = TimeSpan.FromSeconds(2);

        private static readonly object Lock = new object();
        private static readonly Dictionary<long, WeakReference> Clients = new Dictionary<long, WeakReference>();
        private static long _nextId;
        private static bool _hooked;

        internal static long Add(ClientHandle client)
        {
            lock (Lock)
            {
                if (!_hooked)
                {
                    AppDomain.CurrentDomain.ProcessExit += OnExit;
                    AppDomain.CurrentDomain.DomainUnload += OnExit;
                    _hooked = true;
                }
                long id = ++_nextId;
                // Tracks resurrection: a client waiting for its finalizer is still shut down here.
                Clients.Add(id, new WeakReference(client, true));
                return id;
            }
        }

        /// <summary>Called once a client was released (Dispose, finalizer, or the last blocking call).</summary>
        internal static void Remove(long id)
        {
            lock (Lock)
            {
                Clients.Remove(id);
                Monitor.PulseAll(Lock);
            }
        }

        private static void OnExit(object sender, EventArgs e)
        {
            var live = new List<KeyValuePair<long, ClientHandle>>();
            lock (Lock)
            {
                foreach (KeyValuePair<long, WeakReference> entry in Clients)
                {
                    var client = entry.Value.Target as ClientHandle;
                    if (client != null)
                    {
                        live.Add(new KeyValuePair<long, ClientHandle>(entry.Key, client));
                    }
                }
            }
            Stopwatch elapsed = Stopwatch.StartNew();
            foreach (KeyValuePair<long, ClientHandle> entry in live)
            {
                ClientHandle client = entry.Value;
                try
                {
                    using (Native.noxy_client_close(client))
                    {
                    }
                    using (Native.noxy_client_drain(client, MillisecondsLeft(elapsed)))
                    {
                    }
                }
                catch (ObjectDisposedException)
                {
                    // Released meanwhile.
                }
                client.Dispose();
            }
            // The clients still listed are held by blocking calls that the close has ended.
            lock (Lock)
            {
                foreach (KeyValuePair<long, ClientHandle> entry in live)
                {
                    while (Clients.ContainsKey(entry.Key))
                    {
                        ulong left = MillisecondsLeft(elapsed);
                        if (left == 0 || !Monitor.Wait(Lock, TimeSpan.FromMilliseconds(left)))
                        {
                            return;
                        }
                    }
                }
            }
        }

        private static ulong MillisecondsLeft(Stopwatch elapsed)
        {
            TimeSpan left = ExitBudget - elapsed.Elapsed;
            return left > TimeSpan.Zero ? (ulong)left.TotalMilliseconds : 0UL;
        }
    }
}
