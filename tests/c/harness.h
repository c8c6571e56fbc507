/* A minimal test harness for the C tests of libnoxy: checks that record failures, a counter
 * that callbacks signal and tests wait on (with a bounded timeout, never a sleep), and access to
 * the development relay the runner started. */
#ifndef NOXY_TEST_HARNESS_H
#define NOXY_TEST_HARNESS_H

#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "noxy.h"

static int g_check_failures;

#define CHECK(cond)                                                                       \
    do {                                                                                  \
        if (!(cond)) {                                                                    \
            fprintf(stderr, "    CHECK FAILED %s:%d: %s\n", __FILE__, __LINE__, #cond);  \
            g_check_failures++;                                                           \
            return;                                                                       \
        }                                                                                 \
    } while (0)

/* Checks a call returned success; on failure prints the error and fails the test. */
#define CHECK_OK(call)                                                                    \
    do {                                                                                  \
        noxy_error *check_ok_err_ = (call);                                               \
        if (check_ok_err_ != NULL) {                                                      \
            fprintf(stderr, "    CHECK_OK FAILED %s:%d: %s -> %s (%u): %s\n", __FILE__,   \
                    __LINE__, #call, noxy_error_code_name(noxy_error_code(check_ok_err_)), \
                    (unsigned)noxy_error_code(check_ok_err_),                             \
                    noxy_error_message(check_ok_err_));                                   \
            noxy_error_free(check_ok_err_);                                               \
            g_check_failures++;                                                           \
            return;                                                                       \
        }                                                                                 \
    } while (0)

/* Checks a call failed with `code` and a message containing `needle` (NULL: any message). */
#define CHECK_ERR(call, code, needle)                                                     \
    do {                                                                                  \
        noxy_error *check_err_ = (call);                                                  \
        if (!expect_error(check_err_, (code), (needle), #call, __FILE__, __LINE__)) {     \
            g_check_failures++;                                                           \
            return;                                                                       \
        }                                                                                 \
    } while (0)

static inline int expect_error(noxy_error *err, unsigned code, const char *needle,
                               const char *what, const char *file, int line) {
    int ok = 1;
    if (err == NULL) {
        fprintf(stderr, "    CHECK_ERR FAILED %s:%d: %s succeeded, expected %s\n", file, line,
                what, noxy_error_code_name(code));
        return 0;
    }
    if ((unsigned)noxy_error_code(err) != code) {
        fprintf(stderr, "    CHECK_ERR FAILED %s:%d: %s -> %s (%s), expected %s\n", file, line,
                what, noxy_error_code_name(noxy_error_code(err)), noxy_error_message(err),
                noxy_error_code_name(code));
        ok = 0;
    } else if (needle != NULL && strstr(noxy_error_message(err), needle) == NULL) {
        fprintf(stderr, "    CHECK_ERR FAILED %s:%d: %s message \"%s\" lacks \"%s\"\n", file,
                line, what, noxy_error_message(err), needle);
        ok = 0;
    }
    noxy_error_free(err);
    return ok;
}

/* ---- a counter that callbacks signal and tests wait on ---- */

typedef struct {
    pthread_mutex_t mutex;
    pthread_cond_t cond;
    int count;
} counter_t;

static inline void counter_init(counter_t *c) {
    pthread_mutex_init(&c->mutex, NULL);
    pthread_cond_init(&c->cond, NULL);
    c->count = 0;
}

static inline void counter_destroy(counter_t *c) {
    pthread_mutex_destroy(&c->mutex);
    pthread_cond_destroy(&c->cond);
}

static inline void counter_add(counter_t *c, int n) {
    pthread_mutex_lock(&c->mutex);
    c->count += n;
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->mutex);
}

static inline int counter_get(counter_t *c) {
    pthread_mutex_lock(&c->mutex);
    int n = c->count;
    pthread_mutex_unlock(&c->mutex);
    return n;
}

/* Waits until the count reaches `target` or `timeout_ms` passes; returns the final count. */
static inline int counter_wait(counter_t *c, int target, long timeout_ms) {
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += timeout_ms / 1000;
    deadline.tv_nsec += (timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec += 1;
        deadline.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&c->mutex);
    while (c->count < target) {
        if (pthread_cond_timedwait(&c->cond, &c->mutex, &deadline) == ETIMEDOUT) break;
    }
    int n = c->count;
    pthread_mutex_unlock(&c->mutex);
    return n;
}

/* ---- the development relay ---- */

static inline const char *env_or(const char *name, const char *fallback) {
    const char *value = getenv(name);
    return (value != NULL && value[0] != '\0') ? value : fallback;
}

static inline long env_long(const char *name, long fallback) {
    const char *value = getenv(name);
    return (value != NULL && value[0] != '\0') ? strtol(value, NULL, 10) : fallback;
}

/* Time limits scale under valgrind (NOXY_TEST_SLOW=N multiplies them). */
static inline long slow(long ms) { return ms * env_long("NOXY_TEST_SLOW", 1); }

#endif /* NOXY_TEST_HARNESS_H */
