/* The C baseline of the JVM binding's benchmark: decisions per second through libnoxy's async
 * API, `noxy_send_and_wait_async`, keeping WINDOW decisions in flight (each callback, on the
 * completion thread, starts the next one) until TOTAL have completed.
 *
 *   c_async_bench ENDPOINT CA_PATH TOKEN IDENTITY TOTAL WINDOW POLL_MS
 *
 * Prints one line: "c decisions=N seconds=S per_second=R cpu_us_per_decision=U errors=E" (U: CPU
 * time of the whole process, every libnoxy thread included, per decision). The relay, identity and
 * wait options must match the JVM side's for the figures to compare.
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "noxy.h"

static noxy_client *client;
static noxy_wait_options *wait_options;
static const char *identity;
static long total;
static long started;
static long completed;
static long errors;
static pthread_mutex_t mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t done = PTHREAD_COND_INITIALIZER;

static void on_done(void *user_data, noxy_error *error, noxy_decision_result *result);

/* Starts the next decision unless TOTAL were started; called with `mutex` held. */
static void start_next_locked(void) {
    if (started >= total) return;
    char payload[96];
    int len = snprintf(payload, sizeof payload, "{\"kind\":\"bench\",\"title\":\"decision %ld\"}", started);
    started++;
    noxy_error *err = noxy_send_and_wait_async(client, identity, payload, (size_t)len, NULL,
                                               wait_options, on_done, NULL, NULL);
    if (err != NULL) {
        fprintf(stderr, "start: %s\n", noxy_error_message(err));
        noxy_error_free(err);
        errors++;
        completed++;
        pthread_cond_signal(&done);
    }
}

static void on_done(void *user_data, noxy_error *error, noxy_decision_result *result) {
    (void)user_data;
    pthread_mutex_lock(&mutex);
    if (error != NULL || noxy_decision_result_outcome(result) != NOXY_OUTCOME_APPROVED) errors++;
    completed++;
    start_next_locked();
    pthread_cond_signal(&done);
    pthread_mutex_unlock(&mutex);
    noxy_error_free(error);
    noxy_decision_result_free(result);
}

static double clock_seconds(clockid_t clock) {
    struct timespec t;
    clock_gettime(clock, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Runs `n` decisions with `window` in flight; returns the seconds taken and, in *cpu, the CPU
 * seconds the whole process (every libnoxy thread) used meanwhile. */
static double run(long n, long window, double *cpu) {
    pthread_mutex_lock(&mutex);
    total = n;
    started = completed = errors = 0;
    double c0 = clock_seconds(CLOCK_PROCESS_CPUTIME_ID);
    double t0 = clock_seconds(CLOCK_MONOTONIC);
    for (long i = 0; i < window; i++) start_next_locked();
    while (completed < total) pthread_cond_wait(&done, &mutex);
    double seconds = clock_seconds(CLOCK_MONOTONIC) - t0;
    *cpu = clock_seconds(CLOCK_PROCESS_CPUTIME_ID) - c0;
    pthread_mutex_unlock(&mutex);
    return seconds;
}

int main(int argc, char **argv) {
    if (argc != 8) {
        fprintf(stderr, "usage: %s ENDPOINT CA_PATH TOKEN IDENTITY TOTAL WINDOW POLL_MS\n", argv[0]);
        return 2;
    }
    identity = argv[4];
    long n = atol(argv[5]);
    long window = atol(argv[6]);
    noxy_config *config = noxy_config_new();
    noxy_error *err = noxy_config_set_endpoint(config, argv[1]);
    if (err == NULL) err = noxy_config_set_ca_pem_file(config, argv[2]);
    if (err == NULL) err = noxy_config_set_app_token(config, argv[3]);
    if (err == NULL) err = noxy_client_new(config, &client);
    noxy_config_free(config);
    if (err != NULL) {
        fprintf(stderr, "client: %s\n", noxy_error_message(err));
        return 2;
    }
    wait_options = noxy_wait_options_new();
    noxy_error_free(noxy_wait_options_set_initial_interval_ms(wait_options, (uint64_t)atol(argv[7])));
    noxy_error_free(noxy_wait_options_set_max_interval_ms(wait_options, (uint64_t)atol(argv[7])));

    double cpu;
    run(window * 2, window, &cpu); /* warm-up: connection, caches */
    double seconds = run(n, window, &cpu);
    long failed = errors;
    printf("c decisions=%ld seconds=%.3f per_second=%.1f cpu_us_per_decision=%.1f errors=%ld\n", n, seconds,
           (double)n / seconds, cpu * 1e6 / (double)n, failed);
    noxy_wait_options_free(wait_options);
    noxy_free(client); /* nothing outstanding: every callback ran */
    return failed == 0 ? 0 : 1;
}
