/*
 * molt_plugin.h: the molt plugin ABI, version 1.3. This header is the contract.
 *
 * A molt plugin is a shared library (.so) that exports plain C functions whose names all begin with
 * "molt_". The host finds each one with dlsym. Required symbols must be present; optional
 * capabilities are detected by whether their symbol is present.
 *
 *   Always required:
 *     molt_abi_version       the ABI version this plugin was built against (checked before anything else)
 *     molt_plugin_info       name, semver version, component kind, description, state formats,
 *                            flags (ABI 1.1: MOLT_PLUGIN_HOLDS_STATE, the instance holds state callers rely on)
 *     molt_plugin_init       create an instance from the full configuration
 *     molt_plugin_readiness  is an instance ready to take traffic
 *     molt_plugin_destroy    stop an instance, join its threads and free it
 *   Optional (capability = presence):
 *     molt_plugin_config_keys    the configuration keys the plugin understands
 *     molt_plugin_apply_config   apply a new full configuration in place (absent: every change reloads)
 *     molt_plugin_export_state   } in-memory state that a new instance or a new plugin version can
 *     molt_plugin_import_state   } take over (both or neither; requires state_format_min/max in info)
 *     molt_plugin_operations     (ABI 1.2) plain C functions apps call by name (see "Declared operations")
 *   Operations, required for the plugin's kind:
 *     kind "lock":  molt_lock_try_lock, molt_lock_unlock
 *     kind "state": molt_state_get, molt_state_set, molt_state_delete;
 *                   optional: molt_state_bulk_get (host falls back to gets), molt_state_transact
 *     kind "binding" (ABI 1.2): none; molt_plugin_operations declaring at least one operation
 *     kind "secretstore" (ABI 1.3): molt_secret_get; optional: molt_secret_bulk_get (absent: the
 *                   bulk API answers unsupported)
 *     kind "configuration" (ABI 1.3): molt_configuration_get
 *     kind "pubsub" (ABI 1.3): molt_pubsub_publish, molt_pubsub_subscribe, molt_pubsub_ack,
 *                   molt_pubsub_unsubscribe
 *
 * Prototypes. Unless compiled by Swift's importer, this header declares every symbol above with
 * MOLT_EXPORT (section "Prototypes" at the end), so a definition with a wrong signature does not
 * compile, and a definition without MOLT_EXPORT is exported anyway (visibility comes from the first
 * declaration). A misspelt name is just another function: build with -Wmissing-prototypes (with
 * -Werror, as the documented build line does) and it is refused as a function without a prototype.
 * The host uses the `_fn` typedefs; plugins define the functions. Each `_fn` typedef says
 * "Required: yes/no" and from which threads it is called.
 *
 * Versioning. The host loads a plugin only when the plugin's major version equals the host's and the
 * plugin's minor version is at most the host's. Within a major version, the ABI only grows: new
 * optional symbols, and new fields appended at the end of structs. Every struct that may grow starts
 * with `struct_size`, set by whoever fills it in to sizeof() as that side compiled it; the reader
 * reads only fields that lie entirely within struct_size. Structs used as array elements (molt_kv,
 * molt_config_key, molt_state_bulk_item, molt_state_operation, molt_secret, molt_configuration_item) have no
 * struct_size and are frozen
 * for the whole major version; an extension adds a new array at the end of the containing struct.
 *
 * Memory ownership, in one rule: whoever allocates a piece of memory frees it, and a pointer handed
 * across the boundary is *borrowed* for a stated period. The comment beside each pointer says who
 * owns it and until when it is valid. All strings are NUL-terminated UTF-8.
 *
 * Threads. The host calls operations on one instance from many threads at once, so operations,
 * readiness and apply_config must be thread-safe. The host never calls destroy, export_state or
 * import_state concurrently with any other call on the same instance, and never calls anything on an
 * instance after destroy has begun. Threads the plugin itself runs (sweepers, I/O loops) are the
 * plugin's to coordinate with export/import. Several instances of one plugin (old and new
 * generations, or two components) live side by side, so keep per-instance state out of globals; the
 * host may call init of one instance while another instance serves calls.
 */
#ifndef MOLT_PLUGIN_H
#define MOLT_PLUGIN_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MOLT_ABI_VERSION_MAJOR 1
#define MOLT_ABI_VERSION_MINOR 3

/* Marks a function a plugin exports to the host. */
#define MOLT_EXPORT __attribute__((visibility("default")))

/* ---------------------------------------------------------------------------------------------
 * Status codes, shared by every call that can fail.
 * ------------------------------------------------------------------------------------------- */
/* What the app sees: an operation's failure status becomes Dapr's error (ERR_<OPERATION>, e.g.
 * ERR_STATE_GET, ERR_LOCK_TRY) with your message, and a gRPC or HTTP status:
 *
 *   status                      gRPC                HTTP
 *   MOLT_ERR_INVALID_ARGUMENT   INVALID_ARGUMENT    400
 *   MOLT_ERR_ETAG_MISMATCH      ABORTED             409
 *   MOLT_ERR_ETAG_INVALID       INVALID_ARGUMENT    400
 *   MOLT_ERR_UNAVAILABLE        UNAVAILABLE         500
 *   MOLT_ERR_TIMEOUT            DEADLINE_EXCEEDED   500
 *   MOLT_ERR_UNSUPPORTED        UNIMPLEMENTED       500
 *   MOLT_ERR_INTERNAL (other)   INTERNAL            500
 *   (no `done` by the deadline) DEADLINE_EXCEEDED   504
 *
 * Lock outcomes are not errors: MOLT_OK with acquired = false, or an unlock_status, answers 200/OK.
 * An init or import_state status fails the apply instead, with your message (docs/plugin-authors.md). */
typedef int32_t molt_status;
#define MOLT_OK 0
#define MOLT_ERR_INVALID_ARGUMENT 1 /* bad configuration or request; the caller must change it */
#define MOLT_ERR_ETAG_MISMATCH 2    /* the etag given does not match the stored one (Dapr: Aborted) */
#define MOLT_ERR_ETAG_INVALID 3     /* the etag given is malformed (Dapr: InvalidArgument) */
#define MOLT_ERR_UNAVAILABLE 4      /* the backend cannot be reached now; retrying may succeed */
#define MOLT_ERR_TIMEOUT 5          /* the backend did not answer in time */
#define MOLT_ERR_UNSUPPORTED 6      /* the operation or option is not supported by this plugin */
#define MOLT_ERR_INTERNAL 7         /* anything else */
#define MOLT_ERR_NOT_FOUND 8        /* ABI 1.3: the named item (a secret) does not exist */

/* ---------------------------------------------------------------------------------------------
 * Messages: host-owned buffers into which the plugin writes a human-readable explanation.
 *
 * The host allocates `text` with room for `capacity` bytes (>= 256) and sets text[0] = '\0'. The
 * plugin writes at most `capacity` bytes including the NUL (truncating, e.g. with snprintf or
 * molt_message_set). The buffer is valid only during the call it was passed to. A message is
 * required whenever a call reports failure, NOT_READY/FAILED readiness or NEEDS_RELOAD; it is shown
 * to operators verbatim, so say what is wrong and with which key.
 * ------------------------------------------------------------------------------------------- */
typedef struct molt_message {
    char *text;        /* host-owned; valid during the call */
    uint32_t capacity; /* bytes available at text, including the terminating NUL */
} molt_message;

/* Copies `text` into `message`, truncating to its capacity. Safe with a NULL message. */
static inline void molt_message_set(molt_message *message, const char *text) {
    if (message == NULL || message->text == NULL || message->capacity == 0) return;
    snprintf(message->text, message->capacity, "%s", text ? text : "");
}

/* ---------------------------------------------------------------------------------------------
 * Key/value pairs: component configuration and per-request metadata.
 * ------------------------------------------------------------------------------------------- */
typedef struct molt_kv {
    const char *key;   /* borrowed: valid as long as the array that holds this pair */
    const char *value; /* borrowed: same lifetime as key */
} molt_kv;

/* The full configuration of a component (never a delta). Host-owned, valid only during the call
 * it is passed to (init, apply_config); the plugin copies whatever it keeps. Keys are unique and
 * sorted bytewise; deprecated aliases declared by the plugin have already been renamed. */
typedef struct molt_config {
    uint32_t struct_size;
    uint32_t entry_count;
    const molt_kv *entries;     /* entry_count pairs */
    const char *component_name; /* the component's name, e.g. "statestore"; for the plugin's logs */
} molt_config;

/* Linear lookup helper: the value for `key`, or NULL when absent. */
static inline const char *molt_config_get(const molt_config *config, const char *key) {
    for (uint32_t i = 0; config != NULL && i < config->entry_count; i++) {
        const char *a = config->entries[i].key, *b = key;
        while (*a && *a == *b) { a++; b++; }
        if (*a == *b) return config->entries[i].value;
    }
    return NULL;
}

/* ---------------------------------------------------------------------------------------------
 * Host services, handed to init. New services are appended at the end (check struct_size).
 * ------------------------------------------------------------------------------------------- */
typedef int32_t molt_log_level;
#define MOLT_LOG_TRACE 0
#define MOLT_LOG_DEBUG 1
#define MOLT_LOG_INFO 2
#define MOLT_LOG_WARNING 3
#define MOLT_LOG_ERROR 4

/* ABI 1.1: I/O on the host's event loops.
 *
 * A plugin that talks to a server over TCP can let the host drive its connections instead of running
 * threads of its own: the host connects, reads and writes on its event loops (the threads that also
 * serve the app API), the plugin formats requests and parses replies. The host calls an operation on
 * the loop that read the app's request (`current_loop` tells which); a plugin that sends it over a
 * stream of that loop is answered on that loop, and the call completes without any thread switch.
 *
 * Threads: every callback of a stream or timer runs on its loop, one at a time, and must not block
 * (no sleeping, no blocking I/O, no waiting for another thread): it holds up every call on that loop.
 * stream_write and stream_close must be called on the stream's loop; use timer_start with delay 0 to
 * get there from another thread. (The host has no API for raw file-descriptor readiness: its loops
 * are swift-nio's, which owns the sockets. A client library with its own I/O, such as hiredis, is
 * used for its protocol: redisFormatCommandArgv and redisReader.) */
typedef struct molt_stream molt_stream; /* host-owned; see molt_stream_events.closed */

/* Plugin-filled; copied by stream_open. Every callback is required (non-NULL) and runs on the stream's
 * loop. */
typedef struct molt_stream_events {
    void *context; /* the plugin's; passed back to every callback, must stay valid until `closed` returns */
    /* The connection is established; sending may begin (bytes written before it are queued). */
    void (*connected)(void *context);
    /* Bytes received, in order; borrowed for the call. */
    void (*received)(void *context, const uint8_t *bytes, size_t length);
    /* The stream is closed: connecting failed or timed out, the peer closed it, an I/O error, or
     * stream_close. Always the last callback, exactly once; `message` (borrowed) says why. The
     * handle is invalid once it returns. */
    void (*closed)(void *context, const char *message);
} molt_stream_events;

/* Plugin-provided. Called when a timer fires, on its loop, with the `context` given to timer_start. */
typedef void (*molt_timer_fn)(void *context);

/* Host-owned. The pointer given to molt_plugin_init stays valid, and its functions callable from
 * any thread, until molt_plugin_destroy for that instance returns. */
typedef struct molt_host_services {
    uint32_t struct_size; /* check it before reading any ABI 1.1 field: an ABI 1.0 host's ends after `log` */
    void *host_context; /* opaque; pass it back to every service function */
    /* Writes one log line attributed to the instance. `message` is borrowed for the call only. Any
     * thread. Prefer molt_log() below (printf-style, checks struct_size). */
    void (*log)(void *host_context, molt_log_level level, const char *message);

    /* ---- ABI 1.1 (present when struct_size >= MOLT_HOST_SERVICES_SIZE_1_1) ---- */
    /* The host's event loops, numbered 0 ..< loop_count. */
    uint32_t loop_count;
    /* The loop of the calling thread, or MOLT_NO_LOOP when the caller is not on one of them. */
    uint32_t (*current_loop)(void *host_context);
    /* Starts connecting to `address` (host name or IP) and `port` on loop `loop`, giving up after
     * `timeout_ms`. Returns the stream at once (NULL only when `loop` is out of range or memory is
     * short); `events` is copied, and its callbacks follow on that loop. Any thread. */
    molt_stream *(*stream_open)(void *host_context, uint32_t loop, const char *address, uint16_t port,
                                uint32_t timeout_ms, const molt_stream_events *events);
    /* Queues `length` bytes (copied) for sending; they leave at the end of the loop's current turn,
     * together with whatever else was queued in it. Dropped once the stream is closing. On the
     * stream's loop only. */
    void (*stream_write)(molt_stream *stream, const uint8_t *bytes, size_t length);
    /* Closes the stream; `closed` follows (on a later turn of the loop) unless it was delivered
     * already. On the stream's loop only, and not after `closed` returned. */
    void (*stream_close)(molt_stream *stream, const char *reason);
    /* Calls `fire(context)` on loop `loop` after `delay_ms` (0: on its next turn), once, unless
     * cancelled first. Returns the timer's id (never 0), or 0 when `loop` is out of range. Any thread. */
    uint64_t (*timer_start)(void *host_context, uint32_t loop, uint32_t delay_ms, molt_timer_fn fire, void *context);
    /* Cancels a timer that has not fired yet; nothing happens when it fired or is unknown. On the
     * timer's loop only (so that it cannot be firing meanwhile). */
    void (*timer_cancel)(void *host_context, uint64_t timer);

    /* ---- ABI 1.3 (present when struct_size >= MOLT_HOST_SERVICES_SIZE_1_3) ---- */
    /* Tells the host that what the instance serves may have changed: `key` names the secret or
     * configuration item that changed (borrowed for the call), or is NULL for "anything may have
     * changed". The host reads again what it uses (secrets referenced by other components, items apps
     * subscribed to) on a thread of its own, soon after, and acts on what changed; calls coalesce.
     * Never required: without it the host polls (the component's pollInterval). Any thread; do not
     * call it from within init or destroy. */
    void (*changed)(void *host_context, const char *key);
} molt_host_services;

#define MOLT_NO_LOOP UINT32_MAX
/* struct_size of an ABI 1.0 host's services (log only) and of an ABI 1.1 host's. */
#define MOLT_HOST_SERVICES_SIZE_1_0 (offsetof(molt_host_services, log) + sizeof(void *))
#define MOLT_HOST_SERVICES_SIZE_1_1 (offsetof(molt_host_services, timer_cancel) + sizeof(void *))
#define MOLT_HOST_SERVICES_SIZE_1_3 (offsetof(molt_host_services, changed) + sizeof(void *))

#if !defined(__swift__) /* Swift does not import C variadic functions; PluginKit has HostServices.log */
#ifndef MOLT_LOG_LINE_MAX
#define MOLT_LOG_LINE_MAX 1024 /* bytes of one molt_log line, NUL included; longer lines end in "..." */
#endif
/* printf-style log line through the host's `log` service, formatted into a stack buffer of
 * MOLT_LOG_LINE_MAX bytes (truncated, ending in "..."). Does nothing with a NULL host, a host whose
 * struct_size does not include `log`, or a NULL format. Any thread, like `log` itself. */
static inline void molt_log(const molt_host_services *host, molt_log_level level, const char *format, ...)
    __attribute__((format(printf, 3, 4)));
static inline void molt_log(const molt_host_services *host, molt_log_level level, const char *format, ...) {
    if (host == NULL || format == NULL || host->struct_size < MOLT_HOST_SERVICES_SIZE_1_0 || host->log == NULL)
        return;
    char line[MOLT_LOG_LINE_MAX];
    va_list args;
    va_start(args, format);
    int length = vsnprintf(line, sizeof line, format, args);
    va_end(args);
    if (length < 0) {
        snprintf(line, sizeof line, "molt_log: cannot format \"%s\"", format);
    } else if ((size_t)length >= sizeof line && sizeof line > 4) {
        line[sizeof line - 4] = '.'; line[sizeof line - 3] = '.'; line[sizeof line - 2] = '.';
    }
    host->log(host->host_context, level, line);
}
#endif

/* ---------------------------------------------------------------------------------------------
 * Plugin identity and declared configuration keys.
 * ------------------------------------------------------------------------------------------- */
#define MOLT_KIND_LOCK "lock"
#define MOLT_KIND_STATE "state"
#define MOLT_KIND_BINDING "binding" /* ABI 1.2: only declared operations */
#define MOLT_KIND_SECRETSTORE "secretstore" /* ABI 1.3: Dapr's secret store */
#define MOLT_KIND_CONFIGURATION "configuration" /* ABI 1.3: Dapr's configuration store */
#define MOLT_KIND_PUBSUB "pubsub" /* ABI 1.3: Dapr's pub/sub */

/* Plugin-owned, static: valid for as long as the library is loaded. */
typedef struct molt_plugin_identity {
    uint32_t struct_size;
    const char *name;        /* [a-z0-9][a-z0-9._-]{0,63}, e.g. "memorylock" */
    const char *version;     /* semantic version 2.0.0, e.g. "1.2.0" */
    const char *kind;        /* MOLT_KIND_LOCK, MOLT_KIND_STATE, (ABI 1.2) MOLT_KIND_BINDING, (1.3) MOLT_KIND_SECRETSTORE,
                              * (1.3) MOLT_KIND_CONFIGURATION, (1.3) MOLT_KIND_PUBSUB */
    const char *description; /* one line for operators */
    /* State formats this plugin can both export and import: [state_format_min, state_format_max].
     * Both 0 when the plugin does not transfer state. When a reload moves state from instance A to
     * instance B, the host picks the highest format both ranges contain and asks A to export in it;
     * no common format aborts the reload before any switch. */
    uint32_t state_format_min;
    uint32_t state_format_max;

    /* ---- ABI 1.1 (read only when struct_size >= MOLT_PLUGIN_IDENTITY_SIZE_1_1) ---- */
    /* MOLT_PLUGIN_* flags, or-ed; 0 declares nothing. Bits not defined here must be 0. */
    uint32_t flags;
} molt_plugin_identity;

/* struct_size of an ABI 1.0 identity (up to state_format_max) and of an ABI 1.1 one (with flags). */
#define MOLT_PLUGIN_IDENTITY_SIZE_1_0 (offsetof(molt_plugin_identity, state_format_max) + sizeof(uint32_t))
#define MOLT_PLUGIN_IDENTITY_SIZE_1_1 (offsetof(molt_plugin_identity, flags) + sizeof(uint32_t))

/* MOLT_PLUGIN_HOLDS_STATE: an instance holds in-memory state that callers rely on, state that is gone
 * when the instance is destroyed and that no backend keeps (an in-memory lock's held locks, an
 * in-memory store's data; a client of Redis or of a database does NOT set it: the server keeps the
 * state). Set it whenever losing the instance's memory would break a caller (a lock another owner
 * could now take, a value that vanishes).
 *
 * What the host does: a reload or version swap of a component whose running plugin sets it must hand
 * the state over (export_state on the old instance, import_state on the new, in a common format). When
 * it cannot (the old or the new plugin exports no state transfer, or their format ranges do not
 * overlap), the apply is refused before anything starts, the running instance keeps serving with its
 * state, and the message names the component and what would be lost; the operator may accept the loss
 * explicitly (Control ApplyRequest.accept_state_loss, `molt apply --accept-state-loss`). The Lifecycle
 * API and the components-file and etcd agents cannot accept it, so they are refused. Removing a
 * component is not a reload: never refused. A plugin that sets it and exports state transfer reloads
 * and swaps as usual; set it anyway, so that a version of yours without transfer (or with a format
 * the running one does not share) cannot silently drop its state. Without the flag (and from ABI 1.0
 * plugins, whose identity has no flags) the host refuses only a reload from a plugin that exports
 * state to one that cannot import it. */
#define MOLT_PLUGIN_HOLDS_STATE 0x1u

/* Plugin-owned, static (valid while the library is loaded).
 *
 * What an ABI 1.1 host does with the declared keys (a plugin built for ABI 1.0, or one that declares no
 * keys, gets what ABI 1.0 hosts did: any key, no default filled in, apply_config tried for any change):
 *   - a key the plugin does not declare (under its name or a deprecated alias) is refused before any of
 *     the plugin's code runs: the apply fails naming the key and the declared ones, and the running
 *     instance keeps serving. Keys the host reads itself are always accepted (a state store's
 *     "keyPrefix"), and handed over with the rest of the config;
 *   - a declared key with a default_value that the config lacks is set to that value before init and
 *     apply_config: the plugin sees it (and operators see it in the running configuration);
 *   - a change (keys added, removed or changed, after aliases are renamed and defaults filled) goes to
 *     apply_config only when every changed key is declared applies_in_place; any other change starts a
 *     new instance without calling apply_config.
 * A plugin that takes arbitrary keys declares its config open with an entry named "*" (description as
 * you like, default_value NULL, required false, deprecated_aliases NULL): the host then accepts keys it
 * does not declare, and a change of such a key applies in place when the "*" entry's applies_in_place is
 * true. "*" is never shown to operators as a key. */
typedef struct molt_config_key {
    const char *name;        /* the current name of the key; "*": the config is open (see above) */
    const char *description; /* one line */
    const char *default_value; /* NULL: no default; else the host fills it in when the key is absent */
    bool required;           /* the host refuses a config without it, before init */
    bool applies_in_place;   /* a change of this key can be applied by apply_config; a change touching any
                                key without it starts a new instance instead */
    /* Old names still accepted for this key, NULL-terminated; NULL when there are none. The host
     * renames an alias to `name` (with a DEPRECATED warning) before handing the config over. */
    const char *const *deprecated_aliases;
} molt_config_key;

/* ---------------------------------------------------------------------------------------------
 * Instances and lifecycle.
 * ------------------------------------------------------------------------------------------- */
/* Plugin-owned opaque instance, from a successful init until destroy. */
typedef void *molt_instance;

typedef int32_t molt_readiness;
#define MOLT_READY 0     /* take traffic */
#define MOLT_NOT_READY 1 /* still starting (connecting, warming); the host polls again */
#define MOLT_FAILED 2    /* will never become ready; the host gives up on this instance */

typedef int32_t molt_apply_outcome;
#define MOLT_APPLIED 0      /* the instance now runs with the new config */
#define MOLT_NEEDS_RELOAD 1 /* the change needs a new instance; this one is unchanged */
#define MOLT_APPLY_ERROR 2  /* the config was refused; this one is unchanged (message says why) */
/* What the host does with each: APPLIED ends the apply (no new instance). NEEDS_RELOAD and APPLY_ERROR
 * both leave this instance serving with its old config while the host starts a new instance with the
 * new config (init, readiness, state transfer, switch), as for a change that does not apply in place;
 * the apply result records your message ("in-place apply needs a reload: ..." or "in-place apply refused
 * (...); trying a new instance"). So APPLY_ERROR is not final: if the config is wrong for any instance,
 * say so again in init, whose refusal fails the apply and keeps the old instance. Return NEEDS_RELOAD
 * for a valid change you cannot make in place, APPLY_ERROR for one you refuse or failed to make. */

/* Host-provided. Appends `length` bytes to a host-owned buffer. Returns 0 on success; non-zero means
 * the host refused (e.g. size limit), and the plugin must stop exporting and fail. `bytes` is borrowed
 * for the call. Call it only from within export_state (any thread, while export_state has not returned). */
typedef int32_t (*molt_bytes_sink)(void *sink_context, const void *bytes, size_t length);

/* Required: yes. Writes the ABI version the plugin was compiled against. Must not touch anything else:
 * it is called before the host has checked compatibility. Use MOLT_DEFINE_ABI_VERSION(). Called once
 * per load, on a host thread; both pointers are host-owned, valid during the call. */
typedef void (*molt_abi_version_fn)(uint32_t *major_out, uint32_t *minor_out);

/* Required: yes. Returns the static info struct (never NULL; plugin-owned, valid while the library is
 * loaded). Called at load time, on any host thread; must not depend on any instance. */
typedef const molt_plugin_identity *(*molt_plugin_info_fn)(void);

/* Required: no. Returns the static array of declared keys (plugin-owned, valid while the library is
 * loaded) and writes its length to *count_out (host-owned). Without it (or with no keys) the host
 * accepts any key; with it, only those declared, unless one is "*" (see molt_config_key). Called at load
 * time, on any host thread. */
typedef const molt_config_key *(*molt_plugin_config_keys_fn)(uint32_t *count_out);

/* Required: yes. Creates an instance from the full config. On MOLT_OK, *instance_out is set to a
 * non-NULL instance (which may still be NOT_READY: start connecting in the background, do not
 * block here for long). On failure returns an error code, writes `error_out`, and leaves nothing
 * allocated or running; the apply fails with the message and the old instance (if any) keeps serving.
 * `config` is borrowed for the call; `host` lives until destroy returns. Called on a host thread of its
 * own, bounded by the init timeout, possibly while other instances of the plugin serve calls. */
typedef molt_status (*molt_plugin_init_fn)(const molt_config *config, const molt_host_services *host,
                                           molt_instance *instance_out, molt_message *error_out);

/* Required: yes. Answers from what the instance knows now, without blocking on I/O. The host polls it
 * after init until READY, FAILED or its readiness timeout; NOT_READY and FAILED
 * write a message (host-owned, valid during the call). Any thread, concurrently with operations. */
typedef molt_readiness (*molt_plugin_readiness_fn)(molt_instance instance, molt_message *message_out);

/* Required: yes. Stops the instance: closes connections, stops and joins every thread it started, frees
 * everything. Called once, on a host thread of its own, after every operation on the instance has
 * completed (called `done`); nothing is called on the instance afterwards. */
typedef void (*molt_plugin_destroy_fn)(molt_instance instance);

/* Required: no (absent: every change starts a new instance). Applies a new full config to a running
 * instance, atomically: either all of it takes effect (APPLIED) or none of it does (NEEDS_RELOAD,
 * APPLY_ERROR; message says why; see molt_apply_outcome for what the host does next). Called on a host
 * thread of its own, bounded by the apply_config timeout, while operations run concurrently; never twice
 * at once on one instance. `config` and `message_out` are borrowed for the call. */
typedef molt_apply_outcome (*molt_plugin_apply_config_fn)(molt_instance instance, const molt_config *config,
                                                          molt_message *message_out);

/* Required: no (both export and import, or neither). Serializes the instance's state in `format`
 * (within the plugin's declared range) through `sink`. The host guarantees no operation is running on
 * the instance meanwhile; called on a host thread of its own, bounded by the state transfer timeout.
 * `sink_context` and `message_out` are host-owned, valid during the call. */
typedef molt_status (*molt_plugin_export_state_fn)(molt_instance instance, uint32_t format, molt_bytes_sink sink,
                                                   void *sink_context, molt_message *message_out);

/* Required: no (both export and import, or neither). Loads state exported by another instance
 * (possibly another version of the plugin) in `format`. Called after init and readiness, before the
 * instance serves any call, on a host thread of its own (no operation runs meanwhile). A refusal (any
 * non-OK status) aborts the reload; the old instance keeps serving. `bytes` is borrowed for the call. */
typedef molt_status (*molt_plugin_import_state_fn)(molt_instance instance, uint32_t format, const void *bytes,
                                                   size_t length, molt_message *message_out);

/* ---------------------------------------------------------------------------------------------
 * Operations. Required: for the plugin's kind (see the list at the top). Any thread, concurrently,
 * usually one of the host's event loops (never block it). Each takes the instance, a host-owned request, a completion function and an opaque
 * call context. The plugin must call `done(call_context, &result)` exactly once, from any thread:
 * either before the operation function returns (inline, for in-memory work) or later from its own
 * thread (for I/O; never block a host thread waiting for I/O).
 *   - The request and everything it points to stay valid until `done` is called; the plugin must
 *     not touch them afterwards.
 *   - The result and everything it points to are plugin-owned and need only stay valid until
 *     `done` returns; the host copies what it keeps.
 *   - `result.message` is NULL on success, otherwise a borrowed explanation.
 * ------------------------------------------------------------------------------------------- */

/* A `done` that never comes: the app's call answers DEADLINE_EXCEEDED at its deadline (the call
 * timeout), and the host stops waiting for it, but the instance keeps it: once replaced, the instance
 * is abandoned after the drain timeout (no longer serving) and destroyed only once `done` has been
 * called for every call it held; until then its memory and threads stay. A stateful instance holding a call cannot export its state, so it cannot be
 * reloaded with its state: complete every call, with an error if need be. */

/* --- kind "lock": Dapr's distributed lock semantics --- */

/* Host-owned, valid until `done` is called. try_lock uses every field; unlock ignores expiry_in_seconds.
 * Expiry: the host refuses a try_lock with expiry_in_seconds <= 0 (INVALID_ARGUMENT) before calling the
 * plugin; the plugin enforces expiry (an expired lock is free for anyone, never released early) and
 * may refuse values beyond what it supports with MOLT_ERR_INVALID_ARGUMENT. A held, unexpired lock is
 * not acquired again, not even by its owner (acquired = false). */
typedef struct molt_lock_request {
    uint32_t struct_size;
    const char *resource_id;   /* the lock's name */
    const char *lock_owner;    /* who holds it; only the owner may unlock */
    int32_t expiry_in_seconds; /* > 0; an expired lock is free for anyone */
} molt_lock_request;

/* Plugin-owned, valid until `done` returns (a stack variable is fine), as are the results below. */
typedef struct molt_try_lock_result {
    uint32_t struct_size;
    molt_status status;  /* MOLT_OK unless the attempt itself failed */
    bool acquired;       /* with MOLT_OK: true when the caller now holds the lock */
    const char *message; /* plugin-owned; NULL on success (ignored with MOLT_OK) */
} molt_try_lock_result;

typedef int32_t molt_unlock_status;
#define MOLT_UNLOCK_SUCCESS 0
#define MOLT_UNLOCK_LOCK_DOES_NOT_EXIST 1
#define MOLT_UNLOCK_LOCK_BELONGS_TO_OTHERS 2
#define MOLT_UNLOCK_INTERNAL_ERROR 3

typedef struct molt_unlock_result {
    uint32_t struct_size;
    molt_status status;              /* MOLT_OK unless the attempt itself failed */
    molt_unlock_status unlock_status; /* with MOLT_OK: the Dapr outcome; ignored otherwise */
    const char *message;              /* plugin-owned; NULL on success */
} molt_unlock_result;

/* Host-provided completion: call exactly once per operation, from any thread, with the call_context
 * the operation got (as are the other `_done` functions). */
typedef void (*molt_try_lock_done)(void *call_context, const molt_try_lock_result *result);
typedef void (*molt_unlock_done)(void *call_context, const molt_unlock_result *result);

/* Required: for kind "lock". Threads: see "Operations" above. */
typedef void (*molt_lock_try_lock_fn)(molt_instance instance, const molt_lock_request *request,
                                      molt_try_lock_done done, void *call_context);
typedef void (*molt_lock_unlock_fn)(molt_instance instance, const molt_lock_request *request,
                                    molt_unlock_done done, void *call_context);

/* --- kind "state": Dapr's state store semantics --- */

typedef int32_t molt_concurrency;
#define MOLT_CONCURRENCY_UNSPECIFIED 0 /* the store's default (last-write) */
#define MOLT_CONCURRENCY_FIRST_WRITE 1 /* a write needs the current etag (or, without one, a new key) */
#define MOLT_CONCURRENCY_LAST_WRITE 2

typedef int32_t molt_consistency;
#define MOLT_CONSISTENCY_UNSPECIFIED 0
#define MOLT_CONSISTENCY_EVENTUAL 1
#define MOLT_CONSISTENCY_STRONG 2

typedef struct molt_bytes {
    const uint8_t *data; /* borrowed per the rules of the struct holding it; may be NULL if length 0 */
    size_t length;
} molt_bytes;

/* Requests: host-owned, valid (with everything they point to) until `done` is called. Results:
 * plugin-owned, valid until `done` returns. */
typedef struct molt_state_get_request {
    uint32_t struct_size;
    const char *key;
    molt_consistency consistency;
    uint32_t metadata_count;
    const molt_kv *metadata; /* Dapr request metadata, e.g. contentType */
} molt_state_get_request;

typedef struct molt_state_get_result {
    uint32_t struct_size;
    molt_status status;
    bool found;              /* false with MOLT_OK: the key does not exist (not an error) */
    molt_bytes value;
    const char *etag;        /* NULL when the store has none */
    uint32_t metadata_count;
    const molt_kv *metadata; /* response metadata, e.g. ttlExpireTime */
    const char *message;
} molt_state_get_result;

typedef struct molt_state_set_request {
    uint32_t struct_size;
    const char *key;
    molt_bytes value;
    const char *etag;             /* NULL: no etag given */
    molt_concurrency concurrency;
    molt_consistency consistency;
    bool has_ttl;                 /* false: the component's default TTL applies */
    int64_t ttl_in_seconds;       /* with has_ttl: > 0 expires after that many seconds, -1 never */
    uint32_t metadata_count;
    const molt_kv *metadata;
} molt_state_set_request;

typedef struct molt_state_delete_request {
    uint32_t struct_size;
    const char *key;
    const char *etag; /* NULL: no etag given */
    molt_concurrency concurrency;
    molt_consistency consistency;
    uint32_t metadata_count;
    const molt_kv *metadata;
} molt_state_delete_request;

/* Result of set, delete and transact. */
typedef struct molt_state_write_result {
    uint32_t struct_size;
    molt_status status;
    const char *message;
} molt_state_write_result;

typedef struct molt_state_bulk_get_request {
    uint32_t struct_size;
    uint32_t key_count;
    const char *const *keys;
    uint32_t parallelism; /* 0: the plugin's choice */
    uint32_t metadata_count;
    const molt_kv *metadata;
} molt_state_bulk_get_request;

typedef struct molt_state_bulk_item {
    const char *key;
    bool found;
    molt_bytes value;
    const char *etag;  /* NULL when none */
    const char *error; /* NULL, or why this key could not be read (the others still count) */
} molt_state_bulk_item;

typedef struct molt_state_bulk_get_result {
    uint32_t struct_size;
    molt_status status; /* not MOLT_OK: the whole call failed and items are ignored */
    const char *message;
    uint32_t item_count; /* one item per requested key, in request order */
    const molt_state_bulk_item *items;
} molt_state_bulk_get_result;

typedef int32_t molt_state_operation_type;
#define MOLT_STATE_OPERATION_SET 1
#define MOLT_STATE_OPERATION_DELETE 2

typedef struct molt_state_operation {
    molt_state_operation_type type;
    const molt_state_set_request *set_request;       /* non-NULL exactly when type is SET */
    const molt_state_delete_request *delete_request; /* non-NULL exactly when type is DELETE */
} molt_state_operation;

/* All operations apply atomically, or none does (then status says why). */
typedef struct molt_state_transact_request {
    uint32_t struct_size;
    uint32_t operation_count;
    const molt_state_operation *operations;
    uint32_t metadata_count;
    const molt_kv *metadata;
} molt_state_transact_request;

typedef void (*molt_state_get_done)(void *call_context, const molt_state_get_result *result);
typedef void (*molt_state_bulk_get_done)(void *call_context, const molt_state_bulk_get_result *result);
typedef void (*molt_state_write_done)(void *call_context, const molt_state_write_result *result);

/* Required: get, set and delete for kind "state"; bulk_get no (absent: the host issues gets); transact
 * no (absent: transactions answer unsupported). Threads: see "Operations" above. */
typedef void (*molt_state_get_fn)(molt_instance instance, const molt_state_get_request *request,
                                  molt_state_get_done done, void *call_context);
typedef void (*molt_state_bulk_get_fn)(molt_instance instance, const molt_state_bulk_get_request *request,
                                       molt_state_bulk_get_done done, void *call_context);
typedef void (*molt_state_set_fn)(molt_instance instance, const molt_state_set_request *request,
                                  molt_state_write_done done, void *call_context);
typedef void (*molt_state_delete_fn)(molt_instance instance, const molt_state_delete_request *request,
                                     molt_state_write_done done, void *call_context);
typedef void (*molt_state_transact_fn)(molt_instance instance, const molt_state_transact_request *request,
                                       molt_state_write_done done, void *call_context);

/* --- kind "secretstore" (ABI 1.3): Dapr's secret store semantics --- */

/* A secret is one or more named values. A store of plain key/value secrets answers each key with one
 * value named as the key itself (Dapr: {"db-password": "..."}); a multi-valued secret (a nested object
 * in a secrets file, a Kubernetes secret) answers every value under it. Other components reference a
 * secret's value by (secret, value name) in their config (secretKeyRef): the host reads it with
 * molt_secret_get, and again when the plugin reports a change (host service `changed`) or at the
 * poll interval, and re-applies the components whose value changed. Values are secrets: never log
 * them, and keep them out of messages. */

/* Host-owned, valid until `done` is called. */
typedef struct molt_secret_request {
    uint32_t struct_size;
    const char *key;         /* get: the secret's name (never NULL, never empty); bulk_get: NULL */
    uint32_t metadata_count;
    const molt_kv *metadata; /* Dapr request metadata (e.g. version_id), passed through */
} molt_secret_request;

/* One secret in a result. Frozen (array element). */
typedef struct molt_secret {
    const char *key;         /* the secret's name */
    uint32_t value_count;    /* at least 1 */
    const molt_kv *values;   /* its values by name; names unique within the secret */
} molt_secret;

/* Plugin-owned, valid until `done` returns. get: on MOLT_OK exactly one secret, the one asked for; a
 * missing secret is MOLT_ERR_NOT_FOUND (the app gets Dapr's error, not an empty answer). bulk_get:
 * every secret the store holds (zero is fine). */
typedef struct molt_secret_result {
    uint32_t struct_size;
    molt_status status;
    const char *message;     /* NULL on success; never include a secret's value */
    uint32_t secret_count;
    const molt_secret *secrets;
} molt_secret_result;

typedef void (*molt_secret_done)(void *call_context, const molt_secret_result *result);

/* Required: get for kind "secretstore"; bulk_get no (absent: GetBulkSecret answers unsupported).
 * Threads: see "Operations" above. The host also calls get on threads of its own (resolving and
 * watching references), while init of another component waits for the answer: answer promptly. */
typedef void (*molt_secret_get_fn)(molt_instance instance, const molt_secret_request *request,
                                   molt_secret_done done, void *call_context);
typedef void (*molt_secret_bulk_get_fn)(molt_instance instance, const molt_secret_request *request,
                                        molt_secret_done done, void *call_context);

/* --- kind "configuration" (ABI 1.3): Dapr's configuration store semantics --- */

/* Items are (key, value, version, metadata). Apps read them (GetConfiguration) and subscribe to them
 * (SubscribeConfiguration): the host keeps the subscriptions, reads the subscribed keys again when
 * the plugin reports a change (host service `changed`) or at the component's pollInterval, and
 * sends apps the items whose value or version changed (a deleted item: value "" and version ""). */

/* Host-owned, valid until `done` is called. */
typedef struct molt_configuration_request {
    uint32_t struct_size;
    uint32_t key_count;          /* 0: every item the store holds */
    const char *const *keys;     /* key_count keys, none NULL or empty */
    uint32_t metadata_count;
    const molt_kv *metadata;     /* Dapr request metadata, passed through */
} molt_configuration_request;

/* One item in a result. Frozen (array element). */
typedef struct molt_configuration_item {
    const char *key;
    const char *value;           /* never NULL ("" is a value) */
    const char *version;         /* NULL or "" when the store keeps none; changes with every write when it does */
    uint32_t metadata_count;
    const molt_kv *metadata;
} molt_configuration_item;

/* Plugin-owned, valid until `done` returns. A key asked for that does not exist is left out (not an
 * error); a key answered twice, or one not asked for, is refused by the host. */
typedef struct molt_configuration_result {
    uint32_t struct_size;
    molt_status status;
    const char *message;         /* NULL on success */
    uint32_t item_count;
    const molt_configuration_item *items;
} molt_configuration_result;

typedef void (*molt_configuration_done)(void *call_context, const molt_configuration_result *result);

/* Required: for kind "configuration". Threads: see "Operations" above; the host also calls it on
 * threads of its own (subscriptions). */
typedef void (*molt_configuration_get_fn)(molt_instance instance, const molt_configuration_request *request,
                                          molt_configuration_done done, void *call_context);

/* --- kind "pubsub" (ABI 1.3): Dapr's publish/subscribe semantics --- */

/* Publishing: `publish` completes once the broker holds the message (an in-memory broker: once it is
 * queued). Subscribing: the host subscribes an instance to a topic and gives it a sink; the plugin hands
 * each message to the host through the sink, the host answers each delivery exactly once with
 * molt_pubsub_ack, and the plugin removes the message (ACK, DROP) or delivers it again later (RETRY, or
 * no answer before the subscription ends: redelivery is the plugin's, after its own delay). Delivery is
 * at least once: a message may come again after a reload. The host bounds what it takes: `deliver`
 * answers false when the subscription's window (max_in_flight) is full or the subscription is ending;
 * the plugin keeps the message and tries again after its next ack.
 *
 * Hot reload. When a component is reloaded or swapped, the host unsubscribes the old instance (after
 * unsubscribe returns, no deliver follows), lets its deliveries in flight be answered (bounded by the
 * drain timeout), hands its state over when the plugin transfers state (an in-memory broker: queued and
 * unanswered messages travel in the export, and come again from the new instance), then subscribes the
 * new instance. A broker-backed plugin resumes from the broker (a consumer group: the new instance
 * reclaims what the old one left pending). Publishes never wait for this: they go to whichever
 * generation serves. */

/* Host-owned, valid until `done` is called. */
typedef struct molt_pubsub_publish_request {
    uint32_t struct_size;
    const char *topic;           /* never NULL or empty */
    molt_bytes data;             /* what subscribers get: a CloudEvent (JSON) unless the app published raw */
    const char *content_type;    /* of `data`, e.g. "application/cloudevents+json" */
    uint32_t metadata_count;
    const molt_kv *metadata;     /* Dapr request metadata (e.g. ttlInSeconds), passed through */
} molt_pubsub_publish_request;

/* Plugin-owned, valid until `done` returns. */
typedef struct molt_pubsub_publish_result {
    uint32_t struct_size;
    molt_status status;
    const char *message;         /* NULL on success */
} molt_pubsub_publish_result;

typedef void (*molt_pubsub_publish_done)(void *call_context, const molt_pubsub_publish_result *result);

/* A message handed to the host. Plugin-owned, valid during `deliver` only (the host copies it). */
typedef struct molt_pubsub_message {
    uint32_t struct_size;
    const char *topic;
    molt_bytes data;
    const char *content_type;    /* NULL: as published */
    uint32_t metadata_count;
    const molt_kv *metadata;
    uint64_t delivery;           /* the plugin's id of this delivery, unique within the subscription until answered */
} molt_pubsub_message;

/* Host-owned; valid from subscribe until unsubscribe returns. */
typedef struct molt_pubsub_sink {
    void *host_subscription;     /* opaque; pass it back to deliver */
    /* Hands one message to the host; true: taken (an ack follows, possibly before deliver returns, on
     * any thread); false: not taken (window full, or the subscription ending): keep it, try again after
     * the next ack (or after a short delay). Any plugin thread; never from within molt_pubsub_ack. */
    bool (*deliver)(void *host_subscription, const molt_pubsub_message *message);
} molt_pubsub_sink;

/* Host-owned, valid during the call. */
typedef struct molt_pubsub_subscribe_request {
    uint32_t struct_size;
    const char *topic;
    uint32_t metadata_count;
    const molt_kv *metadata;     /* the subscription's metadata (Dapr's, e.g. consumerID), passed through */
    uint32_t max_in_flight;      /* deliveries the host holds unanswered at most (>= 1) */
} molt_pubsub_subscribe_request;

typedef int32_t molt_pubsub_outcome;
#define MOLT_PUBSUB_ACK 0    /* processed: remove it */
#define MOLT_PUBSUB_RETRY 1  /* not processed now: deliver it again later */
#define MOLT_PUBSUB_DROP 2   /* never to be processed (the host dead-lettered it if asked to): remove it */

/* Required: for kind "pubsub". Threads: see "Operations" above. */
typedef void (*molt_pubsub_publish_fn)(molt_instance instance, const molt_pubsub_publish_request *request,
                                       molt_pubsub_publish_done done, void *call_context);
/* Required: for kind "pubsub". Starts delivering `topic`'s messages to `sink` and writes the
 * subscription's id (the plugin's, non-zero) to *subscription_out. At most one subscription per topic
 * per instance. Called on a host thread of its own (it may block briefly, e.g. to create a consumer
 * group); never on an event loop. */
typedef molt_status (*molt_pubsub_subscribe_fn)(molt_instance instance, const molt_pubsub_subscribe_request *request,
                                                const molt_pubsub_sink *sink, uint64_t *subscription_out,
                                                molt_message *error_out);
/* Required: for kind "pubsub". The host's answer to one delivery; exactly once per delivery taken,
 * also after unsubscribe (until destroy). Any thread, never blocks; an unknown delivery is ignored. */
typedef void (*molt_pubsub_ack_fn)(molt_instance instance, uint64_t subscription, uint64_t delivery,
                                   molt_pubsub_outcome outcome);
/* Required: for kind "pubsub". Stops the subscription: when it returns, `deliver` is not called for it
 * again and the sink is no longer used. Unanswered deliveries stay the plugin's (answered later, or
 * delivered again). On a host thread of its own. */
typedef molt_status (*molt_pubsub_unsubscribe_fn)(molt_instance instance, uint64_t subscription, molt_message *error_out);

/* ---------------------------------------------------------------------------------------------
 * Declared operations (ABI 1.2): plain C functions an app calls by name.
 *
 * Any kind may declare operations, and kind "binding" has nothing else. Apps call them through Dapr's
 * output bindings API (gRPC InvokeBinding, HTTP POST /v1.0/bindings/{component}) with the operation's
 * name and a JSON object of named arguments as data; the answer's data is a JSON object of the named
 * results. The host reads the declarations once, at load, and checks each against the library (its
 * symbol is exported, names are valid and unique, every type is a MOLT_TYPE_*, at most
 * MOLT_OPERATION_MAX_FIELDS parameters and results): a bad declaration refuses the plugin, naming the
 * operation and the field. It prepares each call then (libffi), so an app's call costs one indirect
 * call and no parsing of the declaration.
 *
 * An operation is a C function of this shape (the first argument is the instance, the last the message):
 *
 *     molt_status SYMBOL(molt_instance instance, <each parameter, in order>,
 *                        <a pointer to each result, in order>, molt_message *error_out);
 *
 *   type               parameter                          result (host-owned out-pointer, zeroed before the call)
 *   MOLT_TYPE_INT64    int64_t                            int64_t *
 *   MOLT_TYPE_DOUBLE   double                             double *  (finite: NaN and infinities are refused)
 *   MOLT_TYPE_BOOL     bool                               bool *
 *   MOLT_TYPE_STRING   const char *: NUL-terminated UTF-8 char **: a string the plugin allocated with
 *                      without NUL inside, never NULL      malloc(), valid UTF-8; the host frees it with
 *                                                         free(). Left NULL, the call fails.
 *   MOLT_TYPE_BYTES    const uint8_t *, size_t            uint8_t **, size_t *: malloc()ed by the plugin,
 *                      (two arguments; data may be NULL    freed by the host with free(); NULL with
 *                      when the length is 0)               length 0 is empty.
 *
 * Parameters are host-owned and valid during the call only. Return MOLT_OK with every result set, or
 * an error status with a message (molt_message_set): the app gets the status mapped as for any
 * operation, and your message; results of a failed call are freed and otherwise ignored.
 *
 * Threads: an operation without MOLT_OPERATION_BLOCKING is called where the app's call is served,
 * usually on one of the host's event loops, concurrently with other calls on the same instance: it
 * must be thread-safe and return quickly (no waiting for I/O, locks held long, or sleeping). Declare
 * MOLT_OPERATION_BLOCKING when it may wait (disk, a synchronous client): the host then calls it on a
 * worker thread. Either way the instance stays alive for the call (it is leased like any operation),
 * and never runs an operation during export_state, import_state or destroy.
 *
 * The values form (MOLT_OPERATION_VALUES, what PluginKit generates for Swift methods): the function is
 *
 *     molt_status SYMBOL(molt_instance instance, const molt_value *parameters, molt_value *results,
 *                        molt_message *error_out);
 *
 * with one molt_value per declared parameter and result, in order, types as declared (the host sets
 * each result's type and zeroes the rest before the call); ownership as above.
 *
 * Versions: a new version of a plugin may add operations; removing one, or changing its parameters or
 * results, is refused when a component swaps to it, unless the apply explicitly accepts it.
 */
typedef int32_t molt_type;
#define MOLT_TYPE_INT64 1
#define MOLT_TYPE_DOUBLE 2
#define MOLT_TYPE_BOOL 3
#define MOLT_TYPE_STRING 4
#define MOLT_TYPE_BYTES 5

#define MOLT_OPERATION_MAX_FIELDS 16

/* A parameter or a result. Array element: frozen for the whole major version. */
typedef struct molt_operation_field {
    const char *name;        /* [a-z][A-Za-z0-9_]{0,63}; unique among the operation's parameters and results */
    molt_type type;          /* MOLT_TYPE_* */
    const char *description; /* one line, or NULL */
} molt_operation_field;

#define MOLT_OPERATION_BLOCKING 0x1u /* may wait: the host calls it on a worker thread */
#define MOLT_OPERATION_VALUES 0x2u   /* the function takes molt_value arrays (see above) */

/* One operation. Array element: frozen for the whole major version. */
typedef struct molt_operation {
    const char *name;        /* [a-z][a-z0-9_-]{0,63}, unique in the plugin: what apps call */
    const char *description; /* one line for operators and `molt plugin inspect` */
    const char *symbol;      /* the exported function the host calls (MOLT_EXPORT it) */
    uint32_t flags;          /* MOLT_OPERATION_*, or-ed; undefined bits must be 0 */
    uint32_t parameter_count;
    const molt_operation_field *parameters; /* parameter_count entries (NULL when 0) */
    uint32_t result_count;
    const molt_operation_field *results;    /* result_count entries (NULL when 0) */
} molt_operation;

/* One argument or result in the values form. Array element: frozen for the whole major version. */
typedef struct molt_value {
    molt_type type;
    union {
        int64_t int64;
        double float64;
        bool boolean;
        const char *string; /* parameters: host-owned; results: malloc()ed by the plugin, freed by the host */
        molt_bytes bytes;   /* the same ownership as `string` */
    } as;
} molt_value;

/* Required: no (kind "binding": yes, with at least one operation). ABI 1.2. Returns the static array
 * of declared operations (plugin-owned, valid while the library is loaded) and writes its length to
 * *count_out (host-owned). Called at load time, on any host thread; must not depend on any instance. */
typedef const molt_operation *(*molt_plugin_operations_fn)(uint32_t *count_out);

/* ---------------------------------------------------------------------------------------------
 * Symbol names, as the host looks them up.
 * ------------------------------------------------------------------------------------------- */
#define MOLT_SYMBOL_ABI_VERSION "molt_abi_version"
#define MOLT_SYMBOL_PLUGIN_INFO "molt_plugin_info"
#define MOLT_SYMBOL_PLUGIN_CONFIG_KEYS "molt_plugin_config_keys"
#define MOLT_SYMBOL_PLUGIN_INIT "molt_plugin_init"
#define MOLT_SYMBOL_PLUGIN_READINESS "molt_plugin_readiness"
#define MOLT_SYMBOL_PLUGIN_DESTROY "molt_plugin_destroy"
#define MOLT_SYMBOL_PLUGIN_APPLY_CONFIG "molt_plugin_apply_config"
#define MOLT_SYMBOL_PLUGIN_EXPORT_STATE "molt_plugin_export_state"
#define MOLT_SYMBOL_PLUGIN_IMPORT_STATE "molt_plugin_import_state"
#define MOLT_SYMBOL_LOCK_TRY_LOCK "molt_lock_try_lock"
#define MOLT_SYMBOL_LOCK_UNLOCK "molt_lock_unlock"
#define MOLT_SYMBOL_STATE_GET "molt_state_get"
#define MOLT_SYMBOL_STATE_BULK_GET "molt_state_bulk_get"
#define MOLT_SYMBOL_STATE_SET "molt_state_set"
#define MOLT_SYMBOL_STATE_DELETE "molt_state_delete"
#define MOLT_SYMBOL_STATE_TRANSACT "molt_state_transact"
#define MOLT_SYMBOL_PLUGIN_OPERATIONS "molt_plugin_operations"
#define MOLT_SYMBOL_SECRET_GET "molt_secret_get"
#define MOLT_SYMBOL_SECRET_BULK_GET "molt_secret_bulk_get"
#define MOLT_SYMBOL_CONFIGURATION_GET "molt_configuration_get"
#define MOLT_SYMBOL_PUBSUB_PUBLISH "molt_pubsub_publish"
#define MOLT_SYMBOL_PUBSUB_SUBSCRIBE "molt_pubsub_subscribe"
#define MOLT_SYMBOL_PUBSUB_ACK "molt_pubsub_ack"
#define MOLT_SYMBOL_PUBSUB_UNSUBSCRIBE "molt_pubsub_unsubscribe"

/* ---------------------------------------------------------------------------------------------
 * Prototypes of everything a plugin may export, so that the compiler checks each definition against
 * the contract: a wrong signature is a "conflicting types" error, and each is exported (MOLT_EXPORT)
 * even under -fvisibility=hidden. Define only the ones you need (Required: see each `_fn` typedef).
 * Hidden from Swift's importer (which defines __swift__): PluginKit defines these names with @_cdecl.
 * ------------------------------------------------------------------------------------------- */
#if !defined(__swift__)
MOLT_EXPORT void molt_abi_version(uint32_t *major_out, uint32_t *minor_out);
MOLT_EXPORT const molt_plugin_identity *molt_plugin_info(void);
MOLT_EXPORT const molt_config_key *molt_plugin_config_keys(uint32_t *count_out);
MOLT_EXPORT molt_status molt_plugin_init(const molt_config *config, const molt_host_services *host,
                                         molt_instance *instance_out, molt_message *error_out);
MOLT_EXPORT molt_readiness molt_plugin_readiness(molt_instance instance, molt_message *message_out);
MOLT_EXPORT void molt_plugin_destroy(molt_instance instance);
MOLT_EXPORT molt_apply_outcome molt_plugin_apply_config(molt_instance instance, const molt_config *config,
                                                        molt_message *message_out);
MOLT_EXPORT molt_status molt_plugin_export_state(molt_instance instance, uint32_t format, molt_bytes_sink sink,
                                                 void *sink_context, molt_message *message_out);
MOLT_EXPORT molt_status molt_plugin_import_state(molt_instance instance, uint32_t format, const void *bytes,
                                                 size_t length, molt_message *message_out);
MOLT_EXPORT void molt_lock_try_lock(molt_instance instance, const molt_lock_request *request,
                                    molt_try_lock_done done, void *call_context);
MOLT_EXPORT void molt_lock_unlock(molt_instance instance, const molt_lock_request *request,
                                  molt_unlock_done done, void *call_context);
MOLT_EXPORT void molt_state_get(molt_instance instance, const molt_state_get_request *request,
                                molt_state_get_done done, void *call_context);
MOLT_EXPORT void molt_state_bulk_get(molt_instance instance, const molt_state_bulk_get_request *request,
                                     molt_state_bulk_get_done done, void *call_context);
MOLT_EXPORT void molt_state_set(molt_instance instance, const molt_state_set_request *request,
                                molt_state_write_done done, void *call_context);
MOLT_EXPORT void molt_state_delete(molt_instance instance, const molt_state_delete_request *request,
                                   molt_state_write_done done, void *call_context);
MOLT_EXPORT void molt_state_transact(molt_instance instance, const molt_state_transact_request *request,
                                     molt_state_write_done done, void *call_context);
MOLT_EXPORT const molt_operation *molt_plugin_operations(uint32_t *count_out);
MOLT_EXPORT void molt_secret_get(molt_instance instance, const molt_secret_request *request,
                                 molt_secret_done done, void *call_context);
MOLT_EXPORT void molt_secret_bulk_get(molt_instance instance, const molt_secret_request *request,
                                      molt_secret_done done, void *call_context);
MOLT_EXPORT void molt_configuration_get(molt_instance instance, const molt_configuration_request *request,
                                        molt_configuration_done done, void *call_context);
MOLT_EXPORT void molt_pubsub_publish(molt_instance instance, const molt_pubsub_publish_request *request,
                                     molt_pubsub_publish_done done, void *call_context);
MOLT_EXPORT molt_status molt_pubsub_subscribe(molt_instance instance, const molt_pubsub_subscribe_request *request,
                                              const molt_pubsub_sink *sink, uint64_t *subscription_out,
                                              molt_message *error_out);
MOLT_EXPORT void molt_pubsub_ack(molt_instance instance, uint64_t subscription, uint64_t delivery,
                                 molt_pubsub_outcome outcome);
MOLT_EXPORT molt_status molt_pubsub_unsubscribe(molt_instance instance, uint64_t subscription, molt_message *error_out);
#endif /* !__swift__ */

/* For C plugins: defines molt_abi_version() reporting the version of this header. */
#define MOLT_DEFINE_ABI_VERSION()                                                      \
    MOLT_EXPORT void molt_abi_version(uint32_t *major_out, uint32_t *minor_out) {      \
        *major_out = MOLT_ABI_VERSION_MAJOR;                                           \
        *minor_out = MOLT_ABI_VERSION_MINOR;                                           \
    }

#ifdef __cplusplus
}
#endif

#endif /* MOLT_PLUGIN_H */
