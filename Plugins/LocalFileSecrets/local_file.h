/*
 * local_file.h: what the local-file plugin's files share (not part of any ABI: every name here is hidden
 * by -fvisibility=hidden, only MOLT_EXPORT functions leave the library).
 *
 *   secret_table.c  a JSON document -> an immutable, sorted table of secrets (Dapr's flattening)
 *   secrets_file.c  secretsFile -> JSON document (size limit, parse errors with line and column)
 *   file_watcher.c  the thread that re-reads the file when it changes, and swaps the table
 *   local_file.c    identity, config keys, lifecycle, get and bulk_get
 *
 * Secret values never appear in a message or a log line: messages name files, keys and positions only.
 */
#ifndef LOCAL_FILE_H
#define LOCAL_FILE_H

#include "molt_plugin.h"

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LF_NAME "local-file"
#define LF_MAX_FILE_BYTES (4u << 20) /* 4 MiB: a larger secretsFile is refused */

/* How a file becomes secrets: the component's metadata. Strings owned by the struct (lf_settings_free). */
typedef struct lf_settings {
    char *path;        /* secretsFile, as given (relative paths: to molt's working directory) */
    char *separator;   /* nestedSeparator, never empty */
    bool multi_valued; /* multiValued */
} lf_settings;

void lf_settings_free(lf_settings *settings);

/* An immutable set of secrets, shared by the calls that pinned it (see lf_instance.table_mu). */
typedef struct lf_table {
    uint32_t pins;          /* guarded by the owning instance's table_mu; the instance holds one */
    uint32_t count;
    molt_secret *secrets;   /* count entries, sorted by key (strcmp), keys unique */
    molt_kv *values;        /* every secret's values; each secret's slice sorted by name, names unique */
    char **strings;         /* every string the table points to, owned */
    size_t string_count;
} lf_table;

/* secret_table.c. Builds the table for `root` (a JSON object, jansson's) under `settings`; false with
 * `why` (no secret value in it) when a value is not a string, or two values flatten to one name. */
struct json_t;
bool lf_table_build(const struct json_t *root, const lf_settings *settings, lf_table **out, char *why, size_t why_size);
const molt_secret *lf_table_find(const lf_table *table, const char *key);
bool lf_table_equal(const lf_table *a, const lf_table *b);
void lf_table_free(lf_table *table);

/* secrets_file.c. Reads settings->path and builds its table; false with `why` naming the file (and, for
 * malformed JSON, line and column). Blocking file I/O: never on an operation's thread. */
bool lf_load(const lf_settings *settings, lf_table **out, char *why, size_t why_size);

/* A watch of the directory of a file (inotify watches directories: editors and `mv` replace files). */
typedef struct lf_watch {
    int descriptor; /* inotify watch descriptor; -1: none */
    char *dir;      /* owned */
    char *name;     /* owned: the file's name in dir */
} lf_watch;

/* One per component generation; no globals. */
typedef struct lf_instance {
    const molt_host_services *host; /* host-owned, valid until destroy returns; its log lines name the instance */

    /* `current` and every table's `pins`. Held O(1): operations pin the current table under it and use
     * it unlocked; a swap publishes a new one, and whoever drops the last pin frees the old one. */
    pthread_mutex_t table_mu;
    lf_table *current;

    /* Serializes re-reads (the watcher's and apply_config's) and guards what they use: settings and
     * watched (the file they name, as watched by the watcher). */
    pthread_mutex_t reload_mu;
    lf_settings settings;
    lf_watch watched;

    int inotify_fd;      /* owned, read only by the watcher thread */
    int wake_fd;         /* owned eventfd: destroy writes it to stop the watcher */
    pthread_t watcher;
} lf_instance;

/* file_watcher.c, in lifecycle order. open: the inotify and wake descriptors. watch_add: a watch of the
 * directory of `path`, changing nothing else; then watch_commit makes it the instance's (dropping the one
 * before), or watch_drop forgets it (reload_mu held, or before the thread runs). start: the thread.
 * stop: wakes and joins it. close: the descriptors and the watch. Those that can fail return false with
 * `why`, having changed nothing. */
bool lf_watcher_open(lf_instance *in, char *why, size_t why_size);
bool lf_watch_add(lf_instance *in, const char *path, lf_watch *out, char *why, size_t why_size);
void lf_watch_commit(lf_instance *in, lf_watch *watch);
void lf_watch_drop(lf_instance *in, lf_watch *watch);
bool lf_watcher_start(lf_instance *in, char *why, size_t why_size);
void lf_watcher_stop(lf_instance *in);
void lf_watcher_close(lf_instance *in);

/* local_file.c. Makes `table` current (the instance's pin moves to it); returns whether its secrets
 * differ from the ones it replaced. Any thread. */
bool lf_publish(lf_instance *in, lf_table *table);
/* Reports a change to the host, when it offers `changed` (ABI 1.3). Not from init or destroy. */
void lf_report_change(const lf_instance *in);

#endif /* LOCAL_FILE_H */
