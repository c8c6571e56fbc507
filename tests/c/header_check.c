/* Compiles include/noxy.h as C99 and as C++ (this file is built both ways by tests/c/run.sh)
 * with -Wall -Wextra -Werror (and -pedantic for C), and checks a few declarations. */
#include "noxy.h"

#if !defined(NOXY_VERSION_MAJOR) || !defined(NOXY_VERSION_MINOR) || \
    !defined(NOXY_VERSION_PATCH) || !defined(NOXY_VERSION_STRING)
#error "version macros missing"
#endif

static void on_done(void *user_data, noxy_error *error, noxy_decision_result *result) {
    (void)user_data;
    noxy_error_free(error);
    noxy_decision_result_free(result);
}

static void on_log(noxy_log_level level, const char *message, void *user_data) {
    (void)level;
    (void)message;
    (void)user_data;
}

int main(void) {
    noxy_decision_callback done = on_done;
    noxy_log_callback log = on_log;
    noxy_code code = noxy_error_code(NULL);
    noxy_outcome outcome = NOXY_OUTCOME_APPROVED;
    noxy_delivery_state state = NOXY_DELIVERY_QUEUED;
    noxy_quota_state quota = NOXY_QUOTA_ACTIVE;
    size_t count = noxy_devices_count(NULL);
    (void)done;
    (void)log;
    return (int)code + (int)outcome - 1 + (int)state - 1 + (int)quota + (int)count;
}
