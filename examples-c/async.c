/* Keeps many decisions in flight without blocking, cancels one, and prints each outcome as its
 * callback reports it. Callbacks run on the client's completion thread; the main thread waits
 * on a condition variable until every callback has run.
 *
 *   NOXY_ENDPOINT=... NOXY_APP_TOKEN=... NOXY_CA_PEM_PATH=... NOXY_IDENTITY=demo-user ./async
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "noxy.h"

#define DECISIONS 8
#define CANCELLED_ONE 3

static pthread_mutex_t mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t all_done = PTHREAD_COND_INITIALIZER;
static int finished = 0;

typedef struct {
    int index;
} decision_ctx;

/* Runs on the completion thread; owns `error` / `result` and frees them. */
static void on_done(void *user_data, noxy_error *error, noxy_decision_result *result) {
    decision_ctx *ctx = (decision_ctx *)user_data;
    if (error != NULL) {
        printf("decision #%d: %s (%s)\n", ctx->index, noxy_error_code_name(noxy_error_code(error)),
               noxy_error_message(error));
        noxy_error_free(error);
    } else {
        printf("decision #%d %s: %s\n", ctx->index, noxy_decision_result_decision_id(result),
               noxy_outcome_name(noxy_decision_result_outcome(result)));
        noxy_decision_result_free(result);
    }
    fflush(stdout);
    pthread_mutex_lock(&mutex);
    finished++;
    pthread_cond_signal(&all_done);
    pthread_mutex_unlock(&mutex);
}

static int failed(const char *what, noxy_error *error) {
    if (error == NULL) return 0;
    fprintf(stderr, "%s: %s\n", what, noxy_error_message(error));
    noxy_error_free(error);
    return 1;
}

int main(void) {
    const char *endpoint = getenv("NOXY_ENDPOINT");
    const char *token = getenv("NOXY_APP_TOKEN");
    const char *ca_path = getenv("NOXY_CA_PEM_PATH");
    const char *identity = getenv("NOXY_IDENTITY");
    noxy_config *config = noxy_config_new();
    if (failed("endpoint", noxy_config_set_endpoint(config, endpoint ? endpoint : "127.0.0.1:50051")) ||
        failed("token", noxy_config_set_app_token(config, token ? token : "dev-token")) ||
        (ca_path && failed("CA", noxy_config_set_ca_pem_file(config, ca_path)))) {
        noxy_config_free(config);
        return 2;
    }
    noxy_client *client = NULL;
    noxy_error *error = noxy_client_new(config, &client);
    noxy_config_free(config);
    if (failed("noxy_client_new", error)) return 2;

    noxy_wait_options *wait = noxy_wait_options_new();
    noxy_error_free(noxy_wait_options_set_initial_interval_ms(wait, 100));
    decision_ctx ctx[DECISIONS];
    noxy_operation *ops[DECISIONS] = {0};
    int started = 0;
    for (int i = 0; i < DECISIONS; i++) {
        char payload[160];
        snprintf(payload, sizeof payload,
                 "{\"kind\":\"tool_call\",\"title\":\"Step %d of the rollout\",\"args\":{\"step\":%d}}",
                 i, i);
        ctx[i].index = i;
        if (failed("noxy_send_and_wait_async",
                   noxy_send_and_wait_async(client, identity ? identity : "demo-user", payload,
                                            strlen(payload), NULL, wait, on_done, &ctx[i],
                                            &ops[i])))
            continue;
        started++;
    }
    noxy_wait_options_free(wait); /* copied by each call */
    printf("%d decisions in flight; cancelling #%d\n", started, CANCELLED_ONE);
    fflush(stdout);
    failed("noxy_operation_cancel", noxy_operation_cancel(ops[CANCELLED_ONE]));

    pthread_mutex_lock(&mutex);
    while (finished < started) pthread_cond_wait(&all_done, &mutex);
    pthread_mutex_unlock(&mutex);
    for (int i = 0; i < DECISIONS; i++) noxy_operation_free(ops[i]);
    /* Every callback has run (counted above): nothing is outstanding, and noxy_free, which
     * never blocks, releases the client. */
    noxy_free(client);
    printf("all %d callbacks ran\n", started);
    return 0;
}
