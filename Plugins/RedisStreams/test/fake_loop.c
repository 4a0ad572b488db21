/* fake_loop.c: the test's host with event loops (fake_loop.h). Each loop's lists are guarded by its mutex
 * (stream_open and timer_start come from any thread); callbacks run on the loop without it. */
#define _GNU_SOURCE /* pipe2, SOCK_NONBLOCK */
#include "fake_loop.h"
#include "fake_sink.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

typedef struct fake_stream {
    struct fake_stream *next;
    uint32_t loop;
    int fd;
    molt_stream_events events;
    enum { CONNECTING, OPEN, CLOSING } phase;
    char reason[256];
    uint8_t *out;
    size_t out_length;
    int64_t deadline_ms;  /* CONNECTING: gives up then */
} fake_stream;

typedef struct fake_timer {
    struct fake_timer *next;
    uint64_t id;
    int64_t at_ms;
    molt_timer_fn fire;
    void *context;
} fake_timer;

typedef struct {
    pthread_t thread;
    int wake[2];
    pthread_mutex_t mu;
    fake_stream *streams;
    fake_timer *timers;
    bool stop;
} fake_loop;

static fake_loop loops[FAKE_LOOPS];
static _Thread_local uint32_t my_loop = MOLT_NO_LOOP;
static pthread_mutex_t counts_mu = PTHREAD_MUTEX_INITIALIZER;
static int opened, owed;
static uint64_t last_timer;

static void owe(int n) {
    pthread_mutex_lock(&counts_mu);
    owed += n;
    pthread_mutex_unlock(&counts_mu);
}

static void wake(fake_loop *l) {
    char byte = 1;
    if (write(l->wake[1], &byte, 1) < 0) { /* the pipe is full: the loop wakes anyway */ }
}

uint32_t fake_current_loop(void) { return my_loop; }

static uint32_t current_loop(void *host_context) {
    (void)host_context;
    return my_loop;
}

static void close_later(fake_stream *s, const char *reason) {
    if (s->phase == CLOSING) return;
    s->phase = CLOSING;
    snprintf(s->reason, sizeof s->reason, "%s", reason);
    wake(&loops[s->loop]);
}

static molt_stream *stream_open(void *host_context, uint32_t loop, const char *address, uint16_t port,
                                uint32_t timeout_ms, const molt_stream_events *events) {
    (void)host_context;
    if (loop >= FAKE_LOOPS) return NULL;
    fake_stream *s = calloc(1, sizeof *s);
    if (s == NULL) return NULL;
    s->loop = loop;
    s->events = *events;
    s->deadline_ms = now_ms() + timeout_ms;
    s->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(port)};
    if (strcmp(address, "localhost") == 0) address = "127.0.0.1";
    if (s->fd < 0 || inet_pton(AF_INET, address, &to.sin_addr) != 1) {
        s->phase = CLOSING;
        snprintf(s->reason, sizeof s->reason, "cannot connect to %s:%u: bad address", address, port);
    } else if (connect(s->fd, (struct sockaddr *)&to, sizeof to) != 0 && errno != EINPROGRESS) {
        s->phase = CLOSING;
        snprintf(s->reason, sizeof s->reason, "cannot connect to %s:%u: %s", address, port, strerror(errno));
    }
    pthread_mutex_lock(&counts_mu);
    opened++;
    owed++;
    pthread_mutex_unlock(&counts_mu);
    fake_loop *l = &loops[loop];
    pthread_mutex_lock(&l->mu);
    s->next = l->streams;
    l->streams = s;
    pthread_mutex_unlock(&l->mu);
    wake(l);
    return (molt_stream *)s;
}

static void flush(fake_stream *s) {
    while (s->out_length > 0) {
        ssize_t n = send(s->fd, s->out, s->out_length, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK) close_later(s, strerror(errno));
            return;
        }
        memmove(s->out, s->out + n, s->out_length - (size_t)n);
        s->out_length -= (size_t)n;
    }
}

static void stream_write(molt_stream *stream, const uint8_t *bytes, size_t length) {
    fake_stream *s = (fake_stream *)stream;
    if (my_loop != s->loop) { fprintf(stderr, "FAIL: stream_write off its loop\n"); failures++; }
    if (s->phase == CLOSING) return;
    uint8_t *grown = realloc(s->out, s->out_length + length);
    if (grown == NULL) { close_later(s, "out of memory"); return; }
    memcpy(grown + s->out_length, bytes, length);
    s->out = grown;
    s->out_length += length;
    if (s->phase == OPEN) flush(s);
}

static void stream_close(molt_stream *stream, const char *reason) {
    fake_stream *s = (fake_stream *)stream;
    if (my_loop != s->loop) { fprintf(stderr, "FAIL: stream_close off its loop\n"); failures++; }
    close_later(s, reason != NULL ? reason : "closed by the plugin");
}

static uint64_t timer_start(void *host_context, uint32_t loop, uint32_t delay_ms, molt_timer_fn fire, void *context) {
    (void)host_context;
    if (loop >= FAKE_LOOPS) return 0;
    fake_timer *t = calloc(1, sizeof *t);
    if (t == NULL) return 0;
    t->at_ms = now_ms() + delay_ms;
    t->fire = fire;
    t->context = context;
    pthread_mutex_lock(&counts_mu);
    t->id = ++last_timer;
    owed++;
    pthread_mutex_unlock(&counts_mu);
    fake_loop *l = &loops[loop];
    pthread_mutex_lock(&l->mu);
    t->next = l->timers;
    l->timers = t;
    pthread_mutex_unlock(&l->mu);
    wake(l);
    return t->id;
}

static void timer_cancel(void *host_context, uint64_t timer) {
    (void)host_context;
    if (my_loop == MOLT_NO_LOOP) { fprintf(stderr, "FAIL: timer_cancel off the loops\n"); failures++; return; }
    fake_loop *l = &loops[my_loop];
    pthread_mutex_lock(&l->mu);
    for (fake_timer **t = &l->timers; *t != NULL; t = &(*t)->next) {
        if ((*t)->id == timer) {
            fake_timer *gone = *t;
            *t = gone->next;
            free(gone);
            owe(-1);
            break;
        }
    }
    pthread_mutex_unlock(&l->mu);
}

const molt_host_services loop_host = {
    .struct_size = sizeof(molt_host_services), .log = fake_host_log, .loop_count = FAKE_LOOPS,
    .current_loop = current_loop, .stream_open = stream_open, .stream_write = stream_write,
    .stream_close = stream_close, .timer_start = timer_start, .timer_cancel = timer_cancel};

/* Removes s from its loop's list, closes it and delivers `closed`. On the loop. */
static void deliver_closed(fake_loop *l, fake_stream *s) {
    pthread_mutex_lock(&l->mu);
    for (fake_stream **p = &l->streams; *p != NULL; p = &(*p)->next)
        if (*p == s) { *p = s->next; break; }
    pthread_mutex_unlock(&l->mu);
    if (s->fd >= 0) close(s->fd);
    s->events.closed(s->events.context, s->reason);
    free(s->out);
    free(s);
    owe(-1);
}

/* One stream's turn: connect, read, write, or close. On the loop. */
static void turn(fake_loop *l, fake_stream *s, short revents) {
    if (s->phase == CLOSING) return deliver_closed(l, s);
    if (s->phase == CONNECTING) {
        if (revents == 0) {
            if (now_ms() >= s->deadline_ms) close_later(s, "connect timed out");
            return;
        }
        int error = 0;
        socklen_t size = sizeof error;
        getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &error, &size);
        if (error != 0) return close_later(s, strerror(error));
        s->phase = OPEN;
        s->events.connected(s->events.context);
        if (s->phase == OPEN) flush(s);
        return;
    }
    if (revents & (POLLIN | POLLHUP | POLLERR)) {
        uint8_t buffer[16384];
        ssize_t n = recv(s->fd, buffer, sizeof buffer, 0);
        if (n > 0) s->events.received(s->events.context, buffer, (size_t)n);
        else if (n == 0) close_later(s, "the peer closed the connection");
        else if (errno != EAGAIN && errno != EWOULDBLOCK) close_later(s, strerror(errno));
    }
    if (s->phase == OPEN && (revents & POLLOUT)) flush(s);
}

static void *loop_main(void *argument) {
    fake_loop *l = argument;
    my_loop = (uint32_t)(l - loops);
    for (;;) {
        struct pollfd fds[64];
        fake_stream *streams[64];
        nfds_t n = 1;
        fds[0] = (struct pollfd){l->wake[0], POLLIN, 0};
        int timeout = 100;
        pthread_mutex_lock(&l->mu);
        if (l->stop) { pthread_mutex_unlock(&l->mu); break; }
        for (fake_stream *s = l->streams; s != NULL && n < 64; s = s->next) {
            streams[n] = s;
            short wanted = s->phase == CONNECTING ? POLLOUT : s->phase == OPEN ? POLLIN : 0;
            if (s->phase == OPEN && s->out_length > 0) wanted |= POLLOUT;
            if (s->phase == CLOSING) timeout = 0;
            fds[n++] = (struct pollfd){s->fd, wanted, 0};
        }
        int64_t now = now_ms();
        for (fake_timer *t = l->timers; t != NULL; t = t->next)
            if (t->at_ms - now < timeout) timeout = t->at_ms <= now ? 0 : (int)(t->at_ms - now);
        pthread_mutex_unlock(&l->mu);
        poll(fds, n, timeout);
        if (fds[0].revents & POLLIN) {
            char drain[64];
            while (read(l->wake[0], drain, sizeof drain) > 0) {}
        }
        for (nfds_t i = 1; i < n; i++) turn(l, streams[i], fds[i].revents);
        for (;;) { /* due timers, one at a time (a timer may start or cancel others) */
            pthread_mutex_lock(&l->mu);
            fake_timer **due = NULL;
            for (fake_timer **t = &l->timers; *t != NULL; t = &(*t)->next)
                if ((*t)->at_ms <= now_ms()) { due = t; break; }
            fake_timer *t = due != NULL ? *due : NULL;
            if (t != NULL) *due = t->next;
            pthread_mutex_unlock(&l->mu);
            if (t == NULL) break;
            t->fire(t->context);
            free(t);
            owe(-1);
        }
    }
    return NULL;
}

void fake_loops_start(void) {
    for (int i = 0; i < FAKE_LOOPS; i++) {
        fake_loop *l = &loops[i];
        if (pipe2(l->wake, O_NONBLOCK | O_CLOEXEC) != 0) { perror("pipe2"); exit(1); }
        pthread_mutex_init(&l->mu, NULL);
        pthread_create(&l->thread, NULL, loop_main, l);
    }
}

void fake_loops_stop(void) {
    for (int i = 0; i < FAKE_LOOPS; i++) {
        fake_loop *l = &loops[i];
        pthread_mutex_lock(&l->mu);
        l->stop = true;
        pthread_mutex_unlock(&l->mu);
        wake(l);
        pthread_join(l->thread, NULL);
    }
}

void run_on_loop(uint32_t loop, molt_timer_fn fn, void *context) {
    if (timer_start(NULL, loop, 0, fn, context) == 0) { fprintf(stderr, "run_on_loop: no loop %u\n", loop); exit(1); }
}

int fake_streams_opened(void) {
    pthread_mutex_lock(&counts_mu);
    int n = opened;
    pthread_mutex_unlock(&counts_mu);
    return n;
}

int fake_callbacks_owed(void) {
    pthread_mutex_lock(&counts_mu);
    int n = owed;
    pthread_mutex_unlock(&counts_mu);
    return n;
}
