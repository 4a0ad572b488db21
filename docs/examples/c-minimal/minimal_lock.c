/* minimal_lock.c: a complete molt lock plugin in plain C (README.md: how to build and load it).
 * Per instance: 16 locks, names up to 63 bytes, one mutex. An example, not a production lock. */
#include <molt_plugin.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct { char resource[64], owner[64]; time_t expires; } slot; /* free once expires <= now */
typedef struct { pthread_mutex_t mu; slot slots[16]; } table;

static const molt_plugin_identity info = {sizeof info, "minimal-lock", "1.0.0", MOLT_KIND_LOCK, "16 in-memory locks", 0, 0,
                                           MOLT_PLUGIN_HOLDS_STATE}; /* locks live only here, no transfer */
MOLT_DEFINE_ABI_VERSION()
MOLT_EXPORT const molt_plugin_identity *molt_plugin_info(void) { return &info; }

MOLT_EXPORT molt_status molt_plugin_init(const molt_config *config, const molt_host_services *host,
                                         molt_instance *out, molt_message *error) {
    (void)config; (void)host; /* no settings, no logging */
    table *t = calloc(1, sizeof *t);
    if (!t) { molt_message_set(error, "minimal-lock: out of memory"); return MOLT_ERR_INTERNAL; }
    pthread_mutex_init(&t->mu, NULL);
    *out = t;
    return MOLT_OK;
}
MOLT_EXPORT molt_readiness molt_plugin_readiness(molt_instance i, molt_message *m) { (void)i; (void)m; return MOLT_READY; }
MOLT_EXPORT void molt_plugin_destroy(molt_instance i) { pthread_mutex_destroy(&((table *)i)->mu); free(i); }

/* Why the request is unusable, or NULL. */
static const char *invalid(const molt_lock_request *r, bool needs_expiry) {
    if (!r->resource_id || !*r->resource_id || strlen(r->resource_id) > 63) return "resource_id needs 1-63 bytes";
    if (!r->lock_owner || !*r->lock_owner || strlen(r->lock_owner) > 63) return "lock_owner needs 1-63 bytes";
    return needs_expiry && r->expiry_in_seconds <= 0 ? "expiry_in_seconds must be > 0" : NULL;
}

/* The slot with an unexpired lock on `resource`, else NULL. The caller holds t->mu. */
static slot *held(table *t, const char *resource, time_t now) {
    for (int k = 0; k < 16; k++)
        if (t->slots[k].expires > now && strcmp(t->slots[k].resource, resource) == 0) return &t->slots[k];
    return NULL;
}

MOLT_EXPORT void molt_lock_try_lock(molt_instance i, const molt_lock_request *r, molt_try_lock_done done, void *ctx) {
    table *t = i;
    molt_try_lock_result res = {sizeof res, MOLT_OK, false, invalid(r, true)};
    if (res.message) { res.status = MOLT_ERR_INVALID_ARGUMENT; done(ctx, &res); return; }
    time_t now = time(NULL);
    pthread_mutex_lock(&t->mu);
    if (!held(t, r->resource_id, now)) { /* free, or expired (free for anyone): take a free slot */
        for (int k = 0; k < 16 && !res.acquired; k++) {
            slot *s = &t->slots[k];
            if (s->expires > now) continue;
            strcpy(s->resource, r->resource_id);
            strcpy(s->owner, r->lock_owner);
            s->expires = now + r->expiry_in_seconds + 1; /* whole seconds: round up, never expire early */
            res.acquired = true;
        }
        if (!res.acquired) { res.status = MOLT_ERR_UNAVAILABLE; res.message = "all 16 locks are held"; }
    }
    pthread_mutex_unlock(&t->mu);
    done(ctx, &res); /* inline completion; res only has to live until done returns */
}

MOLT_EXPORT void molt_lock_unlock(molt_instance i, const molt_lock_request *r, molt_unlock_done done, void *ctx) {
    table *t = i;
    molt_unlock_result res = {sizeof res, MOLT_OK, MOLT_UNLOCK_LOCK_DOES_NOT_EXIST, invalid(r, false)};
    if (res.message) { res.status = MOLT_ERR_INVALID_ARGUMENT; done(ctx, &res); return; }
    pthread_mutex_lock(&t->mu);
    slot *s = held(t, r->resource_id, time(NULL));
    if (s && strcmp(s->owner, r->lock_owner) == 0) { s->expires = 0; res.unlock_status = MOLT_UNLOCK_SUCCESS; }
    else if (s) res.unlock_status = MOLT_UNLOCK_LOCK_BELONGS_TO_OTHERS;
    pthread_mutex_unlock(&t->mu);
    done(ctx, &res);
}
