/* The development relay as a child process, for the load and soak programs: start it on
 * loopback (port 0, or a given port to restart it where clients expect it), read its ready
 * file, stop or kill it, and read its inspection over HTTP. */
#ifndef NOXY_BENCH_RELAY_H
#define NOXY_BENCH_RELAY_H

#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    char binary[512];
    char dir[256];       /* state directory and ready file live here */
    char endpoint[128];  /* https://127.0.0.1:PORT */
    char ca_path[512];
    char http_url[128];  /* http://127.0.0.1:PORT */
    char http_token[256];
    int grpc_port;
    pid_t pid;
} relay_t;

static inline double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static inline void pause_ms(long ms) {
    struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&t, NULL);
}

/* The value of a string field of a flat JSON object ("name":"value"); empty when absent. */
static inline void json_field(const char *json, const char *name, char *out, size_t size) {
    char key[64];
    snprintf(key, sizeof key, "\"%s\"", name);
    out[0] = 0;
    const char *at = strstr(json, key);
    if (at == NULL) return;
    at = strchr(at + strlen(key), '"');
    if (at == NULL) return;
    const char *end = strchr(at + 1, '"');
    if (end == NULL) return;
    size_t len = (size_t)(end - at - 1) < size - 1 ? (size_t)(end - at - 1) : size - 1;
    memcpy(out, at + 1, len);
    out[len] = 0;
}

static inline char *read_file(const char *path) {
    FILE *f = fopen(path, "r");
    if (f == NULL) return NULL;
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    size_t n;
    while ((n = fread(buf + len, 1, cap - len - 1, f)) > 0) {
        len += n;
        if (len + 1 == cap) buf = realloc(buf, cap *= 2);
    }
    buf[len] = 0;
    fclose(f);
    return buf;
}

/* Starts the relay with `args` (NULL-terminated) after the common flags. With grpc_port > 0
 * it listens there (a restart); otherwise on a free port. Waits for the ready file (a bounded
 * poll for a condition). Returns 0 on success. */
static inline int relay_start(relay_t *r, const char *const args[]) {
    char ready[300], state[300], listen[64];
    snprintf(ready, sizeof ready, "%s/ready.json", r->dir);
    snprintf(state, sizeof state, "%s/state", r->dir);
    snprintf(listen, sizeof listen, "127.0.0.1:%d", r->grpc_port);
    unlink(ready);
    const char *argv[64] = {r->binary,   "--listen",  listen,  "--http-listen", "127.0.0.1:0",
                            "--state-dir", state,     "--ready-file", ready, "--log-level", "error"};
    int argc = 11;
    for (int i = 0; args[i] != NULL && argc < 62; i++) argv[argc++] = args[i];
    argv[argc] = NULL;
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        int quiet = open("/dev/null", O_WRONLY); /* its banner would mix with our output */
        if (quiet >= 0) dup2(quiet, STDOUT_FILENO);
        execv(r->binary, (char *const *)argv);
        _exit(127);
    }
    r->pid = pid;
    for (int i = 0; i < 600; i++) {
        char *json = read_file(ready);
        if (json != NULL && strstr(json, "endpoint") != NULL) {
            json_field(json, "endpoint", r->endpoint, sizeof r->endpoint);
            json_field(json, "ca_path", r->ca_path, sizeof r->ca_path);
            json_field(json, "http_url", r->http_url, sizeof r->http_url);
            json_field(json, "http_token", r->http_token, sizeof r->http_token);
            free(json);
            const char *colon = strrchr(r->endpoint, ':');
            r->grpc_port = colon ? atoi(colon + 1) : 0;
            return 0;
        }
        free(json);
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            fprintf(stderr, "the relay exited at start (status %d)\n", status);
            r->pid = 0;
            return -1;
        }
        pause_ms(50);
    }
    fprintf(stderr, "the relay was not ready after 30 s\n");
    return -1;
}

/* Stops the relay with `sig` (SIGTERM: orderly; SIGKILL: a crash) and reaps it. */
static inline void relay_stop(relay_t *r, int sig) {
    if (r->pid > 0) {
        kill(r->pid, sig);
        waitpid(r->pid, NULL, 0);
        r->pid = 0;
    }
}

/* GET `path` from the relay's HTTP API; returns the body (caller frees) or NULL. */
static inline char *relay_get(const relay_t *r, const char *path) {
    const char *hostport = strstr(r->http_url, "//");
    if (hostport == NULL) return NULL;
    hostport += 2;
    const char *colon = strrchr(hostport, ':');
    if (colon == NULL) return NULL;
    int port = atoi(colon + 1);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return NULL;
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
        close(fd);
        return NULL;
    }
    char request[1024];
    int n = snprintf(request, sizeof request,
                     "GET %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n"
                     "Connection: close\r\n\r\n",
                     path, hostport, r->http_token);
    if (send(fd, request, (size_t)n, MSG_NOSIGNAL) != n) {
        close(fd);
        return NULL;
    }
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    ssize_t got;
    while ((got = recv(fd, buf + len, cap - len - 1, 0)) > 0) {
        len += (size_t)got;
        if (len + 1 == cap) buf = realloc(buf, cap *= 2);
    }
    close(fd);
    buf[len] = 0;
    char *body = strstr(buf, "\r\n\r\n");
    if (body == NULL || strncmp(buf, "HTTP/1.1 200", 12) != 0) {
        free(buf);
        return NULL;
    }
    char *copy = strdup(body + 4);
    free(buf);
    return copy;
}

/* Bytes the allocator hands out right now (glibc, every arena): what the process really holds,
 * as opposed to RSS, which also keeps freed memory the allocator did not return. */
#include <malloc.h>
static inline long heap_in_use_kib(void) {
    struct mallinfo2 info = mallinfo2();
    return (long)((info.uordblks + info.hblkhd) / 1024);
}

/* A numeric field (`VmRSS:`, `Threads:`) of a /proc status file; -1 when it cannot be read. */
static inline long proc_status_field(const char *path, const char *field) {
    FILE *f = fopen(path, "r");
    if (f == NULL) return -1;
    char line[256];
    long value = -1;
    size_t len = strlen(field);
    while (fgets(line, sizeof line, f) != NULL)
        if (strncmp(line, field, len) == 0) value = strtol(line + len, NULL, 10);
    fclose(f);
    return value;
}

/* The relay's resident memory (KiB) and CPU time so far (seconds), from /proc (Linux). */
static inline long relay_rss_kib(const relay_t *r) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/status", (int)r->pid);
    return proc_status_field(path, "VmRSS:");
}

static inline double relay_cpu_s(const relay_t *r) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)r->pid);
    char *stat = read_file(path);
    if (stat == NULL) return -1;
    /* Fields 14 and 15 (utime, stime, in clock ticks) follow the ")" closing the name. */
    const char *at = strrchr(stat, ')');
    unsigned long utime = 0, stime = 0;
    if (at != NULL) sscanf(at + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime, &stime);
    free(stat);
    return (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
}

/* The resident memory of this process, in KiB (Linux). */
static inline long rss_kib(void) { return proc_status_field("/proc/self/status", "VmRSS:"); }

#endif /* NOXY_BENCH_RELAY_H */
