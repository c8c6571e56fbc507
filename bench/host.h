/* What the load and soak programs share as hosts of libnoxy: a tally of decision callbacks that
 * the main thread waits on, a client for a relay, the quota, and the relay's duplicates. */
#ifndef NOXY_BENCH_HOST_H
#define NOXY_BENCH_HOST_H

#include "relay.h"

#include <pthread.h>
#include <stdatomic.h>

#include "noxy.h"

typedef struct {
    pthread_mutex_t mutex;
    pthread_cond_t cond;
    long done, ok, approved, cancelled, failed;
    char first_error[256];
} tally_t;

static tally_t g_tally = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0, 0, 0, ""};

static inline void tally_reset(void) {
    pthread_mutex_lock(&g_tally.mutex);
    g_tally.done = g_tally.ok = g_tally.approved = g_tally.cancelled = g_tally.failed = 0;
    g_tally.first_error[0] = 0;
    pthread_mutex_unlock(&g_tally.mutex);
}

static inline void on_decision(void *user_data, noxy_error *error, noxy_decision_result *result) {
    (void)user_data;
    pthread_mutex_lock(&g_tally.mutex);
    g_tally.done++;
    if (error == NULL) {
        g_tally.ok++;
        if (noxy_decision_result_outcome(result) == NOXY_OUTCOME_APPROVED) g_tally.approved++;
    } else if (noxy_error_code(error) == NOXY_ERROR_CANCELLED) {
        g_tally.cancelled++;
    } else {
        if (g_tally.failed++ == 0)
            snprintf(g_tally.first_error, sizeof g_tally.first_error, "%s: %s",
                     noxy_error_code_name(noxy_error_code(error)), noxy_error_message(error));
    }
    pthread_cond_broadcast(&g_tally.cond);
    pthread_mutex_unlock(&g_tally.mutex);
    noxy_error_free(error);
    noxy_decision_result_free(result);
}

static inline long tally_done(void) {
    pthread_mutex_lock(&g_tally.mutex);
    long done = g_tally.done;
    pthread_mutex_unlock(&g_tally.mutex);
    return done;
}

/* Waits until `target` callbacks ran, at most `seconds`. */
static inline int wait_done(long target, double seconds) {
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += (time_t)seconds;
    pthread_mutex_lock(&g_tally.mutex);
    while (g_tally.done < target) {
        if (pthread_cond_timedwait(&g_tally.cond, &g_tally.mutex, &deadline) == ETIMEDOUT) break;
    }
    int reached = g_tally.done >= target;
    pthread_mutex_unlock(&g_tally.mutex);
    return reached;
}

/* Waits (a bounded poll of a counter the library's callbacks move) until *counter >= target. */
static inline int wait_counter(atomic_long *counter, long target, double seconds) {
    double end = now_s() + seconds;
    while (atomic_load(counter) < target) {
        if (now_s() > end) return 0;
        pause_ms(10);
    }
    return 1;
}

static inline int ok(const char *what, noxy_error *error) {
    if (error == NULL) return 1;
    fprintf(stderr, "%s: %s\n", what, noxy_error_message(error));
    noxy_error_free(error);
    return 0;
}


/* A client of `relay` with `token` and the library's defaults, optionally with its own log
 * callback (at DEBUG). */
static inline noxy_client *host_client(const relay_t *relay, const char *token,
                                       noxy_log_callback log) {
    noxy_config *config = noxy_config_new();
    int good = ok("endpoint", noxy_config_set_endpoint(config, relay->endpoint)) &&
               ok("token", noxy_config_set_app_token(config, token)) &&
               ok("ca", noxy_config_set_ca_pem_file(config, relay->ca_path)) &&
               (log == NULL || ok("log", noxy_config_set_log_callback(config, log, NULL, NULL,
                                                                      NOXY_LOG_DEBUG)));
    noxy_client *client = NULL;
    if (good) good = ok("client", noxy_client_new(config, &client));
    noxy_config_free(config);
    return good ? client : NULL;
}

static inline uint64_t quota_remaining(noxy_client *client) {
    noxy_quota *quota = NULL;
    if (!ok("quota", noxy_get_quota(client, &quota))) return 0;
    uint64_t remaining = noxy_quota_remaining(quota);
    noxy_quota_free(quota);
    return remaining;
}

/* Counts deliveries the relay made more than once for one request id. */
static inline long repeated_deliveries(const char *inspection) {
    long repeated = 0;
    for (const char *at = strstr(inspection, "\"count\":"); at != NULL;
         at = strstr(at + 1, "\"count\":"))
        if (atol(at + 8) > 1) repeated++;
    return repeated;
}

#endif /* NOXY_BENCH_HOST_H */
