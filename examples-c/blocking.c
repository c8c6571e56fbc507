/* Sends one decision and blocks until the person approves, rejects, or it expires.
 *
 *   NOXY_ENDPOINT=127.0.0.1:50051 NOXY_APP_TOKEN=dev-token NOXY_CA_PEM_PATH=.noxy-devrelay/ca.pem \
 *   NOXY_IDENTITY=demo-user ./blocking
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "noxy.h"

static const char *env(const char *name, const char *fallback) {
    const char *value = getenv(name);
    return (value != NULL && value[0] != '\0') ? value : fallback;
}

/* Prints an error, frees it, and says whether there was one. */
static int failed(const char *what, noxy_error *error) {
    if (error == NULL) return 0;
    fprintf(stderr, "%s: %s (%s)\n", what, noxy_error_message(error),
            noxy_error_code_name(noxy_error_code(error)));
    noxy_error_free(error);
    return 1;
}

int main(void) {
    const char *ca_path = getenv("NOXY_CA_PEM_PATH");
    const char *identity = env("NOXY_IDENTITY", "demo-user");
    const char *payload =
        "{\"kind\":\"tool_call\",\"tool\":\"shell\",\"title\":\"Run database migration\","
        "\"summary\":\"The agent wants to run `migrate up` on production\","
        "\"args\":{\"command\":\"migrate up\",\"env\":\"production\"}}";

    printf("libnoxy %s\n", noxy_version());
    noxy_config *config = noxy_config_new();
    if (failed("endpoint", noxy_config_set_endpoint(config, env("NOXY_ENDPOINT", "127.0.0.1:50051"))) ||
        failed("app token", noxy_config_set_app_token(config, env("NOXY_APP_TOKEN", "dev-token"))) ||
        (ca_path != NULL && failed("CA", noxy_config_set_ca_pem_file(config, ca_path))) ||
        failed("ttl", noxy_config_set_decision_ttl_seconds(config, 120))) {
        noxy_config_free(config);
        return 2;
    }
    noxy_client *client = NULL;
    noxy_error *error = noxy_client_new(config, &client);
    noxy_config_free(config);
    if (failed("noxy_client_new", error)) return 2;

    noxy_wait_options *wait = noxy_wait_options_new();
    noxy_error_free(noxy_wait_options_set_initial_interval_ms(wait, 200));
    noxy_error_free(noxy_wait_options_set_max_wait_ms(wait, 180000));

    printf("asking %s to approve: Run database migration\n", identity);
    noxy_decision_result *result = NULL;
    error = noxy_send_and_wait(client, identity, payload, strlen(payload), NULL, wait, &result);
    noxy_wait_options_free(wait);
    int status = 1;
    if (!failed("noxy_send_and_wait", error)) {
        printf("decision %s: %s\n", noxy_decision_result_decision_id(result),
               noxy_outcome_name(noxy_decision_result_outcome(result)));
        for (size_t i = 0; i < noxy_decision_result_delivery_count(result); i++) {
            const noxy_delivery *d = noxy_decision_result_delivery(result, i);
            printf("  device %s: %s\n", noxy_delivery_device_id(d),
                   noxy_delivery_status_name(noxy_delivery_status(d)));
        }
        status = noxy_decision_result_outcome(result) == NOXY_OUTCOME_APPROVED ? 0 : 3;
        noxy_decision_result_free(result);
    }
    noxy_free(client);
    return status;
}
