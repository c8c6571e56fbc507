/* C tests of libnoxy's C ABI, compiled against include/noxy.h and linked statically and
 * dynamically. Most run against the development relay that tests/c/run.sh starts:
 *   NOXY_TEST_ENDPOINT, NOXY_TEST_CA_PATH  where it listens and its CA
 *   NOXY_TEST_TOKEN                        an app token it accepts
 *   identities: alice (approves), bob (rejects), carol (never answers); "nobody" has no devices
 *   NOXY_TEST_DECISIONS_PER_THREAD         decisions per thread in the 8-thread test (100)
 * Usage: test_api [test-name...]   (no names: every test) */
#include "harness.h"

#include <dirent.h>
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
/* SHA-256 of PAYLOAD's bytes, computed outside the library. */
static const char PAYLOAD_SHA256[] =
    "3554dbfe7a822daecb3c966a81870d608bc89afdab20f2ae4e7c535db8672e4f";
/* A payload and its length, as most calls take them. */
#define P(text) (text), strlen(text)

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

static void hex32(const uint8_t digest[32], char out[65]) {
    for (int i = 0; i < 32; i++) snprintf(out + 2 * i, 3, "%02x", digest[i]);
}

/* A client on a loopback port nothing listens on, that never retries: its calls fail fast. */
static noxy_client *unreachable_client(void) {
    char endpoint[64];
    snprintf(endpoint, sizeof endpoint, "127.0.0.1:%s", env_or("NOXY_TEST_CLOSED_PORT", "1"));
    noxy_config *config = noxy_config_new();
    noxy_error *err = noxy_config_set_endpoint(config, endpoint);
    if (err == NULL) err = noxy_config_set_app_token(config, token());
    if (err == NULL) err = noxy_config_set_connect_timeout_ms(config, 2000);
    if (err == NULL) err = noxy_config_set_max_attempts(config, 1);
    noxy_client *client = NULL;
    if (err == NULL) err = noxy_client_new(config, &client);
    noxy_config_free(config);
    if (err != NULL) {
        fprintf(stderr, "    unreachable client: %s\n", noxy_error_message(err));
        noxy_error_free(err);
        return NULL;
    }
    return client;
}

/* ---- tests without a relay ---- */

static void test_version(void) {
    CHECK(strcmp(noxy_version(), NOXY_VERSION_STRING) == 0);
    CHECK(strcmp(noxy_outcome_name(NOXY_OUTCOME_APPROVED), "APPROVED") == 0);
    CHECK(strcmp(noxy_outcome_name(NOXY_OUTCOME_INVALID), "INVALID") == 0);
    CHECK(strcmp(noxy_outcome_name(99), "UNKNOWN") == 0);
    CHECK(strcmp(noxy_delivery_status_name(NOXY_DELIVERY_QUEUED), "QUEUED") == 0);
    CHECK(strcmp(noxy_delivery_status_name(NOXY_DELIVERY_INVALID), "INVALID") == 0);
    CHECK(strcmp(noxy_delivery_status_name(7), "UNKNOWN") == 0);
    char built[64];
    snprintf(built, sizeof built, "%d.%d.%d", NOXY_VERSION_MAJOR, NOXY_VERSION_MINOR,
             NOXY_VERSION_PATCH);
    CHECK(strcmp(built, NOXY_VERSION_STRING) == 0);
}

static void test_error_codes(void) {
    /* Every enum of the ABI is 32 bits wide, as bindings declare it. */
    CHECK(sizeof(noxy_code) == 4 && sizeof(noxy_outcome) == 4);
    CHECK(sizeof(noxy_delivery_state) == 4 && sizeof(noxy_quota_state) == 4);
    CHECK(sizeof(noxy_log_level) == 4);
    CHECK(NOXY_OK == 0);
    CHECK(NOXY_ERROR_INVALID_ARGUMENT == 1 && NOXY_ERROR_INVALID_PAYLOAD == 2);
    CHECK(NOXY_ERROR_UNAVAILABLE == 3 && NOXY_ERROR_UNAUTHENTICATED == 5);
    CHECK(NOXY_ERROR_CANCELLED == 10 && NOXY_ERROR_NO_DECISION_ID == 11);
    CHECK(NOXY_ERROR_INTERNAL == 13);
    CHECK(strcmp(noxy_error_code_name(NOXY_OK), "ok") == 0);
    CHECK(strcmp(noxy_error_code_name(NOXY_ERROR_WAIT_TIMED_OUT), "wait_timed_out") == 0);
    CHECK(strcmp(noxy_error_code_name(9999), "unknown") == 0);
    CHECK(strcmp(noxy_error_code_name(-1), "unknown") == 0);
    CHECK(noxy_error_code(NULL) == NOXY_OK);
    CHECK(strcmp(noxy_error_message(NULL), "") == 0);
    CHECK(noxy_error_delivery_count(NULL) == 0);
    CHECK(noxy_error_delivery(NULL, 0) == NULL);
    CHECK(NOXY_OUTCOME_PENDING == 0 && NOXY_OUTCOME_APPROVED == 1);
    CHECK(NOXY_OUTCOME_REJECTED == 2 && NOXY_OUTCOME_EXPIRED == 3);
    CHECK(NOXY_DELIVERY_DELIVERED == 0 && NOXY_DELIVERY_ERROR == 4);
    CHECK(NOXY_OUTCOME_INVALID == -1 && NOXY_DELIVERY_INVALID == -1 && NOXY_QUOTA_INVALID == -1);
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
}

/* Accessors given NULL answer an explicit invalid value, never a plausible one. */
static void test_accessors_on_null_are_invalid(void) {
    CHECK(noxy_decision_result_outcome(NULL) == NOXY_OUTCOME_INVALID);
    CHECK(noxy_decision_result_is_pending(NULL) == -1);
    CHECK(noxy_decision_result_decision_id(NULL) == NULL);
    CHECK(noxy_decision_result_delivery_count(NULL) == 0);
    CHECK(noxy_decision_result_delivery(NULL, 0) == NULL);
    CHECK(noxy_send_result_decision_id(NULL) == NULL);
    CHECK(noxy_send_result_accepted_decision_id(NULL) == NULL);
    CHECK(noxy_send_result_delivery(NULL, 0) == NULL);
    CHECK(noxy_delivery_device_id(NULL) == NULL);
    CHECK(noxy_delivery_status(NULL) == NOXY_DELIVERY_INVALID);
    CHECK(noxy_delivery_error_code(NULL) == NOXY_ERROR_INVALID_ARGUMENT);
    CHECK(noxy_quota_app_name(NULL) == NULL);
    CHECK(noxy_quota_status(NULL) == NOXY_QUOTA_INVALID);
    CHECK(noxy_quota_total(NULL) == UINT64_MAX && noxy_quota_remaining(NULL) == UINT64_MAX);
    CHECK(noxy_devices_count(NULL) == 0);
    CHECK(noxy_devices_device_id(NULL, 0) == NULL);
    uint8_t digest[32];
    CHECK(noxy_send_result_plaintext_sha256(NULL, digest) == -1);
    CHECK(noxy_decision_result_plaintext_sha256(NULL, digest) == -1);
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
    CHECK_ERR(noxy_send_and_wait(NULL, ALICE, P(PAYLOAD), NULL, NULL, &result),
              NOXY_ERROR_INVALID_ARGUMENT, "client");
    CHECK_ERR(noxy_send_and_wait(client, NULL, P(PAYLOAD), NULL, NULL, &result),
              NOXY_ERROR_INVALID_ARGUMENT, "identity_id");
    CHECK_ERR(noxy_send_and_wait(client, ALICE, NULL, 10, NULL, NULL, &result),
              NOXY_ERROR_INVALID_ARGUMENT, "payload_json");
    CHECK_ERR(noxy_send_and_wait(client, ALICE, P(PAYLOAD), NULL, NULL, NULL),
              NOXY_ERROR_INVALID_ARGUMENT, "out_result");
    CHECK(result == (noxy_decision_result *)(uintptr_t)0x1);
    CHECK_ERR(noxy_send_decision(client, ALICE, P(PAYLOAD), NULL, NULL), NOXY_ERROR_INVALID_ARGUMENT,
              "out_result");
    CHECK_ERR(noxy_send_decision(client, NULL, P(PAYLOAD), NULL, &sent),
              NOXY_ERROR_INVALID_ARGUMENT, "identity_id");
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
    CHECK_ERR(noxy_send_and_wait_async(client, ALICE, P(PAYLOAD), NULL, NULL, NULL, NULL, NULL),
              NOXY_ERROR_INVALID_ARGUMENT, "callback");
    CHECK_ERR(noxy_send_and_wait_async(NULL, ALICE, P(PAYLOAD), NULL, NULL, dummy_callback, NULL,
                                       NULL),
              NOXY_ERROR_INVALID_ARGUMENT, "client");
    CHECK_ERR(noxy_wait_for_outcome_async(client, NULL, ALICE, NULL, dummy_callback, NULL, NULL),
              NOXY_ERROR_INVALID_ARGUMENT, "decision_id");
    CHECK_ERR(noxy_get_quota_async(client, NULL, NULL, NULL), NOXY_ERROR_INVALID_ARGUMENT,
              "callback");
    CHECK_ERR(noxy_operation_cancel(NULL), NOXY_ERROR_INVALID_ARGUMENT, "operation");
    CHECK_ERR(noxy_client_close(NULL), NOXY_ERROR_INVALID_ARGUMENT, "client");
    CHECK_ERR(noxy_client_drain(NULL, 0), NOXY_ERROR_INVALID_ARGUMENT, "client");
    CHECK(sent == NULL && quota == NULL && devices == NULL);
    noxy_free(client);
}

static void test_invalid_utf8_and_json(void) {
    noxy_client *client = relay_client();
    CHECK(client != NULL);
    noxy_decision_result *result = NULL;
    const char bad_utf8[] = {'a', (char)0xff, 'b', 0};
    const char bad_utf8_payload[] = {'{', '"', 'a', '"', ':', '"', (char)0xc3, '"', '}', 0};
    CHECK_ERR(noxy_send_and_wait(client, bad_utf8, P(PAYLOAD), NULL, NULL, &result),
              NOXY_ERROR_INVALID_ARGUMENT, "identity_id: is not valid UTF-8");
    CHECK_ERR(noxy_send_and_wait(client, ALICE, P(bad_utf8_payload), NULL, NULL, &result),
              NOXY_ERROR_INVALID_PAYLOAD, "UTF-8");
    CHECK_ERR(noxy_send_and_wait(client, ALICE, P("not json"), NULL, NULL, &result),
              NOXY_ERROR_INVALID_PAYLOAD, "JSON");
    CHECK_ERR(noxy_send_and_wait(client, ALICE, P("[1,2]"), NULL, NULL, &result),
              NOXY_ERROR_INVALID_PAYLOAD, "object");
    CHECK_ERR(noxy_send_and_wait(client, ALICE, NULL, 0, NULL, NULL, &result),
              NOXY_ERROR_INVALID_PAYLOAD, NULL);
    CHECK_ERR(noxy_send_and_wait_async(client, ALICE, P("42"), NULL, NULL, dummy_callback, NULL,
                                       NULL),
              NOXY_ERROR_INVALID_PAYLOAD, NULL);
    CHECK_ERR(noxy_get_decision_outcome(client, bad_utf8, ALICE, &result),
              NOXY_ERROR_INVALID_ARGUMENT, "decision_id");
    CHECK_ERR(noxy_send_and_wait(client, "", P(PAYLOAD), NULL, NULL, &result),
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

/* The payload is a byte buffer: a NUL inside it is refused, not silently cut short; duplicate
 * keys are refused at any depth (a host parser and the person's device could each take a
 * different value). */
static void test_payload_bytes_and_duplicate_keys(void) {
    noxy_client *client = relay_client();
    CHECK(client != NULL);
    noxy_send_result *sent = NULL;
    const char with_nul[] = "{\"a\":1}\0{\"b\":2}";
    CHECK_ERR(noxy_send_decision(client, ALICE, with_nul, sizeof with_nul - 1, NULL, &sent),
              NOXY_ERROR_INVALID_PAYLOAD, "JSON");
    CHECK_ERR(noxy_send_decision(client, ALICE,
                                 P("{\"to\":\"0xabc\",\"amount\":\"1\",\"amount\":\"1000\"}"), NULL,
                                 &sent),
              NOXY_ERROR_INVALID_PAYLOAD, "duplicate key");
    CHECK_ERR(noxy_send_decision(client, ALICE, P("{\"a\":{\"b\":[{\"c\":1,\"c\":2}]}}"), NULL,
                                 &sent),
              NOXY_ERROR_INVALID_PAYLOAD, "duplicate key");
    CHECK(sent == NULL);
    /* The bytes before the NUL alone are a fine payload. */
    CHECK_OK(noxy_send_decision(client, CAROL, with_nul, strlen(with_nul), NULL, &sent));
    noxy_send_result_free(sent);
    noxy_free(client);
}

/* The digest is of the exact bytes passed: the host can compute it itself. */
static void test_digest_is_of_the_bytes_given(void) {
    noxy_client *client = relay_client();
    CHECK(client != NULL);
    noxy_send_result *sent = NULL;
    CHECK_OK(noxy_send_decision(client, CAROL, P(PAYLOAD), NULL, &sent));
    uint8_t digest[32];
    char hex[65];
    CHECK(noxy_send_result_plaintext_sha256(sent, digest) == 1);
    hex32(digest, hex);
    CHECK(strcmp(hex, PAYLOAD_SHA256) == 0);
    CHECK(noxy_send_result_plaintext_sha256(sent, NULL) == -1);
    noxy_send_result_free(sent);
    /* Whitespace is kept: another spelling of the same object is other bytes. */
    const char spaced[] = "{ \"title\" : \"Send 1 ETH\" }\n";
    CHECK_OK(noxy_send_decision(client, CAROL, P(spaced), NULL, &sent));
    CHECK(noxy_send_result_plaintext_sha256(sent, digest) == 1);
    hex32(digest, hex);
    CHECK(strcmp(hex, "ee0eba2c1015bc5e1ab3089b3259c429157ab5b6c1d556984d1e92809edd7fbe") == 0);
    noxy_send_result_free(sent);
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
    CHECK_OK(noxy_config_set_max_attempts(config, 0)); /* no cap: the budget alone */
    CHECK_OK(noxy_config_set_max_attempts(config, 2));
    CHECK_OK(noxy_config_set_retry_backoff(config, 10, 2.0, 100, 0.1));
    CHECK_ERR(noxy_config_set_retry_backoff(config, 100, 2.0, 10, 0.1),
              NOXY_ERROR_INVALID_ARGUMENT, "retry.max_backoff");
    CHECK_ERR(noxy_config_set_retry_backoff(config, 10, 0.5, 100, 0.1),
              NOXY_ERROR_INVALID_ARGUMENT, "retry.multiplier");
    CHECK_OK(noxy_config_set_retry_budget_ms(config, 5000));
    CHECK_ERR(noxy_config_set_connect_timeout_ms(config, 0), NOXY_ERROR_INVALID_ARGUMENT,
              "connect_timeout");
    /* UINT64_MAX ("forever" in C) is refused by name instead of overflowing a clock later. */
    CHECK_ERR(noxy_config_set_request_timeout_ms(config, UINT64_MAX), NOXY_ERROR_INVALID_ARGUMENT,
              "request_timeout");
    CHECK_ERR(noxy_config_set_retry_budget_ms(config, UINT64_MAX), NOXY_ERROR_INVALID_ARGUMENT,
              "retry.budget");
    CHECK_ERR(noxy_config_set_max_concurrent_requests(config, 0), NOXY_ERROR_INVALID_ARGUMENT,
              "max_concurrent_requests");
    CHECK_OK(noxy_config_set_max_concurrent_requests(config, 64));
    CHECK_ERR(noxy_config_set_shared_runtime(config, 2), NOXY_ERROR_INVALID_ARGUMENT, "shared");
    CHECK_OK(noxy_config_set_connect_timeout_ms(config, 1000));
    CHECK_OK(noxy_config_set_worker_threads(config, 1));
    CHECK(client == NULL);
    CHECK_OK(noxy_client_new(config, &client));
    CHECK(client != NULL);
    noxy_config_free(config); /* the client keeps its own copy */

    /* Wait options: each setter checks its value; combinations are checked by the call. */
    noxy_wait_options *wait = noxy_wait_options_new();
    CHECK_ERR(noxy_wait_options_set_multiplier(wait, 0.5), NOXY_ERROR_INVALID_ARGUMENT,
              "multiplier");
    CHECK_ERR(noxy_wait_options_set_max_wait_ms(wait, UINT64_MAX), NOXY_ERROR_INVALID_ARGUMENT,
              "max_wait");
    CHECK_ERR(noxy_wait_options_set_initial_interval_ms(wait, 0), NOXY_ERROR_INVALID_ARGUMENT,
              "initial_interval");
    CHECK_ERR(noxy_wait_options_set_jitter(wait, 2.0), NOXY_ERROR_INVALID_ARGUMENT, "jitter");
    CHECK_OK(noxy_wait_options_set_initial_interval_ms(wait, 1000));
    CHECK_OK(noxy_wait_options_set_max_interval_ms(wait, 10));
    noxy_decision_result *result = NULL;
    CHECK_ERR(noxy_send_and_wait(client, ALICE, P(PAYLOAD), NULL, wait, &result),
              NOXY_ERROR_INVALID_ARGUMENT, "max_interval");
    CHECK_ERR(noxy_wait_for_outcome_async(client, "d", ALICE, wait, dummy_callback, NULL, NULL),
              NOXY_ERROR_INVALID_ARGUMENT, "max_interval");
    noxy_wait_options_free(wait);
    noxy_send_options *send = noxy_send_options_new();
    CHECK_ERR(noxy_send_options_set_idempotency_key(send, ""), NOXY_ERROR_INVALID_ARGUMENT,
              "idempotency_key");
    noxy_send_options_free(send);
    noxy_free(client);
}

/* ---- tests against the relay ---- */

static void expect_outcome(const char *identity, noxy_outcome expected) {
    noxy_client *client = relay_client();
    CHECK(client != NULL);
    noxy_wait_options *wait = fast_wait(slow(20000));
    noxy_decision_result *result = NULL;
    noxy_error *err = noxy_send_and_wait(client, identity, P(PAYLOAD), NULL, wait, &result);
    noxy_wait_options_free(wait);
    if (err != NULL) fprintf(stderr, "    %s\n", noxy_error_message(err));
    CHECK(err == NULL);
    CHECK(noxy_decision_result_outcome(result) == expected);
    CHECK(noxy_decision_result_is_pending(result) == 0);
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
    uint8_t digest[32];
    char hex[65];
    CHECK(noxy_decision_result_plaintext_sha256(result, digest) == 1);
    hex32(digest, hex);
    CHECK(strcmp(hex, PAYLOAD_SHA256) == 0);
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
    noxy_error *err = noxy_send_and_wait(client, CAROL, P(PAYLOAD), send, wait, &result);
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
    noxy_error *err = noxy_send_and_wait(client, NOBODY, P(PAYLOAD), NULL, NULL, &result);
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
    CHECK_ERR(noxy_send_and_wait(client, ALICE, P(PAYLOAD), NULL, NULL, &result),
              NOXY_ERROR_UNAUTHENTICATED, NULL);
    noxy_quota *quota = NULL;
    CHECK_ERR(noxy_get_quota(client, &quota), NOXY_ERROR_UNAUTHENTICATED, NULL);
    CHECK(result == NULL && quota == NULL);
    noxy_free(client);
}

static void test_unreachable(void) {
    noxy_client *client = unreachable_client();
    CHECK(client != NULL);
    noxy_decision_result *result = NULL;
    CHECK_ERR(noxy_send_and_wait(client, ALICE, P(PAYLOAD), NULL, NULL, &result),
              NOXY_ERROR_UNAVAILABLE, NULL);
    CHECK(result == NULL);
    noxy_free(client);
}

static void test_send_get_wait(void) {
    noxy_client *client = relay_client();
    CHECK(client != NULL);
    noxy_send_result *sent = NULL;
    CHECK_OK(noxy_send_decision(client, ALICE, P(PAYLOAD), NULL, &sent));
    const char *accepted = noxy_send_result_accepted_decision_id(sent);
    CHECK(accepted != NULL);
    CHECK(strcmp(accepted, noxy_send_result_decision_id(sent)) == 0);
    CHECK(noxy_send_result_delivery_count(sent) == 1);
    uint8_t digest[32];
    CHECK(noxy_send_result_plaintext_sha256(sent, digest) == 1);

    noxy_decision_result *once = NULL;
    CHECK_OK(noxy_get_decision_outcome(client, accepted, ALICE, &once));
    noxy_outcome first = noxy_decision_result_outcome(once);
    CHECK(first == NOXY_OUTCOME_PENDING || first == NOXY_OUTCOME_APPROVED);
    CHECK(strcmp(noxy_decision_result_decision_id(once), accepted) == 0);
    uint8_t unused[32];
    CHECK(noxy_decision_result_plaintext_sha256(once, unused) == 0); /* nothing was sent */
    noxy_decision_result_free(once);

    noxy_wait_options *wait = fast_wait(slow(20000));
    noxy_decision_result *final = NULL;
    CHECK_OK(noxy_wait_for_outcome(client, accepted, ALICE, wait, &final));
    CHECK(noxy_decision_result_outcome(final) == NOXY_OUTCOME_APPROVED);
    noxy_decision_result_free(final);

    /* The same payload, sent and waited on in one call, has the same plaintext digest. */
    noxy_decision_result *both = NULL;
    CHECK_OK(noxy_send_and_wait(client, ALICE, P(PAYLOAD), NULL, wait, &both));
    uint8_t digest2[32];
    CHECK(noxy_decision_result_plaintext_sha256(both, digest2) == 1);
    CHECK(memcmp(digest, digest2, 32) == 0);
    noxy_decision_result_free(both);
    noxy_send_result_free(sent);

    /* Carol never answers: a short budget ends in WAIT_TIMED_OUT. */
    noxy_send_result *pending = NULL;
    CHECK_OK(noxy_send_decision(client, CAROL, P(PAYLOAD), NULL, &pending));
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

/* The same key with the same content is the same decision; with other content, another one
 * (the review's reproduction: "Send 1 ETH" approved must not approve "Send 1000 ETH"). */
static void test_idempotency_key(void) {
    noxy_client *client = relay_client();
    CHECK(client != NULL);
    noxy_send_options *send = noxy_send_options_new();
    char key[64];
    snprintf(key, sizeof key, "c-test-%ld-%ld", (long)getpid(), (long)time(NULL));
    CHECK_OK(noxy_send_options_set_idempotency_key(send, key));
    noxy_send_result *a = NULL, *b = NULL;
    CHECK_OK(noxy_send_decision(client, CAROL, P(PAYLOAD), send, &a));
    CHECK_OK(noxy_send_decision(client, CAROL, P(PAYLOAD), send, &b));
    CHECK(strcmp(noxy_send_result_decision_id(a), noxy_send_result_decision_id(b)) == 0);
    CHECK(strcmp(noxy_delivery_request_id(noxy_send_result_delivery(a, 0)),
                 noxy_delivery_request_id(noxy_send_result_delivery(b, 0))) == 0);
    noxy_send_result_free(b);

    noxy_wait_options *wait = fast_wait(slow(20000));
    noxy_decision_result *small = NULL, *large = NULL;
    CHECK_OK(noxy_send_and_wait(client, ALICE, P("{\"title\":\"Send 1 ETH\"}"), send, wait, &small));
    CHECK(noxy_decision_result_outcome(small) == NOXY_OUTCOME_APPROVED);
    CHECK_OK(
        noxy_send_and_wait(client, ALICE, P("{\"title\":\"Send 1000 ETH\"}"), send, wait, &large));
    CHECK(strcmp(noxy_decision_result_decision_id(small), noxy_decision_result_decision_id(large)) !=
          0);
    uint8_t d_small[32], d_large[32];
    CHECK(noxy_decision_result_plaintext_sha256(small, d_small) == 1);
    CHECK(noxy_decision_result_plaintext_sha256(large, d_large) == 1);
    CHECK(memcmp(d_small, d_large, 32) != 0);
    /* A longer TTL changes what the person is asked too: another decision. */
    CHECK_OK(noxy_send_options_set_ttl_seconds(send, 601));
    CHECK_OK(noxy_send_decision(client, CAROL, P(PAYLOAD), send, &b));
    CHECK(strcmp(noxy_send_result_decision_id(a), noxy_send_result_decision_id(b)) != 0);
    noxy_send_result_free(b);
    noxy_decision_result_free(small);
    noxy_decision_result_free(large);
    noxy_wait_options_free(wait);
    noxy_send_result_free(a);
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
    /* for test_free_from_callback: the callback frees this client */
    noxy_client *free_this;
} op_state;

static void record_callback(void *user_data, noxy_error *error, noxy_decision_result *result) {
    op_state *state = (op_state *)user_data;
    state->calls++;
    state->code = noxy_error_code(error);
    state->outcome = noxy_decision_result_outcome(result);
    pthread_getname_np(pthread_self(), state->thread_name, sizeof state->thread_name);
    if (state->free_this != NULL) noxy_free(state->free_this);
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
        CHECK_OK(noxy_send_and_wait_async(client, who, P(PAYLOAD), NULL, wait, record_callback,
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
    /* Every callback was counted above; drain also waits for them to have returned. */
    CHECK_OK(noxy_client_drain(client, (uint64_t)slow(10000)));
    noxy_free(client);
    counter_destroy(&done);
}

static void test_wait_async(void) {
    noxy_client *client = relay_client();
    CHECK(client != NULL);
    noxy_send_result *sent = NULL;
    CHECK_OK(noxy_send_decision(client, BOB, P(PAYLOAD), NULL, &sent));
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

/* One result slot per kind of call, filled by its callback. */
typedef struct {
    counter_t done;
    noxy_code send_code, outcome_code, quota_code, devices_code;
    noxy_send_result *sent;
    noxy_outcome outcome;
    char app_name[32];
    size_t device_count;
} every_call;

static void on_sent(void *user_data, noxy_error *error, noxy_send_result *result) {
    every_call *calls = (every_call *)user_data;
    calls->send_code = noxy_error_code(error);
    calls->sent = result; /* kept: the test reads it */
    noxy_error_free(error);
    counter_add(&calls->done, 1);
}

static void on_outcome(void *user_data, noxy_error *error, noxy_decision_result *result) {
    every_call *calls = (every_call *)user_data;
    calls->outcome_code = noxy_error_code(error);
    calls->outcome = noxy_decision_result_outcome(result);
    noxy_error_free(error);
    noxy_decision_result_free(result);
    counter_add(&calls->done, 1);
}

static void on_quota(void *user_data, noxy_error *error, noxy_quota *result) {
    every_call *calls = (every_call *)user_data;
    calls->quota_code = noxy_error_code(error);
    if (result != NULL) snprintf(calls->app_name, sizeof calls->app_name, "%s", noxy_quota_app_name(result));
    noxy_error_free(error);
    noxy_quota_free(result);
    counter_add(&calls->done, 1);
}

static void on_devices(void *user_data, noxy_error *error, noxy_devices *result) {
    every_call *calls = (every_call *)user_data;
    calls->devices_code = noxy_error_code(error);
    calls->device_count = noxy_devices_count(result);
    noxy_error_free(error);
    noxy_devices_free(result);
    counter_add(&calls->done, 1);
}

static void test_every_call_has_an_async_form(void) {
    noxy_client *client = relay_client();
    CHECK(client != NULL);
    every_call calls;
    memset(&calls, 0, sizeof calls);
    counter_init(&calls.done);
    CHECK_OK(noxy_send_decision_async(client, ALICE, P(PAYLOAD), NULL, on_sent, &calls, NULL));
    CHECK_OK(noxy_get_quota_async(client, on_quota, &calls, NULL));
    CHECK_OK(noxy_get_identity_devices_async(client, ALICE, on_devices, &calls, NULL));
    CHECK(counter_wait(&calls.done, 3, slow(20000)) == 3);
    CHECK(calls.send_code == NOXY_OK && calls.sent != NULL);
    CHECK(calls.quota_code == NOXY_OK && strcmp(calls.app_name, "tests") == 0);
    CHECK(calls.devices_code == NOXY_OK && calls.device_count == 1);
    CHECK(noxy_send_result_accepted_decision_id(calls.sent) != NULL);
    CHECK_OK(noxy_get_decision_outcome_async(client, noxy_send_result_accepted_decision_id(calls.sent),
                                             ALICE, on_outcome, &calls, NULL));
    CHECK(counter_wait(&calls.done, 4, slow(20000)) == 4);
    CHECK(calls.outcome_code == NOXY_OK);
    CHECK(calls.outcome == NOXY_OUTCOME_PENDING || calls.outcome == NOXY_OUTCOME_APPROVED);
    noxy_send_result_free(calls.sent);
    noxy_free(client);
    counter_destroy(&calls.done);
}

/* Async calls check their arguments exactly as the blocking ones do, before starting: a bad
 * argument fails the call, and its callback is never called. */
static void test_async_checks_arguments_before_starting(void) {
    noxy_client *client = relay_client();
    CHECK(client != NULL);
    counter_t done;
    counter_init(&done);
    op_state state;
    memset(&state, 0, sizeof state);
    state.done = &done;
    noxy_operation *op = NULL;
    CHECK_ERR(noxy_send_and_wait_async(client, "", P(PAYLOAD), NULL, NULL, record_callback, &state,
                                       &op),
              NOXY_ERROR_INVALID_ARGUMENT, "identity_id");
    CHECK_ERR(noxy_send_decision_async(client, "", P(PAYLOAD), NULL, on_sent, &state, &op),
              NOXY_ERROR_INVALID_ARGUMENT, "identity_id");
    CHECK_ERR(noxy_wait_for_outcome_async(client, "", ALICE, NULL, record_callback, &state, &op),
              NOXY_ERROR_INVALID_ARGUMENT, "decision_id");
    CHECK_ERR(noxy_get_decision_outcome_async(client, "d", "", record_callback, &state, &op),
              NOXY_ERROR_INVALID_ARGUMENT, "identity_id");
    CHECK_ERR(noxy_get_identity_devices_async(client, "", on_devices, &state, &op),
              NOXY_ERROR_INVALID_ARGUMENT, "identity_id");
    CHECK(op == NULL); /* untouched on failure */
    CHECK(counter_wait(&done, 1, 200) == 0);
    CHECK(state.calls == 0);
    noxy_free(client);
    counter_destroy(&done);
}

/* *out_operation is written before the operation can complete: a host that keeps the handle
 * in the per-call context and frees that context in the callback never has the library write
 * into freed memory (ASan and valgrind check the frees). Calls to an unreachable relay without
 * retries complete almost at once, which is the racy case. */
typedef struct {
    noxy_operation *op;
    counter_t *done;
    counter_t *missing; /* callbacks that ran before the handle was written */
} call_context;

static void free_context_callback(void *user_data, noxy_error *error, noxy_quota *result) {
    call_context *context = (call_context *)user_data;
    if (context->op == NULL) counter_add(context->missing, 1);
    noxy_operation_free(context->op);
    counter_t *done = context->done;
    free(context);
    noxy_error_free(error);
    noxy_quota_free(result);
    counter_add(done, 1);
}

static void test_operation_handle_is_written_before_the_callback(void) {
    noxy_client *client = unreachable_client();
    CHECK(client != NULL);
    long n = env_long("NOXY_TEST_FAST_FAILS", 2000);
    counter_t done, missing;
    counter_init(&done);
    counter_init(&missing);
    long started = 0;
    for (long i = 0; i < n; i++) {
        call_context *context = calloc(1, sizeof *context);
        CHECK(context != NULL);
        context->done = &done;
        context->missing = &missing;
        noxy_error *err =
            noxy_get_quota_async(client, free_context_callback, context, &context->op);
        if (err != NULL) {
            fprintf(stderr, "    start: %s\n", noxy_error_message(err));
            noxy_error_free(err);
            free(context);
            break;
        }
        started++;
    }
    CHECK(started == n);
    CHECK(counter_wait(&done, (int)n, slow(60000)) == n);
    CHECK(counter_get(&missing) == 0);
    noxy_free(client);
    counter_destroy(&done);
    counter_destroy(&missing);
}

/* A completion callback must never block the completion thread: blocking calls and drain are
 * refused there with a clear error; async calls work. */
typedef struct {
    counter_t done;
    noxy_client *client;
    noxy_code blocking_code, drain_code, async_code;
    char blocking_message[160];
} reentry_state;

static void reentry_devices(void *user_data, noxy_error *error, noxy_devices *result) {
    reentry_state *state = (reentry_state *)user_data;
    if (error == NULL && noxy_devices_count(result) == 1) counter_add(&state->done, 1);
    noxy_error_free(error);
    noxy_devices_free(result);
}

static void reentry_callback(void *user_data, noxy_error *error, noxy_quota *result) {
    reentry_state *state = (reentry_state *)user_data;
    noxy_error_free(error);
    noxy_quota_free(result);
    noxy_quota *quota = NULL;
    noxy_error *err = noxy_get_quota(state->client, &quota);
    state->blocking_code = noxy_error_code(err);
    snprintf(state->blocking_message, sizeof state->blocking_message, "%s", noxy_error_message(err));
    noxy_error_free(err);
    noxy_quota_free(quota);
    err = noxy_client_drain(state->client, 1000);
    state->drain_code = noxy_error_code(err);
    noxy_error_free(err);
    err = noxy_get_identity_devices_async(state->client, ALICE, reentry_devices, state, NULL);
    state->async_code = noxy_error_code(err);
    noxy_error_free(err);
    counter_add(&state->done, 1);
}

static void test_blocking_calls_are_refused_in_callbacks(void) {
    reentry_state state;
    memset(&state, 0, sizeof state);
    counter_init(&state.done);
    state.client = relay_client();
    CHECK(state.client != NULL);
    CHECK_OK(noxy_get_quota_async(state.client, reentry_callback, &state, NULL));
    /* the callback, then the devices call it started */
    CHECK(counter_wait(&state.done, 2, slow(20000)) == 2);
    CHECK(state.blocking_code == NOXY_ERROR_INVALID_ARGUMENT);
    CHECK(strstr(state.blocking_message, "completion thread") != NULL);
    CHECK(state.drain_code == NOXY_ERROR_INVALID_ARGUMENT);
    CHECK(state.async_code == NOXY_OK);
    noxy_free(state.client);
    counter_destroy(&state.done);
}

#define FREE_OPS 10

/* noxy_free returns at once; every operation in flight still calls back exactly once,
 * CANCELLED, and its handle stays usable. */
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
        CHECK_OK(noxy_send_and_wait_async(client, CAROL, P(PAYLOAD), NULL, NULL, record_callback,
                                          &states[i], &ops[i]));
    }
    noxy_free(client);
    CHECK(counter_wait(&done, FREE_OPS, slow(20000)) == FREE_OPS);
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
        CHECK_OK(noxy_send_and_wait_async(client, CAROL, P(PAYLOAD), NULL, NULL, record_callback,
                                          &states[i], NULL));
    }
    noxy_wait_options *wait = fast_wait(slow(20000));
    states[5].done = &done;
    states[5].free_this = client; /* alice's callback frees the client */
    CHECK_OK(noxy_send_and_wait_async(client, ALICE, P(PAYLOAD), NULL, wait, record_callback,
                                      &states[5], NULL));
    noxy_wait_options_free(wait);
    CHECK(counter_wait(&done, 6, slow(20000)) == 6);
    CHECK(states[5].code == NOXY_OK && states[5].outcome == NOXY_OUTCOME_APPROVED);
    for (int i = 0; i < 5; i++) CHECK(states[i].calls == 1 && states[i].code == NOXY_ERROR_CANCELLED);
    counter_destroy(&done);
}

static void test_client_close_and_drain(void) {
    noxy_client *client = relay_client();
    CHECK(client != NULL);
    counter_t done;
    counter_init(&done);
    op_state state;
    memset(&state, 0, sizeof state);
    state.done = &done;
    CHECK_OK(noxy_send_and_wait_async(client, CAROL, P(PAYLOAD), NULL, NULL, record_callback,
                                      &state, NULL));
    CHECK_ERR(noxy_client_drain(client, 0), NOXY_ERROR_DEADLINE_EXCEEDED, "1 operation");
    CHECK_OK(noxy_client_close(client));
    CHECK_OK(noxy_client_drain(client, (uint64_t)slow(10000)));
    /* After a successful drain every callback has returned. */
    CHECK(counter_get(&done) == 1);
    CHECK(state.calls == 1 && state.code == NOXY_ERROR_CANCELLED);
    noxy_quota *quota = NULL;
    CHECK_ERR(noxy_get_quota(client, &quota), NOXY_ERROR_CANCELLED, NULL);
    /* A closed client starts no new operation: the call fails, the callback is never called. */
    CHECK_ERR(noxy_send_and_wait_async(client, ALICE, P(PAYLOAD), NULL, NULL, record_callback,
                                       &state, NULL),
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
} retry_state;

/* A host that retries when an operation fails: callbacks that run after noxy_free may still
 * pass the client to the library, which answers CANCELLED. */
static void retry_callback(void *user_data, noxy_error *error, noxy_decision_result *result) {
    retry_state *state = (retry_state *)user_data;
    state->calls++;
    state->code = noxy_error_code(error);
    noxy_error_free(error);
    noxy_decision_result_free(result);
    if (state->free_it) {
        noxy_free(state->client);
    } else {
        noxy_error *err = noxy_send_and_wait_async(state->client, ALICE, P(PAYLOAD), NULL, NULL,
                                                   dummy_callback, NULL, NULL);
        state->retry_async = noxy_error_code(err);
        noxy_error_free(err);
    }
    counter_add(state->done, 1);
}

#define RETRY_OPS 4

static int retried_cancelled(const retry_state *state) {
    return state->calls == 1 && state->code == NOXY_ERROR_CANCELLED &&
           state->retry_async == NOXY_ERROR_CANCELLED;
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
        CHECK_OK(noxy_send_and_wait_async(client, CAROL, P(PAYLOAD), NULL, NULL, retry_callback,
                                          &states[i], NULL));
    }
    noxy_free(client);
    CHECK(counter_wait(&done, RETRY_OPS, slow(20000)) == RETRY_OPS);
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
        CHECK_OK(noxy_send_and_wait_async(client, CAROL, P(PAYLOAD), NULL, NULL, retry_callback,
                                          &states[i], NULL));
    }
    noxy_wait_options *wait = fast_wait(slow(20000));
    states[RETRY_OPS] = (retry_state){.done = &done, .client = client, .free_it = 1};
    CHECK_OK(noxy_send_and_wait_async(client, ALICE, P(PAYLOAD), NULL, wait, retry_callback,
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
    counter_t drained; /* noxy_client_drain returned */
    counter_t later;   /* the callback queued behind the slow one ran */
    noxy_client *client;
    noxy_code drain_code;
    int calls;
    noxy_code later_code;
} slow_state;

static void slow_callback(void *user_data, noxy_error *error, noxy_decision_result *result) {
    slow_state *state = (slow_state *)user_data;
    noxy_error_free(error);
    noxy_decision_result_free(result);
    counter_add(&state->entered, 1);
    counter_wait(&state->release, 1, slow(20000));
}

static void later_callback(void *user_data, noxy_error *error, noxy_decision_result *result) {
    slow_state *state = (slow_state *)user_data;
    state->calls++;
    state->later_code = noxy_error_code(error);
    noxy_error_free(error);
    noxy_decision_result_free(result);
    counter_add(&state->later, 1);
}

static void *drain_on_thread(void *arg) {
    slow_state *state = (slow_state *)arg;
    noxy_error *err = noxy_client_drain(state->client, (uint64_t)slow(20000));
    state->drain_code = noxy_error_code(err);
    noxy_error_free(err);
    counter_add(&state->drained, 1);
    return NULL;
}

static void *free_on_thread(void *arg) {
    slow_state *state = (slow_state *)arg;
    noxy_free(state->client);
    counter_add(&state->freed, 1);
    return NULL;
}

/* drain waits for a running callback; free never does. */
static void test_drain_waits_and_free_does_not(void) {
    slow_state state;
    memset(&state, 0, sizeof state);
    counter_init(&state.entered);
    counter_init(&state.release);
    counter_init(&state.freed);
    counter_init(&state.drained);
    counter_init(&state.later);
    state.client = relay_client();
    CHECK(state.client != NULL);
    noxy_wait_options *wait = fast_wait(slow(20000));
    CHECK_OK(noxy_send_and_wait_async(state.client, ALICE, P(PAYLOAD), NULL, wait, slow_callback,
                                      &state, NULL));
    noxy_wait_options_free(wait);
    CHECK_OK(noxy_send_and_wait_async(state.client, CAROL, P(PAYLOAD), NULL, NULL, later_callback,
                                      &state, NULL));
    CHECK(counter_wait(&state.entered, 1, slow(20000)) == 1);
    CHECK_OK(noxy_client_close(state.client)); /* carol's ends; its callback waits its turn */
    pthread_t drainer, freer;
    CHECK(pthread_create(&drainer, NULL, drain_on_thread, &state) == 0);
    /* While the slow callback runs, drain must not return (a bounded wait that expects the
     * condition not to happen)... */
    int early_drain = counter_wait(&state.drained, 1, 300);
    counter_add(&state.release, 1);
    CHECK(counter_wait(&state.drained, 1, slow(20000)) == 1);
    pthread_join(drainer, NULL);
    CHECK(early_drain == 0);
    CHECK(state.drain_code == NOXY_OK);
    CHECK(state.calls == 1 && state.later_code == NOXY_ERROR_CANCELLED);
    noxy_free(state.client);

    /* ... while free returns at once, even with a callback running. */
    counter_destroy(&state.release);
    counter_init(&state.release);
    counter_destroy(&state.entered);
    counter_init(&state.entered);
    state.client = relay_client();
    CHECK(state.client != NULL);
    wait = fast_wait(slow(20000));
    CHECK_OK(noxy_send_and_wait_async(state.client, ALICE, P(PAYLOAD), NULL, wait, slow_callback,
                                      &state, NULL));
    noxy_wait_options_free(wait);
    CHECK_OK(noxy_send_and_wait_async(state.client, CAROL, P(PAYLOAD), NULL, NULL, later_callback,
                                      &state, NULL));
    CHECK(counter_wait(&state.entered, 1, slow(20000)) == 1);
    CHECK(pthread_create(&freer, NULL, free_on_thread, &state) == 0);
    int freed_while_running = counter_wait(&state.freed, 1, slow(10000));
    counter_add(&state.release, 1);
    pthread_join(freer, NULL);
    CHECK(freed_while_running == 1);
    /* The callback queued behind the slow one still runs, once, after noxy_free returned. */
    CHECK(counter_wait(&state.later, 2, slow(20000)) == 2);
    CHECK(state.calls == 2 && state.later_code == NOXY_ERROR_CANCELLED);
    counter_destroy(&state.entered);
    counter_destroy(&state.release);
    counter_destroy(&state.freed);
    counter_destroy(&state.drained);
    counter_destroy(&state.later);
}

/* The review's case: a log callback holds the client's only runtime worker. noxy_free must not
 * block on it, and the operation in flight must still call back exactly once when the worker
 * is free again; the log callback's user data is released after its last call. */
typedef struct {
    pthread_mutex_t mutex;
    int armed;
    counter_t entered, release, freed, log_released;
    noxy_client *client;
} stuck_worker;

static void stuck_log_callback(noxy_log_level level, const char *message, void *user_data) {
    (void)level;
    (void)message;
    stuck_worker *stuck = (stuck_worker *)user_data;
    char name[32] = {0};
    pthread_getname_np(pthread_self(), name, sizeof name);
    pthread_mutex_lock(&stuck->mutex);
    int block = stuck->armed && strncmp(name, "noxy-worker", 11) == 0;
    if (block) stuck->armed = 0;
    pthread_mutex_unlock(&stuck->mutex);
    if (!block) return;
    counter_add(&stuck->entered, 1);
    counter_wait(&stuck->release, 1, slow(20000));
}

static void stuck_log_release(void *user_data) {
    stuck_worker *stuck = (stuck_worker *)user_data;
    counter_add(&stuck->log_released, 1);
}

static void *free_stuck_client(void *arg) {
    stuck_worker *stuck = (stuck_worker *)arg;
    noxy_free(stuck->client);
    counter_add(&stuck->freed, 1);
    return NULL;
}

static void test_free_never_blocks_on_a_stuck_worker(void) {
    stuck_worker stuck;
    memset(&stuck, 0, sizeof stuck);
    pthread_mutex_init(&stuck.mutex, NULL);
    counter_init(&stuck.entered);
    counter_init(&stuck.release);
    counter_init(&stuck.freed);
    counter_init(&stuck.log_released);
    noxy_config *config = relay_config(token());
    CHECK(config != NULL);
    CHECK_OK(noxy_config_set_worker_threads(config, 1));
    CHECK_OK(noxy_config_set_log_callback(config, stuck_log_callback, &stuck, stuck_log_release,
                                          NOXY_LOG_TRACE));
    CHECK_OK(noxy_client_new(config, &stuck.client));
    noxy_config_free(config);
    counter_t done;
    counter_init(&done);
    op_state state;
    memset(&state, 0, sizeof state);
    state.done = &done;
    pthread_mutex_lock(&stuck.mutex);
    stuck.armed = 1;
    pthread_mutex_unlock(&stuck.mutex);
    CHECK_OK(noxy_send_and_wait_async(stuck.client, CAROL, P(PAYLOAD), NULL, NULL, record_callback,
                                      &state, NULL));
    CHECK(counter_wait(&stuck.entered, 1, slow(20000)) == 1); /* the only worker is stuck */
    pthread_t freer;
    CHECK(pthread_create(&freer, NULL, free_stuck_client, &stuck) == 0);
    int freed_while_stuck = counter_wait(&stuck.freed, 1, slow(10000));
    CHECK(counter_get(&stuck.log_released) == 0); /* a delivery is still running */
    counter_add(&stuck.release, 1);
    pthread_join(freer, NULL);
    CHECK(freed_while_stuck == 1);
    CHECK(counter_wait(&done, 1, slow(20000)) == 1);
    CHECK(state.calls == 1 && state.code == NOXY_ERROR_CANCELLED);
    CHECK(counter_wait(&stuck.log_released, 1, slow(20000)) == 1);
    CHECK(counter_wait(&done, 2, 200) == 1); /* exactly once */
    counter_destroy(&done);
    counter_destroy(&stuck.entered);
    counter_destroy(&stuck.release);
    counter_destroy(&stuck.freed);
    counter_destroy(&stuck.log_released);
    pthread_mutex_destroy(&stuck.mutex);
}

/* ---- connection loss ---- */

/* A relay that drops connections under traffic (abrupt closes and GOAWAYs, before and after it
 * acted) is an ordinary failure: the host keeps its default SIGPIPE disposition and survives
 * (a write to a dropped connection must never raise the signal), and every decision completes,
 * retried on new connections under its request id. */
static void test_survives_dropped_connections(void) {
    struct sigaction current;
    CHECK(sigaction(SIGPIPE, NULL, &current) == 0);
    CHECK(current.sa_handler == SIG_DFL); /* the library did not touch it, nor did we */
    const char *endpoint = getenv("NOXY_TEST_FAULTY_ENDPOINT");
    CHECK(endpoint != NULL);
    noxy_config *config = noxy_config_new();
    CHECK_OK(noxy_config_set_endpoint(config, endpoint));
    CHECK_OK(noxy_config_set_app_token(config, token()));
    CHECK_OK(noxy_config_set_ca_pem_file(config, getenv("NOXY_TEST_FAULTY_CA_PATH")));
    CHECK_OK(noxy_config_set_request_timeout_ms(config, (uint64_t)slow(10000)));
    noxy_client *client = NULL;
    CHECK_OK(noxy_client_new(config, &client));
    noxy_config_free(config);
    long n = env_long("NOXY_TEST_FAULTY_DECISIONS", 300);
    counter_t done;
    counter_init(&done);
    op_state *states = calloc((size_t)n, sizeof *states);
    CHECK(states != NULL);
    noxy_wait_options *wait = fast_wait(slow(60000));
    for (long i = 0; i < n; i++) {
        states[i].done = &done;
        CHECK_OK(noxy_send_and_wait_async(client, ALICE, P(PAYLOAD), NULL, wait, record_callback,
                                          &states[i], NULL));
    }
    noxy_wait_options_free(wait);
    CHECK(counter_wait(&done, (int)n, slow(120000)) == n);
    long approved = 0;
    for (long i = 0; i < n; i++) {
        if (states[i].code == NOXY_OK && states[i].outcome == NOXY_OUTCOME_APPROVED) approved++;
        else if (approved == i) fprintf(stderr, "    decision %ld: %s\n", i,
                                       noxy_error_code_name(states[i].code));
    }
    fprintf(stderr, "    %ld of %ld decisions approved through dropped connections\n", approved, n);
    CHECK(approved == n);
    CHECK(sigaction(SIGPIPE, NULL, &current) == 0 && current.sa_handler == SIG_DFL);
    free(states);
    noxy_free(client);
    counter_destroy(&done);
}

/* ---- threads ---- */

/* The number of threads of this process (Linux: /proc/self/status). */
static long thread_count(void) {
    FILE *status = fopen("/proc/self/status", "r");
    if (status == NULL) return -1;
    char line[256];
    long threads = -1;
    while (fgets(line, sizeof line, status) != NULL) {
        if (strncmp(line, "Threads:", 8) == 0) threads = strtol(line + 8, NULL, 10);
    }
    fclose(status);
    return threads;
}

/* How many threads of this process the library started (named noxy-*). */
static long library_thread_count(void) {
    DIR *tasks = opendir("/proc/self/task");
    if (tasks == NULL) return -1;
    long count = 0;
    struct dirent *entry;
    while ((entry = readdir(tasks)) != NULL) {
        if (entry->d_name[0] == '.') continue;
        char path[300], name[32] = {0};
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", entry->d_name);
        FILE *comm = fopen(path, "r");
        if (comm == NULL) continue; /* it just exited */
        if (fgets(name, sizeof name, comm) != NULL && strncmp(name, "noxy-", 5) == 0) count++;
        fclose(comm);
    }
    closedir(tasks);
    return count;
}

/* Waits (a bounded poll for a condition) until the threads of earlier tests' clients, which
 * stop in the background after noxy_free, are gone. */
static int wait_for_no_library_threads(void) {
    for (long waited = 0; waited < slow(10000); waited += 10) {
        if (library_thread_count() == 0) return 1;
        struct timespec pause = {0, 10 * 1000000L};
        nanosleep(&pause, NULL);
    }
    return library_thread_count() == 0;
}

#define TENANTS 8

/* Clients on the shared runtime cost no threads of their own; each client with its own runtime
 * costs its workers and a completion thread. */
static void test_shared_runtime(void) {
    CHECK(wait_for_no_library_threads());
    long before = thread_count();
    CHECK(before > 0);
    noxy_client *shared[TENANTS] = {0};
    noxy_config *config = relay_config(token());
    CHECK(config != NULL);
    CHECK_OK(noxy_config_set_shared_runtime(config, 1));
    for (int i = 0; i < TENANTS; i++) CHECK_OK(noxy_client_new(config, &shared[i]));
    long with_shared = thread_count();
    for (int i = 0; i < TENANTS; i++) {
        noxy_quota *quota = NULL;
        CHECK_OK(noxy_get_quota(shared[i], &quota));
        noxy_quota_free(quota);
    }
    CHECK_OK(noxy_config_set_shared_runtime(config, 0));
    with_shared = thread_count(); /* after the calls: resolving the relay starts no thread */
    noxy_client *own[TENANTS] = {0};
    for (int i = 0; i < TENANTS; i++) CHECK_OK(noxy_client_new(config, &own[i]));
    long with_own = thread_count();
    noxy_config_free(config);
    for (int i = 0; i < TENANTS; i++) {
        noxy_free(shared[i]);
        noxy_free(own[i]);
    }
    fprintf(stderr, "    threads: %ld before, +%ld for %d shared clients, +%ld for %d own\n",
            before, with_shared - before, TENANTS, with_own - with_shared, TENANTS);
    /* 2 workers and 1 completion thread in all for the shared ones ... */
    CHECK(with_shared - before == NOXY_DEFAULT_WORKER_THREADS + 1);
    /* ... and as many per client for the others. */
    CHECK(with_own - with_shared == TENANTS * (NOXY_DEFAULT_WORKER_THREADS + 1));
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
        noxy_error *err =
            noxy_send_and_wait(args->client, ALICE, P(PAYLOAD), NULL, wait, &result);
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
    CHECK_OK(noxy_send_and_wait_async(client, CAROL, P(PAYLOAD), NULL, NULL, record_callback, &state,
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
        err = noxy_send_and_wait_async(client, ALICE, P(PAYLOAD), NULL, NULL, dummy_callback, NULL,
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
    long quota_events; /* events of a GetQuota call */
    long leaks;
    char secret_token[64];
    counter_t released; /* free_user_data ran */
} log_state;

static void log_callback(noxy_log_level level, const char *message, void *user_data) {
    log_state *state = (log_state *)user_data;
    pthread_mutex_lock(&state->mutex);
    state->messages++;
    if (strstr(message, "GetQuota") != NULL) state->quota_events++;
    if (level > NOXY_LOG_TRACE || strstr(message, state->secret_token) != NULL ||
        strstr(message, "Deploy to prod") != NULL) {
        if (state->leaks++ == 0) fprintf(stderr, "    leaked in log: %s\n", message);
    }
    pthread_mutex_unlock(&state->mutex);
}

static void log_release(void *user_data) { counter_add(&((log_state *)user_data)->released, 1); }

static long log_messages(log_state *state) {
    pthread_mutex_lock(&state->mutex);
    long n = state->messages;
    pthread_mutex_unlock(&state->mutex);
    return n;
}

static long log_quota_events(log_state *state) {
    pthread_mutex_lock(&state->mutex);
    long n = state->quota_events;
    pthread_mutex_unlock(&state->mutex);
    return n;
}

static void log_state_init(log_state *state) {
    memset(state, 0, sizeof *state);
    pthread_mutex_init(&state->mutex, NULL);
    counter_init(&state->released);
    snprintf(state->secret_token, sizeof state->secret_token, "%s", token());
}

static void log_state_destroy(log_state *state) {
    pthread_mutex_destroy(&state->mutex);
    counter_destroy(&state->released);
}

static void test_logging_never_shows_token_or_payload(void) {
    log_state state;
    log_state_init(&state);
    CHECK_ERR(noxy_set_log_callback(log_callback, &state, log_release, 6),
              NOXY_ERROR_INVALID_ARGUMENT, "max_level");
    CHECK(counter_get(&state.released) == 0); /* a failed call takes nothing */
    CHECK_OK(noxy_set_log_callback(log_callback, &state, log_release, NOXY_LOG_TRACE));
    noxy_client *client = relay_client();
    CHECK(client != NULL);
    noxy_wait_options *wait = fast_wait(slow(20000));
    noxy_decision_result *result = NULL;
    CHECK_OK(noxy_send_and_wait(client, ALICE, P(PAYLOAD), NULL, wait, &result));
    noxy_decision_result_free(result);
    noxy_wait_options_free(wait);
    noxy_free(client);
    CHECK_OK(noxy_set_log_callback(NULL, NULL, NULL, NOXY_LOG_OFF));
    /* Once released, the callback is never called again. */
    CHECK(counter_wait(&state.released, 1, slow(20000)) == 1);
    long after_release = log_messages(&state);
    client = relay_client();
    CHECK(client != NULL);
    noxy_free(client);
    CHECK(log_messages(&state) == after_release);
    fprintf(stderr, "    %ld log messages, %ld with a secret\n", state.messages, state.leaks);
    CHECK(state.messages > 0);
    CHECK(state.leaks == 0);
    log_state_destroy(&state);
}

/* Two components in one process: a client with its own log callback sends its events there,
 * the others to the process-wide one. */
static void test_per_client_log_callback(void) {
    log_state global, own;
    log_state_init(&global);
    log_state_init(&own);
    CHECK_OK(noxy_set_log_callback(log_callback, &global, log_release, NOXY_LOG_DEBUG));
    noxy_config *config = relay_config(token());
    CHECK(config != NULL);
    CHECK_OK(noxy_config_set_log_callback(config, log_callback, &own, log_release, NOXY_LOG_DEBUG));
    noxy_client *mine = NULL;
    CHECK_OK(noxy_client_new(config, &mine));
    noxy_config_free(config);
    noxy_client *other = relay_client();
    CHECK(other != NULL);

    /* Counted by the events of the GetQuota calls: clients freed by earlier tests may still log
     * their teardown to the process-wide callback at any moment. */
    long global_before = log_quota_events(&global), own_before = log_quota_events(&own);
    noxy_quota *quota = NULL;
    CHECK_OK(noxy_get_quota(mine, &quota));
    noxy_quota_free(quota);
    CHECK(log_quota_events(&own) > own_before);
    CHECK(log_quota_events(&global) == global_before);

    own_before = log_quota_events(&own);
    CHECK_OK(noxy_get_quota(other, &quota));
    noxy_quota_free(quota);
    CHECK(log_quota_events(&global) > global_before);
    CHECK(log_quota_events(&own) == own_before);

    noxy_free(other);
    noxy_free(mine);
    /* The client's callback data is released once the client and its config are gone. */
    CHECK(counter_wait(&own.released, 1, slow(20000)) == 1);
    CHECK_OK(noxy_set_log_callback(NULL, NULL, NULL, NOXY_LOG_OFF));
    CHECK(counter_wait(&global.released, 1, slow(20000)) == 1);
    CHECK(own.leaks == 0 && global.leaks == 0);
    log_state_destroy(&global);
    log_state_destroy(&own);
}

/* A log callback that blocks on one thread (the one that set `t_block_here`) until the test
 * releases it, while another thread replaces the callback. */
static _Thread_local int t_block_here;

typedef struct {
    pthread_mutex_t mutex;
    long calls;
    int in_flight;            /* the blocking delivery is running */
    int in_flight_at_release; /* ... when free_user_data ran */
    noxy_code reentrant_code; /* noxy_set_log_callback from inside the callback */
    counter_t entered, release, replaced, released;
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
    noxy_error *err = noxy_set_log_callback(NULL, NULL, NULL, NOXY_LOG_OFF);
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

static void gate_log_release(void *user_data) {
    gate_log *gate = (gate_log *)user_data;
    pthread_mutex_lock(&gate->mutex);
    gate->in_flight_at_release = gate->in_flight;
    pthread_mutex_unlock(&gate->mutex);
    counter_add(&gate->released, 1);
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
    noxy_error_free(noxy_set_log_callback(NULL, NULL, NULL, NOXY_LOG_OFF));
    counter_add(&gate->replaced, 1);
    return NULL;
}

/* Replacing the callback never waits for host code; the old callback's data is released only
 * after its last delivery returned, and it is never called again. */
static void test_log_callback_replaced_while_delivering(void) {
    gate_log gate;
    memset(&gate, 0, sizeof gate);
    pthread_mutex_init(&gate.mutex, NULL);
    counter_init(&gate.entered);
    counter_init(&gate.release);
    counter_init(&gate.replaced);
    counter_init(&gate.released);
    CHECK_OK(noxy_set_log_callback(gate_log_callback, &gate, gate_log_release, NOXY_LOG_DEBUG));
    pthread_t logger, replacer;
    CHECK(pthread_create(&logger, NULL, log_from_this_thread, NULL) == 0);
    CHECK(counter_wait(&gate.entered, 1, slow(20000)) == 1);
    CHECK(pthread_create(&replacer, NULL, replace_log_callback, &gate) == 0);
    int replaced_while_delivering = counter_wait(&gate.replaced, 1, slow(10000));
    int released_early = counter_get(&gate.released);
    counter_add(&gate.release, 1);
    pthread_join(replacer, NULL);
    pthread_join(logger, NULL);
    CHECK(replaced_while_delivering == 1);
    CHECK(released_early == 0);
    CHECK(counter_wait(&gate.released, 1, slow(20000)) == 1);
    CHECK(gate.in_flight_at_release == 0);
    CHECK(gate.reentrant_code == NOXY_ERROR_INVALID_ARGUMENT);
    long calls = gate.calls;
    noxy_client *client = relay_client();
    CHECK(client != NULL);
    noxy_free(client);
    CHECK(gate.calls == calls);
    counter_destroy(&gate.entered);
    counter_destroy(&gate.release);
    counter_destroy(&gate.replaced);
    counter_destroy(&gate.released);
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
    {"accessors_on_null_are_invalid", test_accessors_on_null_are_invalid},
    {"null_arguments", test_null_arguments},
    {"invalid_utf8_and_json", test_invalid_utf8_and_json},
    {"payload_bytes_and_duplicate_keys", test_payload_bytes_and_duplicate_keys},
    {"digest_is_of_the_bytes_given", test_digest_is_of_the_bytes_given},
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
    {"every_call_has_an_async_form", test_every_call_has_an_async_form},
    {"async_checks_arguments_before_starting", test_async_checks_arguments_before_starting},
    {"operation_handle_is_written_before_the_callback",
     test_operation_handle_is_written_before_the_callback},
    {"blocking_calls_are_refused_in_callbacks", test_blocking_calls_are_refused_in_callbacks},
    {"free_while_in_flight", test_free_while_in_flight},
    {"free_from_callback", test_free_from_callback},
    {"client_close_and_drain", test_client_close_and_drain},
    {"callbacks_use_client_while_freed", test_callbacks_use_client_while_freed},
    {"drain_waits_and_free_does_not", test_drain_waits_and_free_does_not},
    {"free_never_blocks_on_a_stuck_worker", test_free_never_blocks_on_a_stuck_worker},
    {"survives_dropped_connections", test_survives_dropped_connections},
    {"shared_runtime", test_shared_runtime},
    {"threads_share_one_client", test_threads_share_one_client},
    {"fork_child_gets_an_error", test_fork_child_gets_an_error},
    {"logging_never_shows_token_or_payload", test_logging_never_shows_token_or_payload},
    {"per_client_log_callback", test_per_client_log_callback},
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
