/* The C baseline of the Go binding's benchmark: the same decisions through libnoxy's async C
 * API directly. See cbench.h. */
#include "cbench.h"

#include <pthread.h>

typedef struct {
    pthread_mutex_t mutex;
    pthread_cond_t all_done;
    long left;
    long failed;
} run_state;

/* Runs on the client's completion thread: counts the decision and frees what it received. */
static void on_done(void *user_data, noxy_error *error, noxy_decision_result *result) {
    run_state *run = user_data;
    long failed = 0;
    if (error != NULL) {
        failed = 1;
        noxy_error_free(error);
    } else {
        failed = noxy_decision_result_outcome(result) != NOXY_OUTCOME_APPROVED;
        noxy_decision_result_free(result);
    }
    pthread_mutex_lock(&run->mutex);
    run->failed += failed;
    if (--run->left == 0) pthread_cond_signal(&run->all_done);
    pthread_mutex_unlock(&run->mutex);
}

long cbench_send_and_wait(const noxy_client *client, const char *identity_id, const char *payload,
                          size_t payload_len, const noxy_wait_options *wait, long n) {
    run_state run;
    pthread_mutex_init(&run.mutex, NULL);
    pthread_cond_init(&run.all_done, NULL);
    run.left = n;
    run.failed = 0;
    for (long i = 0; i < n; i++) {
        noxy_error *error = noxy_send_and_wait_async(client, identity_id, payload, payload_len,
                                                     NULL, wait, on_done, &run, NULL);
        if (error != NULL) { /* not started: no callback will count it */
            noxy_error_free(error);
            pthread_mutex_lock(&run.mutex);
            run.failed++;
            run.left--;
            pthread_mutex_unlock(&run.mutex);
        }
    }
    pthread_mutex_lock(&run.mutex);
    while (run.left > 0) pthread_cond_wait(&run.all_done, &run.mutex);
    long failed = run.failed;
    pthread_mutex_unlock(&run.mutex);
    pthread_cond_destroy(&run.all_done);
    pthread_mutex_destroy(&run.mutex);
    return failed;
}
