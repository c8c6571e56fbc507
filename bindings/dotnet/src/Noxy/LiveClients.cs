using System;
using System.Collections.Generic;
using System.Diagnostics;

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

        /// <summary>Called when a client is released (Dispose or finalizer).</summary>
        internal static void Remove(long id)
        {
            lock (Lock)
            {
                Clients.Remove(id);
            }
        }

        private static void OnExit(object sender, EventArgs e)
        {
            var live = new List<ClientHandle>();
            lock (Lock)
            {
                foreach (WeakReference reference in Clients.Values)
                {
                    var client = reference.Target as ClientHandle;
                    if (client != null)
                    {
                        live.Add(client);
                    }
                }
            }
            Stopwatch elapsed = Stopwatch.StartNew();
            foreach (ClientHandle client in live)
            {
                try
                {
                    using (Native.noxy_client_close(client))
                    {
                    }
                    TimeSpan left = ExitBudget - elapsed.Elapsed;
                    ulong leftMs = left > TimeSpan.Zero ? (ulong)left.TotalMilliseconds : 0UL;
                    using (Native.noxy_client_drain(client, leftMs))
                    {
                    }
                }
                catch (ObjectDisposedException)
                {
                    // Released meanwhile.
                }
                client.Dispose();
            }
        }
    }
}
