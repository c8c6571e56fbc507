/* A relay restart under load, nothing lost: N send-and-wait decisions through one C client
 * handle, with 30 % of the relay's RPCs failing with UNAVAILABLE (half before, half after it
 * acted), and the relay killed with SIGKILL and restarted on the same port and state directory
 * K times during the run. It ends with every decision APPROVED, the relay having delivered each
 * request id once and charged each decision once (quota = start - N), and this process alive
 * (SIGPIPE keeps its default disposition). One summary line.
 *
 *   soak --relay target/release/noxy-devrelay [--decisions N] [--restarts K] [--check]
 */
#include "host.h"

#define TOKEN "soak-token"
#define QUOTA 100000000L
#define WINDOW 500 /* decisions in flight at once */

static const char *const FAULTS[] = {"--fault-seed", "23", "--fault-unavailable-before", "0.15",
                                     "--fault-unavailable-after", "0.15"};

/* Starts (or restarts, on the same port and state) the relay with the soak's app and faults. */
static int start(relay_t *relay) {
    static char app[64];
    snprintf(app, sizeof app, "%s:soak:%ld", TOKEN, QUOTA);
    const char *args[16] = {"--app", app, "--identity", "soak:person:approve"};
    int n = 4;
    for (size_t i = 0; i < sizeof FAULTS / sizeof FAULTS[0]; i++) args[n++] = FAULTS[i];
    args[n] = NULL;
    return relay_start(relay, args);
}

/* Counts the deliveries in the relay's inspection. */
static long deliveries(const char *inspection) {
    long count = 0;
    for (const char *at = strstr(inspection, "\"count\":"); at != NULL;
         at = strstr(at + 1, "\"count\":"))
        count++;
    return count;
}

int main(int argc, char **argv) {
    relay_t relay;
    memset(&relay, 0, sizeof relay);
    snprintf(relay.binary, sizeof relay.binary, "%s", "target/release/noxy-devrelay");
    long n = 10000;
    int restarts = 2, check = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--relay") == 0 && i + 1 < argc)
            snprintf(relay.binary, sizeof relay.binary, "%s", argv[++i]);
        else if (strcmp(argv[i], "--decisions") == 0 && i + 1 < argc)
            n = atol(argv[++i]);
        else if (strcmp(argv[i], "--restarts") == 0 && i + 1 < argc)
            restarts = atoi(argv[++i]);
        else if (strcmp(argv[i], "--check") == 0)
            check = 1;
        else {
            fprintf(stderr, "usage: %s [--relay PATH] [--decisions N] [--restarts K] [--check]\n",
                    argv[0]);
            return 2;
        }
    }
    char dir_template[] = "/tmp/noxy-soak.XXXXXX";
    if (mkdtemp(dir_template) == NULL) return 2;
    snprintf(relay.dir, sizeof relay.dir, "%s", dir_template);
    if (start(&relay) != 0) return 2;

    double t0 = now_s();
    noxy_client *client = host_client(&relay, TOKEN, NULL);
    if (client == NULL) return 2;
    uint64_t quota_before = quota_remaining(client);
    noxy_wait_options *wait = noxy_wait_options_new();
    noxy_error_free(noxy_wait_options_set_initial_interval_ms(wait, 50));
    noxy_error_free(noxy_wait_options_set_max_interval_ms(wait, 1000));
    noxy_error_free(noxy_wait_options_set_max_wait_ms(wait, 600000));
    tally_reset();

    long started = 0;
    int restarted = 0;
    while (started < n) {
        /* Keep WINDOW decisions in flight: wait until one more may start. */
        wait_done(started - WINDOW + 1, 600);
        char payload[96];
        int len = snprintf(payload, sizeof payload, "{\"kind\":\"soak\",\"title\":\"Step %ld\"}",
                           started);
        if (!ok("start", noxy_send_and_wait_async(client, "person", payload, (size_t)len, NULL,
                                                  wait, on_decision, NULL, NULL)))
            break;
        started++;
        /* Kill the relay at evenly spaced points of the run, then bring it back where the
         * client expects it, on the same state. */
        if (restarted < restarts && started == n * (restarted + 1) / (restarts + 1)) {
            relay_stop(&relay, SIGKILL);
            if (start(&relay) != 0) {
                fprintf(stderr, "the relay did not restart\n");
                return 1;
            }
            restarted++;
        }
    }
    noxy_wait_options_free(wait);
    int all = wait_done(started, 900);
    uint64_t quota_after = quota_remaining(client);
    noxy_free(client);
    double elapsed = now_s() - t0;

    char *inspection = relay_get(&relay, "/v1/inspect");
    long repeated = inspection ? repeated_deliveries(inspection) : -1;
    long delivered = inspection ? deliveries(inspection) : -1;
    free(inspection);
    relay_stop(&relay, SIGTERM);
    char rm[300];
    snprintf(rm, sizeof rm, "rm -rf %s", relay.dir);
    if (system(rm) != 0) fprintf(stderr, "could not remove %s\n", relay.dir);

    long charged = (long)(quota_before - quota_after);
    long lost = n - g_tally.approved;
    printf("soak: %ld decisions through one client, %ld approved, %ld lost (%ld failed), "
           "%d relay restarts (SIGKILL) under 30%% injected UNAVAILABLE; relay: %ld deliveries, "
           "%ld request ids delivered twice, %ld charged (quota %lu -> %lu); host alive; %.1f s\n",
           n, g_tally.approved, lost, g_tally.failed, restarted, delivered, repeated, charged,
           (unsigned long)quota_before, (unsigned long)quota_after, elapsed);
    if (g_tally.first_error[0]) printf("  first error: %s\n", g_tally.first_error);
    int good = all && started == n && lost == 0 && restarted == restarts && repeated == 0 &&
               delivered == n && charged == n;
    return check && !good ? 1 : 0;
}
