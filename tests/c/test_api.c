/* C tests of libnoxy's C ABI, compiled against include/noxy.h and linked statically and
 * dynamically. Most run against the development relay that tests/c/run.sh starts:
 *   NOXY_TEST_ENDPOINT, NOXY_TEST_CA_PATH  where it listens and its CA
 *   NOXY_TEST_TOKEN                        an app token it accepts
 *   identities: alice (approves), bob (rejects), carol (never answers); "nobody" has no devices
 *   NOXY_TEST_DECISIONS_PER_THREAD         decisions per thread in the 8-thread test (100)
 * Usage: test_api [test-name...]   (no names: every test) */
#include "harness.h"

#include <poll.h>
#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#define ALICE "alice"
#define BOB "bob"
#define CAROL "carol"
#define NOBODY "nobody"
#define PAYLOAD "{\"kind\":\"tool\",\"tool\":\"deploy\",\"title\":\"Deploy to prod\",\"args\":{\"n\":1}}"

static const char *token(void) { return env_or("NOXY_TEST_TOKEN", "test-token"); }

static noxy_config *relay_config(const char *app_token) {
    noxy_config *config = noxy_config_new();
    noxy_error *err = noxy_config_set_endpoint(config, env_or("NOXY_TEST_ENDPOINT", "127.0.0.1:1"));
    if (err == NULL) err = noxy_config_set_app_token(config, app_token);
    if (err == NULL && getenv("NOXY_TEST_CA_PATH") != NULL)
        err = noxy_config_set_ca_pem_file(config, getenv("NOXY_TEST_CA_PATH"));
    if (err == NULL) err = noxy_config_set_request_timeout_ms(config, (uint64_t)slow(10000));
    if (err != NULL) {
        fprintf(stderr, "    config: %s\n", noxy_error_message(err));
        noxy_error_free(err);
        noxy_config_free(config);
        return NULL;
    }
    return config;
}

static noxy_client *relay_client_with(const char *app_token) {
    noxy_config *config = relay_config(app_token);
    if (config == NULL) return NULL;
    noxy_client *client = NULL;
    noxy_error *err = noxy_client_new(config, &client);
    noxy_config_free(config);
    if (err != NULL) {
        fprintf(stderr, "    noxy_client_new: %s\n", noxy_error_message(err));
        noxy_error_free(err);
        return NULL;
    }
    return client;
}

static noxy_client *relay_client(void) { return relay_client_with(token()); }

/* Fast polling so that tests finish quickly; a generous budget. */
static noxy_wait_options *fast_wait(long max_wait_ms) {
    noxy_wait_options *wait = noxy_wait_options_new();
    noxy_error_free(noxy_wait_options_set_initial_interval_ms(wait, 25));
    noxy_error_free(noxy_wait_options_set_multiplier(wait, 1.5));
    noxy_error_free(noxy_wait_options_set_max_interval_ms(wait, 250));
    noxy_error_free(noxy_wait_options_set_max_wait_ms(wait, (uint64_t)max_wait_ms));
    return wait;
}

/* ---- tests without a relay ---- */

static void test_version(void) {
    CHECK(strcmp(noxy_version(), NOXY_VERSION_STRING) == 0);
    CHECK(strcmp(noxy_outcome_name(NOXY_OUTCOME_APPROVED), "APPROVED") == 0);
    CHECK(strcmp(noxy_outcome_name(99), "UNKNOWN") == 0);
    CHECK(strcmp(noxy_delivery_status_name(NOXY_DELIVERY_QUEUED), "QUEUED") == 0);
    CHECK(strcmp(noxy_delivery_status_name(7), "UNKNOWN") == 0);
    char built[64];
    snprintf(built, sizeof built, "%d.%d.%d", NOXY_VERSION_MAJOR, NOXY_VERSION_MINOR,
             NOXY_VERSION_PATCH);
    CHECK(strcmp(built, NOXY_VERSION_STRING) == 0);
}

static void test_error_codes(void) {
    CHECK(NOXY_OK == 0);
    CHECK(NOXY_ERROR_INVALID_ARGUMENT == 1 && NOXY_ERROR_INVALID_PAYLOAD == 2);
    CHECK(NOXY_ERROR_UNAVAILABLE == 3 && NOXY_ERROR_UNAUTHENTICATED == 5);
    CHECK(NOXY_ERROR_CANCELLED == 10 && NOXY_ERROR_NO_DECISION_ID == 11);
    CHECK(NOXY_ERROR_INTERNAL == 13);
    CHECK(strcmp(noxy_error_code_name(NOXY_OK), "ok") == 0);
    CHECK(strcmp(noxy_error_code_name(NOXY_ERROR_WAIT_TIMED_OUT), "wait_timed_out") == 0);
    CHECK(strcmp(noxy_error_code_name(9999), "unknown") == 0);
    CHECK(noxy_error_code(NULL) == NOXY_OK);
    CHECK(strcmp(noxy_error_message(NULL), "") == 0);
    CHECK(noxy_error_delivery_count(NULL) == 0);
    CHECK(noxy_error_delivery(NULL, 0) == NULL);
    CHECK(NOXY_OUTCOME_PENDING == 0 && NOXY_OUTCOME_APPROVED == 1);
    CHECK(NOXY_OUTCOME_REJECTED == 2 && NOXY_OUTCOME_EXPIRED == 3);
    CHECK(NOXY_DELIVERY_DELIVERED == 0 && NOXY_DELIVERY_ERROR == 4);
}

static void test_destructors_accept_null(void) {
    noxy_free(NULL);
    noxy_error_free(NULL);
    noxy_config_free(NULL);
    noxy_wait_options_free(NULL);
    noxy_send_options_free(NULL);
    noxy_send_result_free(NULL);
    noxy_decision_result_free(NULL);
    noxy_quota_free(NULL);
    noxy_devices_free(NULL);
    noxy_operation_free(NULL);
    /* Accessors on NULL objects answer neutral values instead of crashing. */
    CHECK(noxy_decision_result_decision_id(NULL) == NULL);
    CHECK(noxy_decision_result_delivery_count(NULL) == 0);
    CHECK(noxy_send_result_delivery(NULL, 0) == NULL);
    CHECK(noxy_delivery_device_id(NULL) == NULL);
    CHECK(noxy_quota_app_name(NULL) == NULL);
    CHECK(noxy_devices_count(NULL) == 0);
    uint8_t digest[32];
    CHECK(!noxy_send_result_plaintext_sha256(NULL, digest));
}

static void dummy_callback(void *user_data, noxy_error *error, noxy_decision_result *result) {
    (void)user_data;
    noxy_error_free(error);
    noxy_decision_result_free(result);
}

static void test_null_arguments(void) {
    noxy_client *sentinel = (noxy_client *)(uintptr_t)0x1;
    noxy_client *out = sentinel;
    CHECK_ERR(noxy_client_new(NULL, &out), NOXY_ERROR_INVALID_ARGUMENT, "config");
    CHECK(out == sentinel); /* outputs are written only on success */
    noxy_config *config = noxy_config_new();
    CHECK(config != NULL);
    CHECK_ERR(noxy_client_new(config, NULL), NOXY_ERROR_INVALID_ARGUMENT, "out_client");
    CHECK_ERR(noxy_config_set_endpoint(config, NULL), NOXY_ERROR_INVALID_ARGUMENT, "endpoint");
    CHECK_ERR(noxy_config_set_endpoint(NULL, "x"), NOXY_ERROR_INVALID_ARGUMENT, "config");
    CHECK_ERR(noxy_config_set_app_token(config, NULL), NOXY_ERROR_INVALID_ARGUMENT, "app_token");
    CHECK_ERR(noxy_config_set_user_agent(config, NULL), NOXY_ERROR_INVALID_ARGUMENT, "user_agent");
    CHECK_ERR(noxy_config_set_ca_pem_file(config, NULL), NOXY_ERROR_INVALID_ARGUMENT, "ca_pem_path");
    CHECK_ERR(noxy_config_set_ca_pem_file(config, "/nonexistent/ca.pem"),
              NOXY_ERROR_INVALID_ARGUMENT, "ca_pem_path");
    CHECK_ERR(noxy_config_set_worker_threads(config, 0), NOXY_ERROR_INVALID_ARGUMENT,
              "worker_threads");
    CHECK_ERR(noxy_wait_options_set_max_wait_ms(NULL, 1), NOXY_ERROR_INVALID_ARGUMENT, "options");
    CHECK_ERR(noxy_send_options_set_ttl_seconds(NULL, 1), NOXY_ERROR_INVALID_ARGUMENT, "options");
    noxy_config_free(config);

    /* A real client (the relay is never contacted: every call fails its checks first). */
    noxy_client *client = relay_client();
    CHECK(client != NULL);
    noxy_decision_result *result = (noxy_decision_result *)(uintptr_t)0x1;
    noxy_send_result *sent = NULL;
    noxy_quota *quota = NULL;
    noxy_devices *devices = NULL;
    CHECK_ERR(noxy_send_and_wait(NULL, ALICE, PAYLOAD, NULL, NULL, &result),
              NOXY_ERROR_INVALID_ARGUMENT, "client");
    CHECK_ERR(noxy_send_and_wait(client, NULL, PAYLOAD, NULL, NULL, &result),
              NOXY_ERROR_INVALID_ARGUMENT, "identity_id");
    CHECK_ERR(noxy_send_and_wait(client, ALICE, NULL, NULL, NULL, &result),
              NOXY_ERROR_INVALID_ARGUMENT, "payload_json");
    CHECK_ERR(noxy_send_and_wait(client, ALICE, PAYLOAD, NULL, NULL, NULL),
              NOXY_ERROR_INVALID_ARGUMENT, "out_result");
    CHECK(result == (noxy_decision_result *)(uintptr_t)0x1);
    CHECK_ERR(noxy_send_decision(client, ALICE, PAYLOAD, NULL, NULL), NOXY_ERROR_INVALID_ARGUMENT,
              "out_result");
    CHECK_ERR(noxy_send_decision(client, NULL, PAYLOAD, NULL, &sent), NOXY_ERROR_INVALID_ARGUMENT,
              "identity_id");
    CHECK_ERR(noxy_get_decision_outcome(client, NULL, ALICE, &result),
              NOXY_ERROR_INVALID_ARGUMENT, "decision_id");
    CHECK_ERR(noxy_get_decision_outcome(client, "d", NULL, &result),
              NOXY_ERROR_INVALID_ARGUMENT, "identity_id");
    CHECK_ERR(noxy_wait_for_outcome(client, "d", ALICE, NULL, NULL), NOXY_ERROR_INVALID_ARGUMENT,
              "out_result");
    CHECK_ERR(noxy_get_quota(NULL, &quota), NOXY_ERROR_INVALID_ARGUMENT, "client");
    CHECK_ERR(noxy_get_quota(client, NULL), NOXY_ERROR_INVALID_ARGUMENT, "out_quota");
    CHECK_ERR(noxy_get_identity_devices(client, NULL, &devices), NOXY_ERROR_INVALID_ARGUMENT,
              "identity_id");
    CHECK_ERR(noxy_get_identity_devices(client, ALICE, NULL), NOXY_ERROR_INVALID_ARGUMENT,
              "out_devices");
    CHECK_ERR(noxy_send_and_wait_async(client, ALICE, PAYLOAD, NULL, NULL, NULL, NULL, NULL),
              NOXY_ERROR_INVALID_ARGUMENT, "callback");
    CHECK_ERR(noxy_send_and_wait_async(NULL, ALICE, PAYLOAD, NULL, NULL, dummy_callback, NULL,
                                       NULL),
              NOXY_ERROR_INVALID_ARGUMENT, "client");
    CHECK_ERR(noxy_wait_for_outcome_async(client, NULL, ALICE, NULL, dummy_callback, NULL, NULL),
              NOXY_ERROR_INVALID_ARGUMENT, "decision_id");
    CHECK_ERR(noxy_operation_cancel(NULL), NOXY_ERROR_INVALID_ARGUMENT, "operation");
    CHECK_ERR(noxy_client_close(NULL), NOXY_ERROR_INVALID_ARGUMENT, "client");
    CHECK(sent == NULL && quota == NULL && devices == NULL);
    noxy_free(client);
}

static void test_invalid_utf8_and_json(void) {
    noxy_client *client = relay_client();
    CHECK(client != NULL);
    noxy_decision_result *result = NULL;
    const char bad_utf8[] = {'a', (char)0xff, 'b', 0};
    const char bad_utf8_payload[] = {'{', '"', 'a', '"', ':', '"', (char)0xc3, '"', '}', 0};
    CHECK_ERR(noxy_send_and_wait(client, bad_utf8, PAYLOAD, NULL, NULL, &result),
              NOXY_ERROR_INVALID_ARGUMENT, "identity_id: is not valid UTF-8");
    CHECK_ERR(noxy_send_and_wait(client, ALICE, bad_utf8_payload, NULL, NULL, &result),
              NOXY_ERROR_INVALID_PAYLOAD, "UTF-8");
    CHECK_ERR(noxy_send_and_wait(client, ALICE, "not json", NULL, NULL, &result),
              NOXY_ERROR_INVALID_PAYLOAD, "JSON");
    CHECK_ERR(noxy_send_and_wait(client, ALICE, "[1,2]", NULL, NULL, &result),
              NOXY_ERROR_INVALID_PAYLOAD, "object");
    CHECK_ERR(noxy_send_and_wait(client, ALICE, "", NULL, NULL, &result),
              NOXY_ERROR_INVALID_PAYLOAD, NULL);
    CHECK_ERR(noxy_send_and_wait_async(client, ALICE, "42", NULL, NULL, dummy_callback, NULL, NULL),
              NOXY_ERROR_INVALID_PAYLOAD, NULL);
    CHECK_ERR(noxy_get_decision_outcome(client, bad_utf8, ALICE, &result),
              NOXY_ERROR_INVALID_ARGUMENT, "decision_id");
    CHECK_ERR(noxy_send_and_wait(client, "", PAYLOAD, NULL, NULL, &result),
              NOXY_ERROR_INVALID_ARGUMENT, "identity_id");
    CHECK(result == NULL);

    noxy_config *config = noxy_config_new();
    CHECK_ERR(noxy_config_set_endpoint(config, bad_utf8), NOXY_ERROR_INVALID_ARGUMENT,
              "endpoint: is not valid UTF-8");
    CHECK_ERR(noxy_config_set_app_token(config, bad_utf8), NOXY_ERROR_INVALID_ARGUMENT,
              "app_token");
    noxy_config_free(config);
    noxy_free(client);
}

static void test_config_validation(void) {
    noxy_client *client = NULL;
    noxy_config *config = noxy_config_new();
    CHECK_ERR(noxy_client_new(config, &client), NOXY_ERROR_INVALID_ARGUMENT, "endpoint");
    CHECK_OK(noxy_config_set_endpoint(config, "https://relay.example:8443/"));
    CHECK_ERR(noxy_client_new(config, &client), NOXY_ERROR_INVALID_ARGUMENT, "app_token");
    CHECK_OK(noxy_config_set_app_token(config, "tok with space"));
    CHECK_ERR(noxy_client_new(config, &client), NOXY_ERROR_INVALID_ARGUMENT, "app_token");
    CHECK_OK(noxy_config_set_app_token(config, "tok"));
    CHECK_OK(noxy_config_set_decision_ttl_seconds(config, 0));
    CHECK_ERR(noxy_client_new(config, &client), NOXY_ERROR_INVALID_ARGUMENT,
              "decision_ttl_seconds");
    CHECK_OK(noxy_config_set_decision_ttl_seconds(config, 60));
    CHECK_OK(noxy_config_set_ca_pem(config, "not a certificate"));
    CHECK_ERR(noxy_client_new(config, &client), NOXY_ERROR_INVALID_ARGUMENT, "ca_pem");
    CHECK_OK(noxy_config_set_ca_pem(config, NULL));
    CHECK_OK(noxy_config_set_max_attempts(config, 0));
    CHECK_ERR(noxy_client_new(config, &client), NOXY_ERROR_INVALID_ARGUMENT, "max_attempts");
    CHECK_OK(noxy_config_set_max_attempts(config, 2));
    CHECK_OK(noxy_config_set_retry_backoff(config, 10, 2.0, 100, 0.1));
    CHECK_OK(noxy_config_set_connect_timeout_ms(config, 0));
    CHECK_ERR(noxy_client_new(config, &client), NOXY_ERROR_INVALID_ARGUMENT, "connect_timeout");
    CHECK_OK(noxy_config_set_connect_timeout_ms(config, 1000));
    CHECK_OK(noxy_config_set_worker_threads(config, 1));
    CHECK(client == NULL);
    CHECK_OK(noxy_client_new(config, &client));
    CHECK(client != NULL);
    noxy_config_free(config); /* the client keeps its own copy */

    /* Invalid wait options are reported by the call that uses them, naming the field. */
    noxy_wait_options *wait = noxy_wait_options_new();
    CHECK_OK(noxy_wait_options_set_multiplier(wait, 0.5));
    noxy_decision_result *result = NULL;
    CHECK_ERR(noxy_send_and_wait(client, ALICE, PAYLOAD, NULL, wait, &result),
              NOXY_ERROR_INVALID_ARGUMENT, "multiplier");
    CHECK_ERR(noxy_wait_for_outcome_async(client, "d", ALICE, wait, dummy_callback, NULL, NULL),
              NOXY_ERROR_INVALID_ARGUMENT, "multiplier");
    noxy_wait_options_free(wait);
    noxy_free(client);
}

/* ---- tests against the relay ---- */

static void expect_outcome(const char *identity, noxy_outcome expected) {
    noxy_client *client = relay_client();
    CHECK(client != NULL);
    noxy_wait_options *wait = fast_wait(slow(20000));
    noxy_decision_result *result = NULL;
    noxy_error *err = noxy_send_and_wait(client, identity, PAYLOAD, NULL, wait, &result);
    noxy_wait_options_free(wait);
    if (err != NULL) fprintf(stderr, "    %s\n", noxy_error_message(err));
    CHECK(err == NULL);
    CHECK(noxy_decision_result_outcome(result) == expected);
    CHECK(!noxy_decision_result_is_pending(result));
    const char *id = noxy_decision_result_decision_id(result);
    CHECK(id != NULL && strlen(id) == 36);
    CHECK(noxy_decision_result_delivery_count(result) == 1);
    const noxy_delivery *delivery = noxy_decision_result_delivery(result, 0);
    CHECK(delivery != NULL);
    CHECK(noxy_decision_result_delivery(result, 1) == NULL);
    CHECK(noxy_delivery_status(delivery) == NOXY_DELIVERY_DELIVERED);
    CHECK(noxy_delivery_error_code(delivery) == NOXY_OK);
    CHECK(noxy_delivery_error_message(delivery) == NULL);
    CHECK(strcmp(noxy_delivery_decision_id(delivery), id) == 0);
    CHECK(strlen(noxy_delivery_device_id(delivery)) > 0);
    CHECK(strlen(noxy_delivery_request_id(delivery)) == 36);
    uint8_t digest[32], zero[32] = {0};
    CHECK(noxy_decision_result_plaintext_sha256(result, digest));
    CHECK(memcmp(digest, zero, 32) != 0);
    noxy_decision_result_free(result);
    noxy_free(client);
}

static void test_approve(void) { expect_outcome(ALICE, NOXY_OUTCOME_APPROVED); }

static void test_reject(void) { expect_outcome(BOB, NOXY_OUTCOME_REJECTED); }

static void test_expire(void) {
    noxy_client *client = relay_client();
    CHECK(client != NULL);
    noxy_send_options *send = noxy_send_options_new();
    CHECK_OK(noxy_send_options_set_ttl_seconds(send, 1));
    noxy_wait_options *wait = fast_wait(slow(15000));
    noxy_decision_result *result = NULL;
    noxy_error *err = noxy_send_and_wait(client, CAROL, PAYLOAD, send, wait, &result);
    noxy_send_options_free(send);
    noxy_wait_options_free(wait);
    if (err != NULL) fprintf(stderr, "    %s\n", noxy_error_message(err));
    CHECK(err == NULL);
    CHECK(noxy_decision_result_outcome(result) == NOXY_OUTCOME_EXPIRED);
    noxy_decision_result_free(result);
    noxy_free(client);
}

static void test_no_devices(void) {
    noxy_client *client = relay_client();
    CHECK(client != NULL);
    noxy_decision_result *result = NULL;
    noxy_error *err = noxy_send_and_wait(client, NOBODY, PAYLOAD, NULL, NULL, &result);
    CHECK(err != NULL);
    CHECK(noxy_error_code(err) == NOXY_ERROR_NO_DECISION_ID);
    CHECK(strstr(noxy_error_message(err), "no devices") != NULL);
    CHECK(noxy_error_delivery_count(err) == 0);
    CHECK(result == NULL);
    noxy_error_free(err);
    noxy_free(client);
}

static void test_bad_token(void) {
    noxy_client *client = relay_client_with("wrong-token");
    CHECK(client != NULL);
    noxy_decision_result *result = NULL;
    CHECK_ERR(noxy_send_and_wait(client, ALICE, PAYLOAD, NULL, NULL, &result),
              NOXY_ERROR_UNAUTHENTICATED, NULL);
    noxy_quota *quota = NULL;
    CHECK_ERR(noxy_get_quota(client, &quota), NOXY_ERROR_UNAUTHENTICATED, NULL);
    CHECK(result == NULL && quota == NULL);
    noxy_free(client);
}

static void test_unreachable(void) {
    /* A loopback port nothing listens on: the runner reserves one (NOXY_TEST_CLOSED_PORT). */
    char endpoint[64];
    snprintf(endpoint, sizeof endpoint, "127.0.0.1:%s", env_or("NOXY_TEST_CLOSED_PORT", "1"));
    noxy_config *config = noxy_config_new();
    CHECK_OK(noxy_config_set_endpoint(config, endpoint));
    CHECK_OK(noxy_config_set_app_token(config, token()));
    CHECK_OK(noxy_config_set_connect_timeout_ms(config, 500));
    CHECK_OK(noxy_config_set_max_attempts(config, 2));
    CHECK_OK(noxy_config_set_retry_backoff(config, 10, 2.0, 20, 0.0));
    noxy_client *client = NULL;
    CHECK_OK(noxy_client_new(config, &client));
    noxy_config_free(config);
    noxy_decision_result *result = NULL;
    CHECK_ERR(noxy_send_and_wait(client, ALICE, PAYLOAD, NULL, NULL, &result),
              NOXY_ERROR_UNAVAILABLE, NULL);
    CHECK(result == NULL);
    noxy_free(client);
}

static void test_send_get_wait(void) {
    noxy_client *client = relay_client();
    CHECK(client != NULL);
    noxy_send_result *sent = NULL;
    CHECK_OK(noxy_send_decision(client, ALICE, PAYLOAD, NULL, &sent));
    const char *accepted = noxy_send_result_accepted_decision_id(sent);
    CHECK(accepted != NULL);
    CHECK(strcmp(accepted, noxy_send_result_decision_id(sent)) == 0);
    CHECK(noxy_send_result_delivery_count(sent) == 1);
    uint8_t digest[32];
    CHECK(noxy_send_result_plaintext_sha256(sent, digest));

    noxy_decision_result *once = NULL;
    CHECK_OK(noxy_get_decision_outcome(client, accepted, ALICE, &once));
    noxy_outcome first = noxy_decision_result_outcome(once);
    CHECK(first == NOXY_OUTCOME_PENDING || first == NOXY_OUTCOME_APPROVED);
    CHECK(strcmp(noxy_decision_result_decision_id(once), accepted) == 0);
    uint8_t unused[32];
    CHECK(!noxy_decision_result_plaintext_sha256(once, unused)); /* nothing was sent */
    noxy_decision_result_free(once);

    noxy_wait_options *wait = fast_wait(slow(20000));
    noxy_decision_result *final = NULL;
    CHECK_OK(noxy_wait_for_outcome(client, accepted, ALICE, wait, &final));
    CHECK(noxy_decision_result_outcome(final) == NOXY_OUTCOME_APPROVED);
    noxy_decision_result_free(final);

    /* The same payload, sent and waited on in one call, has the same plaintext digest. */
    noxy_decision_result *both = NULL;
    CHECK_OK(noxy_send_and_wait(client, ALICE, PAYLOAD, NULL, wait, &both));
    uint8_t digest2[32];
    CHECK(noxy_decision_result_plaintext_sha256(both, digest2));
    CHECK(memcmp(digest, digest2, 32) == 0);
    noxy_decision_result_free(both);
    noxy_send_result_free(sent);

    /* Carol never answers: a short budget ends in WAIT_TIMED_OUT. */
    noxy_send_result *pending = NULL;
    CHECK_OK(noxy_send_decision(client, CAROL, PAYLOAD, NULL, &pending));
    noxy_wait_options *short_wait = fast_wait(300);
    CHECK_ERR(noxy_wait_for_outcome(client, noxy_send_result_accepted_decision_id(pending), CAROL,
                                    short_wait, &final),
              NOXY_ERROR_WAIT_TIMED_OUT, "wait timed out");
    CHECK_ERR(noxy_get_decision_outcome(client, "00000000-0000-4000-8000-000000000000", ALICE,
                                        &final),
              NOXY_ERROR_NOT_FOUND, NULL);
    noxy_wait_options_free(short_wait);
    noxy_wait_options_free(wait);
    noxy_send_result_free(pending);
    noxy_free(client);
}

static void test_idempotency_key(void) {
    noxy_client *client = relay_client();
    CHECK(client != NULL);
    noxy_send_options *send = noxy_send_options_new();
    char key[64];
    snprintf(key, sizeof key, "c-test-%ld-%ld", (long)getpid(), (long)time(NULL));
    CHECK_OK(noxy_send_options_set_idempotency_key(send, key));
    noxy_send_result *a = NULL, *b = NULL;
    CHECK_OK(noxy_send_decision(client, CAROL, PAYLOAD, send, &a));
    CHECK_OK(noxy_send_decision(client, CAROL, PAYLOAD, send, &b));
    CHECK(strcmp(noxy_send_result_decision_id(a), noxy_send_result_decision_id(b)) == 0);
    CHECK(strcmp(noxy_delivery_request_id(noxy_send_result_delivery(a, 0)),
                 noxy_delivery_request_id(noxy_send_result_delivery(b, 0))) == 0);
    noxy_send_result_free(a);
    noxy_send_result_free(b);
    noxy_send_options_free(send);
    noxy_free(client);
}

static void test_quota_and_devices(void) {
    noxy_client *client = relay_client();
    CHECK(client != NULL);
    noxy_quota *quota = NULL;
    CHECK_OK(noxy_get_quota(client, &quota));
    CHECK(strcmp(noxy_quota_app_name(quota), "tests") == 0);
    CHECK(noxy_quota_total(quota) > 0);
    CHECK(noxy_quota_remaining(quota) <= noxy_quota_total(quota));
    CHECK(noxy_quota_status(quota) == NOXY_QUOTA_ACTIVE);
    noxy_quota_free(quota);

    noxy_devices *devices = NULL;
    CHECK_OK(noxy_get_identity_devices(client, ALICE, &devices));
    CHECK(noxy_devices_count(devices) == 1);
    size_t len = 0;
    const uint8_t *pq = noxy_devices_pq_public_key(devices, 0, &len);
    CHECK(pq != NULL && len == 1184);
    CHECK(noxy_devices_public_key(devices, 0, &len) != NULL && len == 32);
    CHECK(strlen(noxy_devices_device_id(devices, 0)) > 0);
    CHECK(noxy_devices_device_id(devices, 1) == NULL);
    noxy_devices_free(devices);

    CHECK_OK(noxy_get_identity_devices(client, NOBODY, &devices));
    CHECK(noxy_devices_count(devices) == 0);
    noxy_devices_free(devices);
    noxy_free(client);
}

/* ---- async ---- */

typedef struct {
    counter_t *done;
    noxy_code code;
    noxy_outcome outcome;
    int calls;
    char thread_name[32];
    /* for test_free_from_callback */
    noxy_client *free_this;
    noxy_code reentrant_code;
} op_state;

static void record_callback(void *user_data, noxy_error *error, noxy_decision_result *result) {
    op_state *state = (op_state *)user_data;
    state->calls++;
    state->code = noxy_error_code(error);
    state->outcome = noxy_decision_result_outcome(result);
    pthread_getname_np(pthread_self(), state->thread_name, sizeof state->thread_name);
    if (state->free_this != NULL) {
        /* Calling back into the library from a callback: a blocking call, then free the very
         * client whose callback this is. */
        noxy_quota *quota = NULL;
        noxy_error *err = noxy_get_quota(state->free_this, &quota);
        state->reentrant_code = noxy_error_code(err);
        noxy_error_free(err);
        noxy_quota_free(quota);
        noxy_free(state->free_this);
    }
    noxy_error_free(error);
    noxy_decision_result_free(result);
    counter_add(state->done, 1);
}

#define ASYNC_OPS 20

static void test_async_many_and_cancel(void) {
    noxy_client *client = relay_client();
    CHECK(client != NULL);
    counter_t done;
    counter_init(&done);
    op_state states[ASYNC_OPS + 1];
    memset(states, 0, sizeof states);
    noxy_wait_options *wait = fast_wait(slow(30000));
    noxy_operation *ops[ASYNC_OPS + 1] = {0};
    for (int i = 0; i <= ASYNC_OPS; i++) {
        states[i].done = &done;
        /* the last one goes to carol, who never answers, and is cancelled */
        const char *who = i == ASYNC_OPS ? CAROL : (i % 2 ? ALICE : BOB);
        CHECK_OK(noxy_send_and_wait_async(client, who, PAYLOAD, NULL, wait, record_callback,
                                          &states[i], &ops[i]));
        CHECK(ops[i] != NULL);
    }
    noxy_wait_options_free(wait); /* options are copied at the call */
    CHECK(counter_wait(&done, ASYNC_OPS, slow(30000)) >= ASYNC_OPS);
    CHECK(states[ASYNC_OPS].calls == 0); /* carol's is still pending */
    CHECK_OK(noxy_operation_cancel(ops[ASYNC_OPS]));
    CHECK_OK(noxy_operation_cancel(ops[ASYNC_OPS])); /* idempotent */
    CHECK(counter_wait(&done, ASYNC_OPS + 1, slow(10000)) == ASYNC_OPS + 1);
    for (int i = 0; i <= ASYNC_OPS; i++) {
        CHECK(states[i].calls == 1);
        CHECK(strcmp(states[i].thread_name, "noxy-callbacks") == 0);
        if (i == ASYNC_OPS) {
            CHECK(states[i].code == NOXY_ERROR_CANCELLED);
        } else {
            CHECK(states[i].code == NOXY_OK);
            CHECK(states[i].outcome == (i % 2 ? NOXY_OUTCOME_APPROVED : NOXY_OUTCOME_REJECTED));
        }
        CHECK_OK(noxy_operation_cancel(ops[i])); /* after completion: no effect */
        noxy_operation_free(ops[i]);
    }
    noxy_free(client);
    counter_destroy(&done);
}

static void test_wait_async(void) {
    noxy_client *client = relay_client();
    CHECK(client != NULL);
    noxy_send_result *sent = NULL;
    CHECK_OK(noxy_send_decision(client, BOB, PAYLOAD, NULL, &sent));
    counter_t done;
    counter_init(&done);
    op_state state;
    memset(&state, 0, sizeof state);
    state.done = &done;
    noxy_wait_options *wait = fast_wait(slow(20000));
    /* out_operation may be NULL: the operation then ends by itself or with the client. */
    CHECK_OK(noxy_wait_for_outcome_async(client, noxy_send_result_accepted_decision_id(sent), BOB,
                                         wait, record_callback, &state, NULL));
    noxy_wait_options_free(wait);
    noxy_send_result_free(sent);
    CHECK(counter_wait(&done, 1, slow(20000)) == 1);
    CHECK(state.code == NOXY_OK && state.outcome == NOXY_OUTCOME_REJECTED);
    noxy_free(client);
    counter_destroy(&done);
}

#define FREE_OPS 10

static void test_free_while_in_flight(void) {
    noxy_client *client = relay_client();
    CHECK(client != NULL);
    counter_t done;
    counter_init(&done);
    op_state states[FREE_OPS];
    memset(states, 0, sizeof states);
    noxy_operation *ops[FREE_OPS];
    for (int i = 0; i < FREE_OPS; i++) {
        states[i].done = &done;
        CHECK_OK(noxy_send_and_wait_async(client, CAROL, PAYLOAD, NULL, NULL, record_callback,
                                          &states[i], &ops[i]));
    }
    noxy_free(client);
    /* Every callback ran before noxy_free returned, each reporting CANCELLED. */
    CHECK(counter_get(&done) == FREE_OPS);
    for (int i = 0; i < FREE_OPS; i++) {
        CHECK(states[i].calls == 1 && states[i].code == NOXY_ERROR_CANCELLED);
        /* operation handles outlive the client */
        CHECK_OK(noxy_operation_cancel(ops[i]));
        noxy_operation_free(ops[i]);
    }
    counter_destroy(&done);
}

static void test_free_from_callback(void) {
    noxy_client *client = relay_client();
    CHECK(client != NULL);
    counter_t done;
    counter_init(&done);
    op_state states[6];
    memset(states, 0, sizeof states);
    for (int i = 0; i < 5; i++) {
        states[i].done = &done;
        CHECK_OK(noxy_send_and_wait_async(client, CAROL, PAYLOAD, NULL, NULL, record_callback,
                                          &states[i], NULL));
    }
    noxy_wait_options *wait = fast_wait(slow(20000));
    states[5].done = &done;
    states[5].free_this = client; /* alice's callback frees the client */
    CHECK_OK(noxy_send_and_wait_async(client, ALICE, PAYLOAD, NULL, wait, record_callback,
                                      &states[5], NULL));
    noxy_wait_options_free(wait);
    CHECK(counter_wait(&done, 6, slow(20000)) == 6);
    CHECK(states[5].code == NOXY_OK && states[5].outcome == NOXY_OUTCOME_APPROVED);
    CHECK(states[5].reentrant_code == NOXY_OK); /* the blocking call from the callback worked */
    for (int i = 0; i < 5; i++) CHECK(states[i].calls == 1 && states[i].code == NOXY_ERROR_CANCELLED);
    counter_destroy(&done);
}

static void test_client_close(void) {
    noxy_client *client = relay_client();
    CHECK(client != NULL);
    counter_t done;
    counter_init(&done);
    op_state state;
    memset(&state, 0, sizeof state);
    state.done = &done;
    CHECK_OK(noxy_send_and_wait_async(client, CAROL, PAYLOAD, NULL, NULL, record_callback, &state,
                                      NULL));
    CHECK_OK(noxy_client_close(client));
    CHECK(counter_wait(&done, 1, slow(10000)) == 1);
    CHECK(state.code == NOXY_ERROR_CANCELLED);
    noxy_quota *quota = NULL;
    CHECK_ERR(noxy_get_quota(client, &quota), NOXY_ERROR_CANCELLED, NULL);
    /* A closed client starts no new operation: the call fails, the callback is never called. */
    CHECK_ERR(noxy_send_and_wait_async(client, ALICE, PAYLOAD, NULL, NULL, record_callback, &state,
                                       NULL),
              NOXY_ERROR_CANCELLED, NULL);
    noxy_free(client);
    CHECK(state.calls == 1);
    counter_destroy(&done);
}

/* ---- callbacks during the teardown ---- */

typedef struct {
    counter_t *done;
    noxy_client *client; /* the client the callback calls back into */
    int free_it;         /* this callback frees the client instead */
    int calls;
    noxy_code code;           /* the operation's own result */
    noxy_code retry_async;    /* a new async operation started from the callback */
    noxy_code retry_blocking; /* a blocking call from the callback */
} retry_state;

/* A host that retries when an operation fails: while the client is being freed, its
 * callbacks may still pass it to the library, which answers CANCELLED. */
static void retry_callback(void *user_data, noxy_error *error, noxy_decision_result *result) {
    retry_state *state = (retry_state *)user_data;
    state->calls++;
    state->code = noxy_error_code(error);
    noxy_error_free(error);
    noxy_decision_result_free(result);
    if (state->free_it) {
        noxy_free(state->client);
    } else {
        noxy_error *err = noxy_send_and_wait_async(state->client, ALICE, PAYLOAD, NULL, NULL,
                                                   dummy_callback, NULL, NULL);
        state->retry_async = noxy_error_code(err);
        noxy_error_free(err);
        noxy_quota *quota = NULL;
        err = noxy_get_quota(state->client, &quota);
        state->retry_blocking = noxy_error_code(err);
        noxy_error_free(err);
        noxy_quota_free(quota);
    }
    counter_add(state->done, 1);
}

#define RETRY_OPS 4

static int retried_cancelled(const retry_state *state) {
    return state->calls == 1 && state->code == NOXY_ERROR_CANCELLED &&
           state->retry_async == NOXY_ERROR_CANCELLED &&
           state->retry_blocking == NOXY_ERROR_CANCELLED;
}

static void test_callbacks_use_client_while_freed(void) {
    /* 1. noxy_free from the host thread. */
    noxy_client *client = relay_client();
    CHECK(client != NULL);
    counter_t done;
    counter_init(&done);
    retry_state states[RETRY_OPS + 1];
    memset(states, 0, sizeof states);
    for (int i = 0; i < RETRY_OPS; i++) {
        states[i] = (retry_state){.done = &done, .client = client};
        CHECK_OK(noxy_send_and_wait_async(client, CAROL, PAYLOAD, NULL, NULL, retry_callback,
                                          &states[i], NULL));
    }
    noxy_free(client);
    CHECK(counter_get(&done) == RETRY_OPS);
    for (int i = 0; i < RETRY_OPS; i++) CHECK(retried_cancelled(&states[i]));

    /* 2. noxy_free from a callback (alice's): carol's callbacks run after it returned, on the
     * completion thread, and still find the handle valid. */
    client = relay_client();
    CHECK(client != NULL);
    counter_destroy(&done);
    counter_init(&done);
    memset(states, 0, sizeof states);
    for (int i = 0; i < RETRY_OPS; i++) {
        states[i] = (retry_state){.done = &done, .client = client};
        CHECK_OK(noxy_send_and_wait_async(client, CAROL, PAYLOAD, NULL, NULL, retry_callback,
                                          &states[i], NULL));
    }
    noxy_wait_options *wait = fast_wait(slow(20000));
    states[RETRY_OPS] = (retry_state){.done = &done, .client = client, .free_it = 1};
    CHECK_OK(noxy_send_and_wait_async(client, ALICE, PAYLOAD, NULL, wait, retry_callback,
                                      &states[RETRY_OPS], NULL));
    noxy_wait_options_free(wait);
    CHECK(counter_wait(&done, RETRY_OPS + 1, slow(20000)) == RETRY_OPS + 1);
    CHECK(states[RETRY_OPS].calls == 1 && states[RETRY_OPS].code == NOXY_OK);
    for (int i = 0; i < RETRY_OPS; i++) CHECK(retried_cancelled(&states[i]));
    counter_destroy(&done);
}

typedef struct {
    counter_t entered; /* the slow callback started */
    counter_t release; /* the test lets it return */
    counter_t freed;   /* noxy_free returned */
    noxy_client *client;
    int freed_before_return; /* noxy_free had returned while the slow callback ran */
    int calls;
    noxy_code later_code;   /* the callback queued behind the slow one */
    int later_after_free;   /* ... ran after noxy_free returned */
} slow_state;

static void slow_callback(void *user_data, noxy_error *error, noxy_decision_result *result) {
    slow_state *state = (slow_state *)user_data;
    noxy_error_free(error);
    noxy_decision_result_free(result);
    counter_add(&state->entered, 1);
    counter_wait(&state->release, 1, slow(20000));
    state->freed_before_return = counter_get(&state->freed) != 0;
}

static void later_callback(void *user_data, noxy_error *error, noxy_decision_result *result) {
    slow_state *state = (slow_state *)user_data;
    state->calls++;
    state->later_code = noxy_error_code(error);
    state->later_after_free = counter_get(&state->freed) != 0;
    noxy_error_free(error);
    noxy_decision_result_free(result);
}

static void *free_on_thread(void *arg) {
    slow_state *state = (slow_state *)arg;
    noxy_free(state->client);
    counter_add(&state->freed, 1);
    return NULL;
}

static void test_free_waits_for_a_slow_callback(void) {
    slow_state state;
    memset(&state, 0, sizeof state);
    counter_init(&state.entered);
    counter_init(&state.release);
    counter_init(&state.freed);
    state.client = relay_client();
    CHECK(state.client != NULL);
    noxy_wait_options *wait = fast_wait(slow(20000));
    CHECK_OK(noxy_send_and_wait_async(state.client, ALICE, PAYLOAD, NULL, wait, slow_callback,
                                      &state, NULL));
    noxy_wait_options_free(wait);
    CHECK_OK(noxy_send_and_wait_async(state.client, CAROL, PAYLOAD, NULL, NULL, later_callback,
                                      &state, NULL));
    CHECK(counter_wait(&state.entered, 1, slow(20000)) == 1);
    pthread_t thread;
    CHECK(pthread_create(&thread, NULL, free_on_thread, &state) == 0);
    /* While the slow callback runs, noxy_free must not return (a bounded wait that expects
     * the condition not to happen). */
    int early = counter_wait(&state.freed, 1, 300);
    counter_add(&state.release, 1);
    CHECK(counter_wait(&state.freed, 1, slow(20000)) == 1);
    pthread_join(thread, NULL);
    CHECK(early == 0);
    CHECK(!state.freed_before_return);
    /* The operation queued behind the slow callback was cancelled, and its callback ran before
     * noxy_free returned. */
    CHECK(state.calls == 1 && state.later_code == NOXY_ERROR_CANCELLED);
    CHECK(!state.later_after_free);
    counter_destroy(&state.entered);
    counter_destroy(&state.release);
    counter_destroy(&state.freed);
}

/* ---- 8 host threads sharing one client ---- */

#define THREADS 8

typedef struct {
    noxy_client *client;
    long decisions;
    long approved;
    long failed;
} worker_args;

static void *worker(void *arg) {
    worker_args *args = (worker_args *)arg;
    noxy_wait_options *wait = fast_wait(slow(60000));
    for (long i = 0; i < args->decisions; i++) {
        noxy_decision_result *result = NULL;
        noxy_error *err = noxy_send_and_wait(args->client, ALICE, PAYLOAD, NULL, wait, &result);
        if (err == NULL && noxy_decision_result_outcome(result) == NOXY_OUTCOME_APPROVED) {
            args->approved++;
        } else {
            if (args->failed++ == 0)
                fprintf(stderr, "    worker: %s\n", err ? noxy_error_message(err) : "not approved");
        }
        noxy_error_free(err);
        noxy_decision_result_free(result);
    }
    noxy_wait_options_free(wait);
    return NULL;
}

static void test_threads_share_one_client(void) {
    noxy_client *client = relay_client();
    CHECK(client != NULL);
    long per_thread = env_long("NOXY_TEST_DECISIONS_PER_THREAD", 100);
    pthread_t threads[THREADS];
    worker_args args[THREADS];
    for (int i = 0; i < THREADS; i++) {
        args[i] = (worker_args){client, per_thread, 0, 0};
        CHECK(pthread_create(&threads[i], NULL, worker, &args[i]) == 0);
    }
    long approved = 0, failed = 0;
    for (int i = 0; i < THREADS; i++) {
        pthread_join(threads[i], NULL);
        approved += args[i].approved;
        failed += args[i].failed;
    }
    fprintf(stderr, "    %d threads x %ld decisions: %ld approved, %ld failed\n", THREADS,
            per_thread, approved, failed);
    CHECK(failed == 0);
    CHECK(approved == THREADS * per_thread);
    noxy_free(client);
}

/* ---- fork ---- */

static void test_fork_child_gets_an_error(void) {
    noxy_client *client = relay_client();
    CHECK(client != NULL);
    noxy_quota *quota = NULL;
    CHECK_OK(noxy_get_quota(client, &quota)); /* the runtime is running before the fork */
    noxy_quota_free(quota);
    /* An operation in flight across the fork: carol never answers. */
    counter_t done;
    counter_init(&done);
    op_state state;
    memset(&state, 0, sizeof state);
    state.done = &done;
    noxy_operation *op = NULL;
    CHECK_OK(noxy_send_and_wait_async(client, CAROL, PAYLOAD, NULL, NULL, record_callback, &state,
                                      &op));
    /* The child reports over a pipe: under valgrind its exit status also reflects the memory
     * of the parent's threads, which do not exist in the child and cannot be freed there. */
    int report[2];
    CHECK(pipe(report) == 0);
    fflush(NULL);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        close(report[0]);
        noxy_quota *child_quota = NULL;
        noxy_error *err = noxy_get_quota(client, &child_quota);
        int ok = err != NULL && noxy_error_code(err) == NOXY_ERROR_INVALID_ARGUMENT &&
                 strstr(noxy_error_message(err), "fork") != NULL && child_quota == NULL;
        noxy_error_free(err);
        err = noxy_send_and_wait_async(client, ALICE, PAYLOAD, NULL, NULL, dummy_callback, NULL,
                                       NULL);
        ok = ok && noxy_error_code(err) == NOXY_ERROR_INVALID_ARGUMENT;
        noxy_error_free(err);
        /* The parent's operation: cancelling it in the child is an error, freeing it only
         * releases the handle. */
        err = noxy_operation_cancel(op);
        ok = ok && noxy_error_code(err) == NOXY_ERROR_INVALID_ARGUMENT &&
             strstr(noxy_error_message(err), "fork") != NULL;
        noxy_error_free(err);
        noxy_operation_free(op);
        noxy_free(client); /* must return, not hang on the parent's threads */
#ifndef __SANITIZE_ADDRESS__
        /* A new client created in the child works. (Not under ASan: its allocator is not
         * fork-safe, and a lock that a parent thread held at fork() can block the child's
         * large allocations forever; glibc's malloc is fork-safe.) */
        noxy_client *fresh = relay_client();
        err = fresh == NULL ? NULL : noxy_get_quota(fresh, &child_quota);
        ok = ok && fresh != NULL && err == NULL && child_quota != NULL;
        noxy_error_free(err);
        noxy_quota_free(child_quota);
        noxy_free(fresh);
#endif
        char verdict = ok ? 'Y' : 'N';
        ssize_t written = write(report[1], &verdict, 1);
        _exit(written == 1 ? 0 : 1);
    }
    close(report[1]);
    /* A bounded wait for the child's verdict: a child that hangs fails the test. */
    char verdict = 0;
    ssize_t got = 0;
    struct pollfd readable = {.fd = report[0], .events = POLLIN};
    if (poll(&readable, 1, (int)slow(20000)) == 1) {
        got = read(report[0], &verdict, 1);
    } else {
        fprintf(stderr, "    the forked child hangs\n");
        kill(pid, SIGKILL);
    }
    close(report[0]);
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status)); /* it returned from noxy_free instead of hanging or crashing */
    CHECK(got == 1 && verdict == 'Y');
    CHECK_OK(noxy_get_quota(client, &quota)); /* the parent's client still works */
    noxy_quota_free(quota);
    CHECK(state.calls == 0); /* ... and so does its operation */
    CHECK_OK(noxy_operation_cancel(op));
    CHECK(counter_wait(&done, 1, slow(10000)) == 1);
    CHECK(state.code == NOXY_ERROR_CANCELLED);
    noxy_operation_free(op);
    noxy_free(client);
    counter_destroy(&done);
}

/* ---- logging ---- */

typedef struct {
    pthread_mutex_t mutex;
    long messages;
    long leaks;
    char secret_token[64];
} log_state;

static void log_callback(noxy_log_level level, const char *message, void *user_data) {
    log_state *state = (log_state *)user_data;
    pthread_mutex_lock(&state->mutex);
    state->messages++;
    if (level > NOXY_LOG_TRACE || strstr(message, state->secret_token) != NULL ||
        strstr(message, "Deploy to prod") != NULL) {
        if (state->leaks++ == 0) fprintf(stderr, "    leaked in log: %s\n", message);
    }
    pthread_mutex_unlock(&state->mutex);
}

static void test_logging_never_shows_token_or_payload(void) {
    log_state state;
    memset(&state, 0, sizeof state);
    pthread_mutex_init(&state.mutex, NULL);
    snprintf(state.secret_token, sizeof state.secret_token, "%s", token());
    CHECK_ERR(noxy_set_log_callback(log_callback, &state, 6), NOXY_ERROR_INVALID_ARGUMENT,
              "max_level");
    CHECK_OK(noxy_set_log_callback(log_callback, &state, NOXY_LOG_TRACE));
    noxy_client *client = relay_client();
    CHECK(client != NULL);
    noxy_wait_options *wait = fast_wait(slow(20000));
    noxy_decision_result *result = NULL;
    CHECK_OK(noxy_send_and_wait(client, ALICE, PAYLOAD, NULL, wait, &result));
    noxy_decision_result_free(result);
    noxy_wait_options_free(wait);
    noxy_free(client);
    CHECK_OK(noxy_set_log_callback(NULL, NULL, NOXY_LOG_OFF));
    /* After it returned, the callback is not called any more. */
    long after_disable = state.messages;
    client = relay_client();
    CHECK(client != NULL);
    noxy_free(client);
    CHECK(state.messages == after_disable);
    fprintf(stderr, "    %ld log messages, %ld with a secret\n", state.messages, state.leaks);
    CHECK(state.messages > 0);
    CHECK(state.leaks == 0);
    pthread_mutex_destroy(&state.mutex);
}

/* A log callback that blocks on one thread (the one that set `t_block_here`) until the test
 * releases it, while another thread replaces the callback. */
static _Thread_local int t_block_here;

typedef struct {
    pthread_mutex_t mutex;
    long calls;
    int in_flight;           /* the blocking delivery is running */
    int in_flight_at_return; /* ... when noxy_set_log_callback returned on another thread */
    noxy_code reentrant_code; /* noxy_set_log_callback from inside the callback */
    counter_t entered, release, replaced;
} gate_log;

static void gate_log_callback(noxy_log_level level, const char *message, void *user_data) {
    (void)level;
    (void)message;
    gate_log *gate = (gate_log *)user_data;
    pthread_mutex_lock(&gate->mutex);
    gate->calls++;
    pthread_mutex_unlock(&gate->mutex);
    if (!t_block_here) return;
    t_block_here = 0;
    noxy_error *err = noxy_set_log_callback(NULL, NULL, NOXY_LOG_OFF);
    gate->reentrant_code = noxy_error_code(err);
    noxy_error_free(err);
    pthread_mutex_lock(&gate->mutex);
    gate->in_flight = 1;
    pthread_mutex_unlock(&gate->mutex);
    counter_add(&gate->entered, 1);
    counter_wait(&gate->release, 1, slow(20000));
    pthread_mutex_lock(&gate->mutex);
    gate->in_flight = 0;
    pthread_mutex_unlock(&gate->mutex);
}

static void *log_from_this_thread(void *arg) {
    (void)arg;
    t_block_here = 1;
    noxy_client *client = relay_client(); /* logs "noxy client created" on this thread */
    noxy_free(client);
    return NULL;
}

static void *replace_log_callback(void *arg) {
    gate_log *gate = (gate_log *)arg;
    noxy_error *err = noxy_set_log_callback(NULL, NULL, NOXY_LOG_OFF);
    pthread_mutex_lock(&gate->mutex);
    gate->in_flight_at_return = gate->in_flight;
    pthread_mutex_unlock(&gate->mutex);
    noxy_error_free(err);
    counter_add(&gate->replaced, 1);
    return NULL;
}

static void test_log_callback_replaced_while_delivering(void) {
    gate_log gate;
    memset(&gate, 0, sizeof gate);
    pthread_mutex_init(&gate.mutex, NULL);
    counter_init(&gate.entered);
    counter_init(&gate.release);
    counter_init(&gate.replaced);
    CHECK_OK(noxy_set_log_callback(gate_log_callback, &gate, NOXY_LOG_DEBUG));
    pthread_t logger, replacer;
    CHECK(pthread_create(&logger, NULL, log_from_this_thread, NULL) == 0);
    CHECK(counter_wait(&gate.entered, 1, slow(20000)) == 1);
    CHECK(pthread_create(&replacer, NULL, replace_log_callback, &gate) == 0);
    /* While a delivery runs, replacing the callback must not return (a bounded wait that
     * expects the condition not to happen). */
    int early = counter_wait(&gate.replaced, 1, 300);
    counter_add(&gate.release, 1);
    CHECK(counter_wait(&gate.replaced, 1, slow(20000)) == 1);
    pthread_join(replacer, NULL);
    pthread_join(logger, NULL);
    CHECK(early == 0);
    CHECK(gate.in_flight_at_return == 0);
    CHECK(gate.reentrant_code == NOXY_ERROR_INVALID_ARGUMENT);
    /* Once replaced, the old callback is never called again. */
    long calls = gate.calls;
    noxy_client *client = relay_client();
    CHECK(client != NULL);
    noxy_free(client);
    CHECK(gate.calls == calls);
    counter_destroy(&gate.entered);
    counter_destroy(&gate.release);
    counter_destroy(&gate.replaced);
    pthread_mutex_destroy(&gate.mutex);
}

/* ---- the registry ---- */

typedef struct {
    const char *name;
    void (*run)(void);
} test_case;

static const test_case TESTS[] = {
    {"version", test_version},
    {"error_codes", test_error_codes},
    {"destructors_accept_null", test_destructors_accept_null},
    {"null_arguments", test_null_arguments},
    {"invalid_utf8_and_json", test_invalid_utf8_and_json},
    {"config_validation", test_config_validation},
    {"approve", test_approve},
    {"reject", test_reject},
    {"expire", test_expire},
    {"no_devices", test_no_devices},
    {"bad_token", test_bad_token},
    {"unreachable", test_unreachable},
    {"send_get_wait", test_send_get_wait},
    {"idempotency_key", test_idempotency_key},
    {"quota_and_devices", test_quota_and_devices},
    {"async_many_and_cancel", test_async_many_and_cancel},
    {"wait_async", test_wait_async},
    {"free_while_in_flight", test_free_while_in_flight},
    {"free_from_callback", test_free_from_callback},
    {"client_close", test_client_close},
    {"callbacks_use_client_while_freed", test_callbacks_use_client_while_freed},
    {"free_waits_for_a_slow_callback", test_free_waits_for_a_slow_callback},
    {"threads_share_one_client", test_threads_share_one_client},
    {"fork_child_gets_an_error", test_fork_child_gets_an_error},
    {"logging_never_shows_token_or_payload", test_logging_never_shows_token_or_payload},
    {"log_callback_replaced_while_delivering", test_log_callback_replaced_while_delivering},
};

int main(int argc, char **argv) {
    int passed = 0, failed = 0;
    const char *label = env_or("NOXY_TEST_LABEL", argv[0]);
    for (size_t t = 0; t < sizeof TESTS / sizeof TESTS[0]; t++) {
        int selected = argc < 2;
        for (int a = 1; a < argc; a++) selected |= strcmp(argv[a], TESTS[t].name) == 0;
        if (!selected) continue;
        g_check_failures = 0;
        struct timespec start, end;
        clock_gettime(CLOCK_MONOTONIC, &start);
        TESTS[t].run();
        clock_gettime(CLOCK_MONOTONIC, &end);
        long ms = (end.tv_sec - start.tv_sec) * 1000 + (end.tv_nsec - start.tv_nsec) / 1000000;
        if (g_check_failures == 0) {
            passed++;
            printf("  ok   %-40s %6ld ms\n", TESTS[t].name, ms);
        } else {
            failed++;
            printf("  FAIL %-40s %6ld ms\n", TESTS[t].name, ms);
        }
        fflush(stdout);
    }
    printf("%s: %d passed, %d failed\n", label, passed, failed);
    printf("RESULT passed=%d failed=%d\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
