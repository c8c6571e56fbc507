/* libnoxy under load, through the async C API of one client, as a C host uses it:
 *
 * 1. N concurrent send-and-wait decisions on an identity whose device never answers: time to
 *    route them all, errors, the RSS growth and the bytes per waiting decision once every
 *    decision waits (measured between polls), then close + drain (every callback CANCELLED).
 * 2. Throughput: min(N, 2000) concurrent send-and-wait decisions that a device approves:
 *    decisions per second, end to end.
 * 3. Faults: M send-and-wait decisions through one client with default settings against a relay
 *    that fails 30 % of every RPC with UNAVAILABLE (15 % before acting, 15 % after): failures
 *    (must be 0), and duplicates on the relay (a request id delivered twice, or a decision
 *    charged twice: must be 0).
 *
 *   load --relay target/release/noxy-devrelay [--waits N] [--fault-decisions M] [--check]
 *
 * With --check it exits non-zero unless there were 0 errors and 0 duplicates (what `make test`
 * asserts); the timings and sizes are printed, never asserted. SIGPIPE keeps its default
 * disposition: a library write to a dropped connection would end this process. */
#include "host.h"

#define TOKEN "load-token"
#define APP "load"

static atomic_long g_routed;  /* RouteDecision answered OK */
static atomic_long g_polls;   /* GetDecisionOutcome answered OK */

/* Counts the library's per-RPC debug events: a probe of where each decision is. */
static void count_rpcs(noxy_log_level level, const char *message, void *user_data) {
    (void)level;
    (void)user_data;
    if (strstr(message, "relay call") == NULL || strstr(message, "status=OK") == NULL) return;
    if (strstr(message, "method=RouteDecision") != NULL) atomic_fetch_add(&g_routed, 1);
    if (strstr(message, "method=GetDecisionOutcome") != NULL) atomic_fetch_add(&g_polls, 1);
}

static noxy_wait_options *wait_options(void) {
    noxy_wait_options *wait = noxy_wait_options_new();
    noxy_error_free(noxy_wait_options_set_initial_interval_ms(wait, 20));
    noxy_error_free(noxy_wait_options_set_max_interval_ms(wait, 30000));
    noxy_error_free(noxy_wait_options_set_max_wait_ms(wait, 3600 * 1000));
    return wait;
}


/* Starts `n` send-and-wait decisions for `identity`; returns how many started. */
static long start_decisions(noxy_client *client, const char *identity, long n,
                            const noxy_send_options *send, const noxy_wait_options *wait) {
    long started = 0;
    for (long i = 0; i < n; i++) {
        char payload[128];
        int len = snprintf(payload, sizeof payload,
                           "{\"kind\":\"load\",\"title\":\"Decision %ld\",\"n\":%ld}", i, i);
        if (!ok("start", noxy_send_and_wait_async(client, identity, payload, (size_t)len, send,
                                                  wait, on_decision, NULL, NULL)))
            break;
        started++;
    }
    return started;
}

static long thread_count(void) { return proc_status_field("/proc/self/status", "Threads:"); }

/* Phase 0: what an idle client costs, with its own runtime and/or on the shared one. */
static void idle_clients(const relay_t *relay, int n, int first_shared, int last_shared) {
    for (int shared = first_shared; shared >= last_shared; shared--) {
        noxy_client **clients = calloc((size_t)n, sizeof *clients);
        long rss_before = rss_kib(), threads_before = thread_count();
        for (int i = 0; i < n; i++) {
            noxy_config *config = noxy_config_new();
            noxy_error_free(noxy_config_set_endpoint(config, relay->endpoint));
            noxy_error_free(noxy_config_set_app_token(config, TOKEN));
            noxy_error_free(noxy_config_set_ca_pem_file(config, relay->ca_path));
            noxy_error_free(noxy_config_set_shared_runtime(config, shared));
            ok("client", noxy_client_new(config, &clients[i]));
            noxy_config_free(config);
            quota_remaining(clients[i]); /* connected, then idle */
        }
        long rss = rss_kib() - rss_before, threads = thread_count() - threads_before;
        printf("idle clients (%s runtime): %d clients: +%ld threads (%.1f each), +%ld KiB RSS "
               "(%.0f KiB each, connected)\n",
               shared ? "shared" : "own", n, threads, (double)threads / n, rss,
               (double)rss / n);
        for (int i = 0; i < n; i++) noxy_free(clients[i]);
        free(clients);
    }
}

/* Phase 1: N waiting decisions. Returns the number of errors. */
static long concurrent_waits(const relay_t *relay, long n) {
    noxy_client *client = host_client(relay, TOKEN, count_rpcs);
    if (client == NULL) return 1;
    quota_remaining(client); /* connect first: the connection's buffers are not per decision */
    tally_reset();
    noxy_send_options *send = noxy_send_options_new();
    noxy_error_free(noxy_send_options_set_ttl_seconds(send, 3600));
    noxy_wait_options *wait = wait_options();
    long rss_before = rss_kib(), heap_before = heap_in_use_kib();
    long relay_rss_before = relay_rss_kib(relay);
    double relay_cpu_before = relay_cpu_s(relay);
    long routed_before = atomic_load(&g_routed), polls_before = atomic_load(&g_polls);
    double t0 = now_s();
    long started = start_decisions(client, "waiter", n, send, wait);
    noxy_send_options_free(send);
    noxy_wait_options_free(wait);
    int routed = wait_counter(&g_routed, routed_before + started, 600);
    double t1 = now_s();
    /* Every decision has been polled at least twice on average: steady state between polls. */
    int polled = wait_counter(&g_polls, polls_before + 2 * started, 600);
    long rss_waiting = rss_kib(), heap_waiting = heap_in_use_kib();
    long relay_rss_waiting = relay_rss_kib(relay);
    long polled_more = atomic_load(&g_polls) + started;
    wait_counter(&g_polls, polled_more, 600);
    long rss_later = rss_kib();
    long errors_while_waiting = tally_done(); /* nothing may end: the device never answers */
    double t2 = now_s();
    double relay_cpu = relay_cpu_s(relay) - relay_cpu_before;
    ok("close", noxy_client_close(client));
    int drained = ok("drain", noxy_client_drain(client, 120000));
    double t3 = now_s();
    long cancelled = g_tally.cancelled;
    noxy_free(client);
    long growth = rss_waiting - rss_before;
    printf("concurrent waits: %ld started, %ld routed in %.2f s (%.0f decisions/s), "
           "%ld ended early (errors)\n",
           started, atomic_load(&g_routed) - routed_before, t1 - t0,
           (double)started / (t1 - t0), errors_while_waiting);
    printf("  RSS %ld KiB before, +%ld KiB with all waiting (%.2f KiB = %.0f bytes per waiting "
           "decision), %+ld KiB after another poll round\n",
           rss_before, growth, (double)growth / (double)started,
           1024.0 * (double)growth / (double)started, rss_later - rss_waiting);
    printf("  heap in use: +%ld KiB with all waiting (%.0f bytes per waiting decision)\n",
           heap_waiting - heap_before, 1024.0 * (double)(heap_waiting - heap_before) / (double)started);
    printf("  %.1f s of waiting, %ld polls; close + drain: %ld cancelled in %.2f s%s\n", t2 - t1,
           atomic_load(&g_polls) - polls_before, cancelled, t3 - t2,
           drained ? "" : " (DRAIN TIMED OUT)");
    printf("  the relay: RSS %ld KiB before, %ld KiB with all waiting; %.1f s of CPU over the "
           "%.1f s of routing and waiting (%.0f %% of one core)\n",
           relay_rss_before, relay_rss_waiting, relay_cpu, t2 - t0, 100.0 * relay_cpu / (t2 - t0));
    if (g_tally.first_error[0]) printf("  first error: %s\n", g_tally.first_error);
    return (started != n) + !routed + !polled + errors_while_waiting + !drained +
           (cancelled != started);
}

/* Phase 2: throughput of decisions a device approves. Returns the number of errors. */
static long throughput(const relay_t *relay, long n) {
    noxy_client *client = host_client(relay, TOKEN, NULL);
    if (client == NULL) return 1;
    quota_remaining(client);
    tally_reset();
    noxy_wait_options *wait = wait_options();
    double t0 = now_s();
    long started = start_decisions(client, "approver", n, NULL, wait);
    noxy_wait_options_free(wait);
    int all = wait_done(started, 600);
    double t1 = now_s();
    printf("throughput: %ld send-and-wait decisions approved in %.2f s: %.0f decisions/s, "
           "%ld errors\n",
           g_tally.approved, t1 - t0, (double)g_tally.approved / (t1 - t0), g_tally.failed);
    if (g_tally.first_error[0]) printf("  first error: %s\n", g_tally.first_error);
    noxy_free(client);
    return (started != n) + !all + g_tally.failed + (g_tally.approved != n);
}


/* Phase 3: 30 % injected UNAVAILABLE, default client settings. Returns failures+duplicates. */
static long faults(const relay_t *relay, long m) {
    noxy_client *client = host_client(relay, TOKEN, NULL);
    if (client == NULL) return 1;
    uint64_t quota_before = quota_remaining(client);
    tally_reset();
    noxy_wait_options *wait = wait_options();
    double t0 = now_s();
    long started = start_decisions(client, "approver", m, NULL, wait);
    noxy_wait_options_free(wait);
    int all = wait_done(started, 900);
    double t1 = now_s();
    uint64_t quota_after = quota_remaining(client);
    noxy_free(client);
    long charged = (long)(quota_before - quota_after);
    char *inspection = relay_get(relay, "/v1/inspect");
    long repeated = inspection ? repeated_deliveries(inspection) : -1;
    free(inspection);
    long duplicates = (repeated < 0 ? 1 : repeated) + (charged > m ? charged - m : 0);
    printf("faults (30%% UNAVAILABLE, half after acting): %ld decisions, %ld approved, %ld failed "
           "in %.2f s; relay: %ld charged, %ld request ids delivered twice -> %ld duplicates\n",
           started, g_tally.approved, g_tally.failed + (started - g_tally.done), t1 - t0, charged,
           repeated, duplicates);
    if (g_tally.first_error[0]) printf("  first error: %s\n", g_tally.first_error);
    return (started != m) + !all + g_tally.failed + duplicates + (charged != m);
}

int main(int argc, char **argv) {
    relay_t relay;
    memset(&relay, 0, sizeof relay);
    snprintf(relay.binary, sizeof relay.binary, "%s", "target/release/noxy-devrelay");
    long waits = 10000, fault_decisions = 2000;
    int check = 0;
    const char *idle_only = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--relay") == 0 && i + 1 < argc)
            snprintf(relay.binary, sizeof relay.binary, "%s", argv[++i]);
        else if (strcmp(argv[i], "--waits") == 0 && i + 1 < argc)
            waits = atol(argv[++i]);
        else if (strcmp(argv[i], "--fault-decisions") == 0 && i + 1 < argc)
            fault_decisions = atol(argv[++i]);
        else if (strcmp(argv[i], "--check") == 0)
            check = 1;
        else if (strcmp(argv[i], "--idle-only") == 0 && i + 1 < argc)
            idle_only = argv[++i];
        else {
            fprintf(stderr, "usage: %s [--relay PATH] [--waits N] [--fault-decisions M] [--check]\n"
                            "       %s [--relay PATH] --idle-only own|shared\n",
                    argv[0], argv[0]);
            return 2;
        }
    }
    char dir_template[] = "/tmp/noxy-load.XXXXXX";
    if (mkdtemp(dir_template) == NULL) return 2;
    snprintf(relay.dir, sizeof relay.dir, "%s", dir_template);
    char app[64];
    snprintf(app, sizeof app, "%s:%s:1000000000", TOKEN, APP);
    const char *plain[] = {"--app", app, "--identity", APP ":waiter:ignore",
                           "--identity", APP ":approver:approve", NULL};
    if (relay_start(&relay, plain) != 0) return 2;
    printf("libnoxy %s, relay %s, %d workers per client\n", noxy_version(), relay.endpoint,
           NOXY_DEFAULT_WORKER_THREADS);
    if (idle_only != NULL) {
        /* One kind per process: the allocator's warm-up is then paid by each measurement. */
        int shared = strcmp(idle_only, "shared") == 0;
        idle_clients(&relay, 50, shared, shared);
        relay_stop(&relay, SIGTERM);
        return 0;
    }
    idle_clients(&relay, 20, 1, 0);
    long problems = concurrent_waits(&relay, waits);
    problems += throughput(&relay, waits < 2000 ? waits : 2000);
    relay_stop(&relay, SIGTERM);

    relay.grpc_port = 0;
    const char *faulty[] = {"--app", app, "--identity", APP ":approver:approve",
                            "--fault-seed", "7", "--fault-unavailable-before", "0.15",
                            "--fault-unavailable-after", "0.15", NULL};
    if (relay_start(&relay, faulty) != 0) return 2;
    problems += faults(&relay, fault_decisions);
    relay_stop(&relay, SIGTERM);
    char rm[300];
    snprintf(rm, sizeof rm, "rm -rf %s", relay.dir);
    if (system(rm) != 0) fprintf(stderr, "could not remove %s\n", relay.dir);
    printf("%s\n", problems == 0 ? "load: 0 errors, 0 duplicates" : "load: PROBLEMS");
    return check && problems != 0 ? 1 : 0;
}
