/*
 * file_watcher.c: one thread per instance that re-reads secretsFile when it changes.
 *
 * It watches the file's directory, not the file: editors and `mv` replace the file with another inode, and
 * a watch on the old inode would see nothing. Events for the file's name:
 *   IN_CLOSE_WRITE, IN_MOVED_TO  a writer finished or a file was renamed into place: re-read; a refusal
 *                                (malformed JSON, ...) keeps the current secrets and logs a WARNING
 *   IN_CREATE                    re-read; a refusal is only DEBUG, since the creator is usually still
 *                                writing and IN_CLOSE_WRITE follows
 *   IN_DELETE, IN_MOVED_FROM     the file is gone: keep the current secrets, WARNING
 *   IN_Q_OVERFLOW                events were lost: re-read as after a write
 * Events that arrive together are handled as one re-read. A re-read whose secrets equal the current ones
 * changes nothing (a rewrite with other whitespace does not notify the host); one that differs is
 * published (lf_publish) and reported to the host (lf_report_change).
 *
 * Threads: the watcher holds reload_mu from reading events to publishing, so apply_config (which also
 * takes it) never interleaves with a re-read, and the watch descriptor and name it compares with are the
 * current ones. destroy wakes it through wake_fd (an eventfd) and joins it.
 */
#include "local_file.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <unistd.h>

#define LF_WATCH_MASK (IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE | IN_MOVED_FROM)
#define LF_WRITTEN (IN_CLOSE_WRITE | IN_MOVED_TO)
#define LF_REMOVED (IN_DELETE | IN_MOVED_FROM)

bool lf_watcher_open(lf_instance *in, char *why, size_t why_size) {
    in->watched = (lf_watch){.descriptor = -1};
    in->inotify_fd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
    if (in->inotify_fd < 0) {
        snprintf(why, why_size, "cannot watch secretsFile: inotify_init1: %s", strerror(errno));
        return false;
    }
    in->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (in->wake_fd < 0) {
        snprintf(why, why_size, "cannot create the watcher's eventfd: %s", strerror(errno));
        close(in->inotify_fd);
        return false;
    }
    return true;
}

bool lf_watch_add(lf_instance *in, const char *path, lf_watch *out, char *why, size_t why_size) {
    const char *slash = strrchr(path, '/');
    lf_watch w = {.descriptor = -1};
    w.dir = slash == NULL ? strdup(".") : slash == path ? strdup("/") : strndup(path, (size_t)(slash - path));
    w.name = strdup(slash ? slash + 1 : path);
    if (w.dir == NULL || w.name == NULL) {
        snprintf(why, why_size, "out of memory");
    } else if ((w.descriptor = inotify_add_watch(in->inotify_fd, w.dir, LF_WATCH_MASK)) < 0) {
        snprintf(why, why_size, "cannot watch %s, the directory of secretsFile %s: %s", w.dir, path, strerror(errno));
    } else {
        *out = w;
        return true;
    }
    free(w.dir);
    free(w.name);
    return false;
}

/* One directory has one descriptor: a watch of the directory watched already is the same one. */
static void lf_watch_release(lf_instance *in, lf_watch *old, int kept) {
    if (old->descriptor >= 0 && old->descriptor != kept) inotify_rm_watch(in->inotify_fd, old->descriptor);
    free(old->dir);
    free(old->name);
    *old = (lf_watch){.descriptor = -1};
}

void lf_watch_commit(lf_instance *in, lf_watch *watch) {
    lf_watch old = in->watched;
    in->watched = *watch;
    lf_watch_release(in, &old, watch->descriptor); /* its IN_IGNORED is skipped: another descriptor */
    *watch = (lf_watch){.descriptor = -1};
}

void lf_watch_drop(lf_instance *in, lf_watch *watch) { lf_watch_release(in, watch, in->watched.descriptor); }

/* Re-reads the file; true when the secrets changed. A refusal is logged at `level`. reload_mu held. */
static bool lf_reread(lf_instance *in, molt_log_level level) {
    lf_table *table;
    char why[768];
    if (!lf_load(&in->settings, &table, why, sizeof why)) {
        molt_log(in->host, level, LF_NAME ": re-reading: %s; still serving the secrets read before", why);
        return false;
    }
    uint32_t count = table->count;
    if (!lf_publish(in, table)) return false;
    molt_log(in->host, MOLT_LOG_INFO, LF_NAME ": secretsFile %s changed: now %u secrets", in->settings.path, count);
    return true;
}

/* What one batch of events means (`seen`: the masks of the events for the file's name). reload_mu held. */
static bool lf_react(lf_instance *in, uint32_t seen, bool watch_gone) {
    if (watch_gone) {
        molt_log(in->host, MOLT_LOG_WARNING, LF_NAME ": %s, the directory of secretsFile %s, is no longer watched "
                 "(removed or unmounted); changes are not seen until the component reloads",
                 in->watched.dir, in->settings.path);
        in->watched.descriptor = -1;
    }
    if (seen & (LF_WRITTEN | IN_Q_OVERFLOW)) return lf_reread(in, MOLT_LOG_WARNING);
    if (seen & IN_CREATE) return lf_reread(in, MOLT_LOG_DEBUG);
    if (seen & LF_REMOVED)
        molt_log(in->host, MOLT_LOG_WARNING, LF_NAME ": secretsFile %s was removed; still serving the secrets "
                 "read before", in->settings.path);
    return false;
}

/* Drains the inotify descriptor and handles what it held; true when the secrets changed. */
static bool lf_handle_events(lf_instance *in) {
    char buffer[8192] __attribute__((aligned(__alignof__(struct inotify_event))));
    uint32_t seen = 0;
    bool watch_gone = false;
    pthread_mutex_lock(&in->reload_mu);
    for (;;) {
        ssize_t n = read(in->inotify_fd, buffer, sizeof buffer);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break; /* EAGAIN: drained */
        for (char *p = buffer; p < buffer + n;) {
            const struct inotify_event *event = (const struct inotify_event *)p;
            p += sizeof(struct inotify_event) + event->len;
            if (event->mask & IN_Q_OVERFLOW)
                seen |= IN_Q_OVERFLOW;
            else if (event->wd != in->watched.descriptor)
                continue; /* a directory watched before apply_config moved the file */
            else if (event->mask & IN_IGNORED)
                watch_gone = true;
            else if (event->len > 0 && strcmp(event->name, in->watched.name) == 0)
                seen |= event->mask;
        }
    }
    bool changed = lf_react(in, seen, watch_gone);
    pthread_mutex_unlock(&in->reload_mu);
    return changed;
}

static void *lf_watcher_main(void *arg) {
    lf_instance *in = arg;
    struct pollfd fds[2] = {{.fd = in->wake_fd, .events = POLLIN}, {.fd = in->inotify_fd, .events = POLLIN}};
    for (;;) {
        if (poll(fds, 2, -1) < 0) {
            if (errno == EINTR) continue;
            molt_log(in->host, MOLT_LOG_ERROR, LF_NAME ": the watcher of secretsFile stops: poll: %s", strerror(errno));
            return NULL;
        }
        if (fds[0].revents) return NULL; /* destroy */
        if (fds[1].revents && lf_handle_events(in)) lf_report_change(in);
    }
}

bool lf_watcher_start(lf_instance *in, char *why, size_t why_size) {
    int rc = pthread_create(&in->watcher, NULL, lf_watcher_main, in);
    if (rc != 0) {
        snprintf(why, why_size, "cannot start the watcher thread: %s", strerror(rc));
        return false;
    }
    return true;
}

void lf_watcher_stop(lf_instance *in) {
    uint64_t one = 1;
    while (write(in->wake_fd, &one, sizeof one) < 0 && errno == EINTR) {
    }
    pthread_join(in->watcher, NULL);
}

void lf_watcher_close(lf_instance *in) {
    lf_watch_release(in, &in->watched, -1);
    close(in->inotify_fd);
    close(in->wake_fd);
}
