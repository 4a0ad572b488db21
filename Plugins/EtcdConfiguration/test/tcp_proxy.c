/* tcp_proxy.c: see tcp_proxy.h. The thread polls the listener, a wake-up pipe and every connection pair;
 * bytes are copied with blocking writes (test volumes are small). proxy_cut shuts the sockets down from
 * the test's thread under `mu`; the thread then sees them end and closes them. */
#include "tcp_proxy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_PAIRS 32

struct tcp_proxy {
    uint16_t target;
    int listener;
    int wake[2];
    pthread_t thread;
    pthread_mutex_t mu;     /* guards cut, stopping and pairs (the fds; the thread alone adds and closes) */
    bool cut, stopping;
    int pairs[MAX_PAIRS][2]; /* client, server; -1: free */
};

static int connect_target(uint16_t port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0) return fd;
    if (fd >= 0) close(fd);
    return -1;
}

static bool copy(int from, int to) {
    char buffer[16384];
    ssize_t n = read(from, buffer, sizeof buffer);
    if (n <= 0) return false;
    for (ssize_t done = 0; done < n;) {
        ssize_t w = send(to, buffer + done, (size_t)(n - done), MSG_NOSIGNAL);
        if (w <= 0) return false;
        done += w;
    }
    return true;
}

static void close_pair(tcp_proxy *p, int i) {
    pthread_mutex_lock(&p->mu);
    close(p->pairs[i][0]);
    close(p->pairs[i][1]);
    p->pairs[i][0] = p->pairs[i][1] = -1;
    pthread_mutex_unlock(&p->mu);
}

static void accept_one(tcp_proxy *p) {
    int client = accept(p->listener, NULL, NULL);
    if (client < 0) return;
    int server = connect_target(p->target);
    pthread_mutex_lock(&p->mu);
    int slot = -1;
    for (int i = 0; i < MAX_PAIRS && slot < 0; i++)
        if (p->pairs[i][0] < 0) slot = i;
    if (p->cut || server < 0 || slot < 0) {
        close(client);
        if (server >= 0) close(server);
    } else {
        p->pairs[slot][0] = client;
        p->pairs[slot][1] = server;
    }
    pthread_mutex_unlock(&p->mu);
}

static void *proxy_main(void *arg) {
    tcp_proxy *p = arg;
    for (;;) {
        struct pollfd fds[2 + 2 * MAX_PAIRS];
        int index[2 + 2 * MAX_PAIRS];
        nfds_t n = 0;
        fds[n++] = (struct pollfd){.fd = p->wake[0], .events = POLLIN};
        fds[n++] = (struct pollfd){.fd = p->listener, .events = POLLIN};
        pthread_mutex_lock(&p->mu);
        if (p->stopping) { pthread_mutex_unlock(&p->mu); return NULL; }
        for (int i = 0; i < MAX_PAIRS; i++)
            for (int side = 0; side < 2 && p->pairs[i][0] >= 0; side++) {
                index[n] = i * 2 + side;
                fds[n++] = (struct pollfd){.fd = p->pairs[i][side], .events = POLLIN};
            }
        pthread_mutex_unlock(&p->mu);
        if (poll(fds, n, -1) < 0) continue;
        if (fds[0].revents) {
            char drain[64];
            if (read(p->wake[0], drain, sizeof drain) < 0) perror("proxy wake");
            continue; /* the pairs may have changed */
        }
        if (fds[1].revents) accept_one(p);
        for (nfds_t k = 2; k < n; k++) {
            if (!fds[k].revents) continue;
            int i = index[k] / 2, side = index[k] % 2;
            if (p->pairs[i][0] < 0) continue;
            if (!copy(p->pairs[i][side], p->pairs[i][1 - side])) close_pair(p, i);
        }
    }
}

static void wake(tcp_proxy *p) {
    if (write(p->wake[1], "w", 1) < 0) perror("proxy wake");
}

tcp_proxy *proxy_start(uint16_t target, uint16_t *port) {
    tcp_proxy *p = calloc(1, sizeof *p);
    p->target = target;
    for (int i = 0; i < MAX_PAIRS; i++) p->pairs[i][0] = p->pairs[i][1] = -1;
    pthread_mutex_init(&p->mu, NULL);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t length = sizeof a;
    p->listener = socket(AF_INET, SOCK_STREAM, 0);
    if (p->listener < 0 || bind(p->listener, (struct sockaddr *)&a, sizeof a) != 0 || listen(p->listener, 16) != 0 ||
        getsockname(p->listener, (struct sockaddr *)&a, &length) != 0 || pipe(p->wake) != 0 ||
        pthread_create(&p->thread, NULL, proxy_main, p) != 0) {
        perror("proxy_start");
        exit(1);
    }
    *port = ntohs(a.sin_port);
    return p;
}

void proxy_cut(tcp_proxy *p) {
    pthread_mutex_lock(&p->mu);
    p->cut = true;
    for (int i = 0; i < MAX_PAIRS; i++)
        if (p->pairs[i][0] >= 0) {
            shutdown(p->pairs[i][0], SHUT_RDWR);
            shutdown(p->pairs[i][1], SHUT_RDWR);
        }
    pthread_mutex_unlock(&p->mu);
    wake(p);
}

void proxy_restore(tcp_proxy *p) {
    pthread_mutex_lock(&p->mu);
    p->cut = false;
    pthread_mutex_unlock(&p->mu);
}

void proxy_stop(tcp_proxy *p) {
    pthread_mutex_lock(&p->mu);
    p->stopping = true;
    pthread_mutex_unlock(&p->mu);
    wake(p);
    pthread_join(p->thread, NULL);
    for (int i = 0; i < MAX_PAIRS; i++)
        if (p->pairs[i][0] >= 0) { close(p->pairs[i][0]); close(p->pairs[i][1]); }
    close(p->listener);
    close(p->wake[0]);
    close(p->wake[1]);
    pthread_mutex_destroy(&p->mu);
    free(p);
}
