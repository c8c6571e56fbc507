/* Checks the CNoxy module map the way a Swift program uses it: the C API is imported as the
 * module CNoxy (clang modules, `@import`, hence Objective-C syntax; the code is plain C), and
 * one decision is routed through the development relay with the blocking call, one with the
 * callback API that the README's Swift example wraps in async/await.
 *
 * Environment: NOXY_TEST_ENDPOINT, NOXY_TEST_CA_PATH, NOXY_TEST_TOKEN (bindings/swift/run-check.sh).
 * Prints one line per check and "cnoxy: N passed, N failed". */
@import CNoxy;

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int passed, failed;

static void check(int ok, const char *what) {
    printf("%s: %s\n", what, ok ? "ok" : "FAILED");
    if (ok) passed++; else failed++;
}

static void print_error(const char *what, noxy_error *err) {
    fprintf(stderr, "%s: %s (%s)\n", what, noxy_error_message(err),
            noxy_error_code_name(noxy_error_code(err)));
}

/* What the async callback hands back: the same shape as a Swift continuation. */
typedef struct {
    pthread_mutex_t mutex;
    pthread_cond_t cond;
    int done;
    int32_t outcome;
    int32_t code;
} completion;

static void on_decision(void *user_data, noxy_error *error, noxy_decision_result *result) {
    completion *c = user_data;
    pthread_mutex_lock(&c->mutex);
    c->code = noxy_error_code(error);
    c->outcome = noxy_decision_result_outcome(result);
    c->done = 1;
    pthread_cond_signal(&c->cond);
    pthread_mutex_unlock(&c->mutex);
    /* The callback owns what it receives. */
    noxy_error_free(error);
    noxy_decision_result_free(result);
}

int main(void) {
    const char *endpoint = getenv("NOXY_TEST_ENDPOINT");
    const char *ca = getenv("NOXY_TEST_CA_PATH");
    const char *token = getenv("NOXY_TEST_TOKEN");
    if (!endpoint || !ca || !token) {
        fprintf(stderr, "NOXY_TEST_ENDPOINT, NOXY_TEST_CA_PATH and NOXY_TEST_TOKEN must be set\n");
        return 2;
    }
    check(strcmp(noxy_version(), NOXY_VERSION_STRING) == 0, "noxy_version() matches the module's header");

    noxy_config *config = noxy_config_new();
    noxy_error *err = noxy_config_set_endpoint(config, endpoint);
    if (!err) err = noxy_config_set_app_token(config, token);
    if (!err) err = noxy_config_set_ca_pem_file(config, ca);
    noxy_client *client = NULL;
    if (!err) err = noxy_client_new(config, &client);
    noxy_config_free(config);
    if (err) {
        print_error("client", err);
        noxy_error_free(err);
        return 1;
    }

    const char *payload = "{\"kind\":\"tool\",\"title\":\"Deploy to prod\"}";
    noxy_wait_options *wait = noxy_wait_options_new();
    noxy_error_free(noxy_wait_options_set_initial_interval_ms(wait, 25));
    noxy_error_free(noxy_wait_options_set_max_wait_ms(wait, 20000));

    /* Blocking: alice's device approves. */
    noxy_decision_result *result = NULL;
    err = noxy_send_and_wait(client, "alice", payload, strlen(payload), NULL, wait, &result);
    if (err) {
        print_error("noxy_send_and_wait", err);
        noxy_error_free(err);
    }
    check(err == NULL && noxy_decision_result_outcome(result) == NOXY_OUTCOME_APPROVED,
          "noxy_send_and_wait through CNoxy: APPROVED");
    if (result) printf("  decision %s: %s\n", noxy_decision_result_decision_id(result),
                       noxy_outcome_name(noxy_decision_result_outcome(result)));
    noxy_decision_result_free(result);

    /* The callback API: bob's device rejects. */
    completion c = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, NOXY_OUTCOME_INVALID, NOXY_OK};
    noxy_operation *operation = NULL;
    err = noxy_send_and_wait_async(client, "bob", payload, strlen(payload), NULL, wait, on_decision, &c,
                                   &operation);
    if (err) {
        print_error("noxy_send_and_wait_async", err);
        noxy_error_free(err);
        check(0, "noxy_send_and_wait_async through CNoxy: REJECTED");
    } else {
        struct timespec deadline;
        clock_gettime(CLOCK_REALTIME, &deadline);
        deadline.tv_sec += 30;
        pthread_mutex_lock(&c.mutex);
        while (!c.done) {
            if (pthread_cond_timedwait(&c.cond, &c.mutex, &deadline) != 0) break;
        }
        int done = c.done;
        pthread_mutex_unlock(&c.mutex);
        check(done && c.code == NOXY_OK && c.outcome == NOXY_OUTCOME_REJECTED,
              "noxy_send_and_wait_async through CNoxy: REJECTED");
        noxy_operation_free(operation);
    }

    noxy_wait_options_free(wait);
    /* The orderly shutdown: no callback runs after the drain. */
    noxy_error_free(noxy_client_close(client));
    err = noxy_client_drain(client, 10000);
    check(err == NULL, "noxy_client_close + noxy_client_drain");
    noxy_error_free(err);
    noxy_free(client);

    printf("cnoxy: %d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
