/* etcd_server.c: see etcd_server.h. Written for the test only: blocking libcurl calls, small buffers. */
#define _GNU_SOURCE /* mkdtemp, prctl */
#include "etcd_server.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

uint16_t free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t length = sizeof address;
    if (fd < 0 || bind(fd, (struct sockaddr *)&address, sizeof address) != 0 ||
        getsockname(fd, (struct sockaddr *)&address, &length) != 0) {
        perror("free_port");
        exit(1);
    }
    close(fd);
    return ntohs(address.sin_port);
}

static char *base64(const uint8_t *bytes, size_t length) {
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *out = malloc((length + 2) / 3 * 4 + 1), *p = out;
    for (size_t i = 0; i < length; i += 3) {
        uint32_t v = (uint32_t)bytes[i] << 16 | (i + 1 < length ? (uint32_t)bytes[i + 1] << 8 : 0) |
                     (i + 2 < length ? bytes[i + 2] : 0);
        *p++ = alphabet[v >> 18 & 63];
        *p++ = alphabet[v >> 12 & 63];
        *p++ = i + 1 < length ? alphabet[v >> 6 & 63] : '=';
        *p++ = i + 2 < length ? alphabet[v & 63] : '=';
    }
    *p = '\0';
    return out;
}

typedef struct { char text[8192]; size_t length; } reply;

static size_t collect(char *bytes, size_t size, size_t count, void *context) {
    reply *r = context;
    size_t n = size * count, room = sizeof r->text - 1 - r->length;
    memcpy(r->text + r->length, bytes, n < room ? n : room);
    r->length += n < room ? n : room;
    r->text[r->length] = '\0';
    return n;
}

/* POSTs `body` to url + path; true on HTTP 200, with the header revision in *revision when asked. */
static bool post(const char *url, const char *path, const char *body, int64_t *revision, bool quiet) {
    char full[128];
    snprintf(full, sizeof full, "%s%s", url, path);
    reply r = {.length = 0};
    CURL *c = curl_easy_init();
    curl_easy_setopt(c, CURLOPT_URL, full);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_PROXY, "");
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
    CURLcode rc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    bool ok = rc == CURLE_OK && status == 200;
    if (!ok && !quiet) fprintf(stderr, "etcd %s: %s, HTTP %ld: %s\n", path, curl_easy_strerror(rc), status, r.text);
    const char *found = strstr(r.text, "\"revision\":\"");
    if (ok && revision != NULL) *revision = found ? strtoll(found + 12, NULL, 10) : 0;
    return ok;
}

static void show_log(const etcd_server *e) {
    char command[160];
    snprintf(command, sizeof command, "tail -n 20 %s/etcd.log >&2", e->dir);
    if (system(command) != 0) fprintf(stderr, "(no etcd.log)\n");
}

bool etcd_start(etcd_server *e) {
    if (e->dir[0] == '\0') {
        snprintf(e->dir, sizeof e->dir, "/tmp/test-etcd-config.XXXXXX");
        if (mkdtemp(e->dir) == NULL) { perror("mkdtemp"); return false; }
        e->client_port = free_port();
        do e->peer_port = free_port(); while (e->peer_port == e->client_port);
        snprintf(e->url, sizeof e->url, "http://127.0.0.1:%u", e->client_port);
    }
    char data[96], log[96], client[64], peer[64], cluster[96];
    snprintf(data, sizeof data, "%s/data", e->dir);
    snprintf(log, sizeof log, "%s/etcd.log", e->dir);
    snprintf(client, sizeof client, "http://127.0.0.1:%u", e->client_port);
    snprintf(peer, sizeof peer, "http://127.0.0.1:%u", e->peer_port);
    snprintf(cluster, sizeof cluster, "test=%s", peer);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) { perror("fork"); return false; }
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) _exit(1);
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (fd >= 0) { dup2(fd, 1); dup2(fd, 2); close(fd); }
        execl("/usr/bin/etcd", "etcd", "--name", "test", "--data-dir", data, "--listen-client-urls", client,
              "--advertise-client-urls", client, "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
              "--initial-cluster", cluster, "--log-level", "warn", (char *)NULL);
        _exit(127);
    }
    e->pid = pid;
    for (int i = 0; i < 600; i++) { /* 30 s */
        if (post(e->url, "/v3/kv/range", "{\"key\":\"AA==\",\"limit\":\"1\"}", NULL, true)) return true;
        if (waitpid(pid, NULL, WNOHANG) == pid) { e->pid = 0; break; }
        nanosleep(&(struct timespec){0, 50000000}, NULL);
    }
    fprintf(stderr, "etcd did not start on %s\n", e->url);
    show_log(e);
    etcd_stop(e);
    return false;
}

void etcd_stop(etcd_server *e) {
    if (e->pid <= 0) return;
    kill(e->pid, SIGTERM);
    for (int i = 0; i < 200; i++) { /* 10 s */
        if (waitpid(e->pid, NULL, WNOHANG) == e->pid) { e->pid = 0; return; }
        nanosleep(&(struct timespec){0, 50000000}, NULL);
    }
    kill(e->pid, SIGKILL);
    waitpid(e->pid, NULL, 0);
    e->pid = 0;
}

void etcd_destroy(etcd_server *e) {
    etcd_stop(e);
    if (e->dir[0] == '\0') return;
    char command[128];
    snprintf(command, sizeof command, "rm -rf '%s'", e->dir);
    if (system(command) != 0) fprintf(stderr, "could not remove %s\n", e->dir);
    e->dir[0] = '\0';
}

bool etcd_put(const etcd_server *e, const char *key, const char *value, size_t value_length, int64_t *revision) {
    char *k = base64((const uint8_t *)key, strlen(key)), *v = base64((const uint8_t *)value, value_length);
    char *body = malloc(strlen(k) + strlen(v) + 32);
    sprintf(body, "{\"key\":\"%s\",\"value\":\"%s\"}", k, v);
    bool ok = post(e->url, "/v3/kv/put", body, revision, false);
    free(k); free(v); free(body);
    return ok;
}

bool etcd_delete(const etcd_server *e, const char *key, int64_t *revision) {
    char *k = base64((const uint8_t *)key, strlen(key));
    char *body = malloc(strlen(k) + 16);
    sprintf(body, "{\"key\":\"%s\"}", k);
    bool ok = post(e->url, "/v3/kv/deleterange", body, revision, false);
    free(k); free(body);
    return ok;
}

bool etcd_compact(const etcd_server *e, int64_t revision) {
    char body[96];
    snprintf(body, sizeof body, "{\"revision\":\"%" PRId64 "\",\"physical\":true}", revision);
    return post(e->url, "/v3/kv/compaction", body, NULL, false);
}
