/*
 * command_thread.c: the instance's command thread and its connection; publish.
 *
 * Threads. molt_pubsub_publish and molt_pubsub_ack run on host threads (event loops): they build a job
 * (a Redis command) and enqueue it under the mutex, nothing more. On a host with ABI 1.1 I/O a publish
 * goes out on the host's loops instead (loop_publish.c): the command thread then runs XACKs only. The command thread alone owns
 * in->command (its blocking connection) and runs the jobs in FIFO order, without the mutex; a publish's
 * `done` is called from there. destroy stops the thread after it ran every job still queued (acks
 * answered after unsubscribe included), so no job is lost and every `done` comes.
 *
 * Failures. A lost connection is reopened for the next job; a reconnect that fails makes the jobs of
 * the next RS_RECONNECT_BACKOFF_MS fail at once (UNAVAILABLE, naming the host) instead of each waiting
 * for a dial timeout. A job that met a connection lost meanwhile (Redis restarted) is tried once more
 * on a new connection. A lost XACK is not retried: the entry stays pending and is delivered again
 * after processingTimeout (at least once).
 */
#include "redis_streams.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RS_NS_PER_MS 1000000LL

void rs_enqueue_locked(rs_instance *in, rs_job *job) {
    job->next = NULL;
    if (in->jobs_tail != NULL) in->jobs_tail->next = job;
    else in->jobs_head = job;
    in->jobs_tail = job;
    pthread_cond_signal(&in->jobs_ready);
}

static void rs_job_free(rs_job *job) {
    for (size_t i = 0; i < sizeof job->owned / sizeof job->owned[0]; i++) free(job->owned[i]);
    free(job);
}

static void rs_publish_done(molt_pubsub_publish_done done, void *call_context, molt_status status, const char *text) {
    molt_pubsub_publish_result result = {sizeof result, status, status == MOLT_OK ? NULL : text};
    done(call_context, &result);
}

/* Runs one job on the command connection, reconnecting when needed. Writes the outcome for a publish. */
static molt_status rs_run(rs_instance *in, rs_job *job, char *text, size_t size) {
    for (int attempt = 0; attempt < 2; attempt++) {
        if (in->command == NULL) {
            if (rs_monotonic_ns() < in->command_retry_after_ns) {
                snprintf(text, size, RS_NAME ": Redis at %s is unreachable (reconnecting)", in->settings.address);
                return MOLT_ERR_UNAVAILABLE;
            }
            in->command = rs_connect(&in->settings, text, size);
            if (in->command == NULL) {
                in->command_retry_after_ns = rs_monotonic_ns() + RS_RECONNECT_BACKOFF_MS * RS_NS_PER_MS;
                return MOLT_ERR_UNAVAILABLE;
            }
            attempt = 1; /* a fresh connection: no second try */
        }
        redisReply *r = redisCommandArgv(in->command, job->argc, job->argv, job->argvlen);
        if (r != NULL) {
            molt_status status = MOLT_OK;
            if (r->type == REDIS_REPLY_ERROR) {
                snprintf(text, size, RS_NAME ": Redis at %s refused %s on \"%.200s\": %.200s", in->settings.address,
                         job->argv[0], job->argv[1], r->str);
                status = MOLT_ERR_INTERNAL;
            }
            freeReplyObject(r);
            return status;
        }
        bool timeout = in->command->err == REDIS_ERR_IO && in->command->errstr[0] != '\0' &&
                       strstr(in->command->errstr, "temporarily unavailable") != NULL;
        snprintf(text, size, RS_NAME ": Redis at %s: %s on \"%.200s\" failed: %s", in->settings.address,
                 job->argv[0], job->argv[1], in->command->errstr);
        redisFree(in->command);
        in->command = NULL;
        if (timeout) return MOLT_ERR_TIMEOUT; /* it may have been applied: not repeated */
    }
    return MOLT_ERR_UNAVAILABLE;
}

static void *rs_command_main(void *argument) {
    rs_instance *in = argument;
    pthread_mutex_lock(&in->mu);
    for (;;) {
        rs_job *job = in->jobs_head;
        if (job == NULL) {
            if (in->stop_commands) break;
            pthread_cond_wait(&in->jobs_ready, &in->mu);
            continue;
        }
        in->jobs_head = job->next;
        if (in->jobs_head == NULL) in->jobs_tail = NULL;
        pthread_mutex_unlock(&in->mu);

        char text[512] = "";
        molt_status status = rs_run(in, job, text, sizeof text);
        if (job->done != NULL) {
            rs_publish_done(job->done, job->call_context, status, text);
        } else if (status != MOLT_OK) {
            molt_log(in->host, MOLT_LOG_WARNING, "%s; the entry stays pending and is delivered again after "
                                                 "processingTimeout", text);
        }
        rs_job_free(job);
        pthread_mutex_lock(&in->mu);
    }
    pthread_mutex_unlock(&in->mu);
    return NULL;
}

bool rs_commands_start(rs_instance *in, molt_message *error_out) {
    int rc = pthread_create(&in->command_thread, NULL, rs_command_main, in);
    if (rc != 0) {
        rs_text(error_out, RS_NAME ": cannot start the command thread: %s", strerror(rc));
        return false;
    }
    return true;
}

void rs_commands_stop(rs_instance *in) {
    pthread_mutex_lock(&in->mu);
    in->stop_commands = true;
    pthread_cond_signal(&in->jobs_ready);
    pthread_mutex_unlock(&in->mu);
    pthread_join(in->command_thread, NULL);
}

/* ---------------------------------------------------------------------------------------------
 * Publish: XADD topic [MAXLEN ~ n] * data <bytes> [contentType <type>] [metadata <json>]. The argv
 * points into the request (valid until `done`), except for the strings the job owns.
 * ------------------------------------------------------------------------------------------- */
MOLT_EXPORT void molt_pubsub_publish(molt_instance instance, const molt_pubsub_publish_request *request,
                                     molt_pubsub_publish_done done, void *call_context) {
    rs_instance *in = instance;
    if (request->topic == NULL || request->topic[0] == '\0') {
        rs_publish_done(done, call_context, MOLT_ERR_INVALID_ARGUMENT, RS_NAME ": publish needs a topic");
        return;
    }
    if (request->data.length > 0 && request->data.data == NULL) {
        rs_publish_done(done, call_context, MOLT_ERR_INVALID_ARGUMENT, RS_NAME ": publish data is NULL");
        return;
    }
    rs_job *job = calloc(1, sizeof *job);
    if (job == NULL) {
        rs_publish_done(done, call_context, MOLT_ERR_INTERNAL, RS_NAME ": out of memory");
        return;
    }
    int n = 0;
    job->argv[n] = "XADD"; job->argvlen[n++] = 4;
    job->argv[n] = request->topic; job->argvlen[n++] = strlen(request->topic);
    if (in->settings.max_len_approx > 0) {
        job->owned[0] = malloc(24);
        if (job->owned[0] == NULL) goto oom;
        snprintf(job->owned[0], 24, "%" PRId64, in->settings.max_len_approx);
        job->argv[n] = "MAXLEN"; job->argvlen[n++] = 6;
        job->argv[n] = "~"; job->argvlen[n++] = 1;
        job->argv[n] = job->owned[0]; job->argvlen[n++] = strlen(job->owned[0]);
    }
    job->argv[n] = "*"; job->argvlen[n++] = 1;
    job->argv[n] = "data"; job->argvlen[n++] = 4;
    job->argv[n] = request->data.length > 0 ? (const char *)request->data.data : "";
    job->argvlen[n++] = request->data.length;
    if (request->content_type != NULL && request->content_type[0] != '\0') {
        job->argv[n] = "contentType"; job->argvlen[n++] = 11;
        job->argv[n] = request->content_type; job->argvlen[n++] = strlen(request->content_type);
    }
    job->owned[1] = rs_metadata_json(request->metadata != NULL ? request->metadata_count : 0, request->metadata);
    if (job->owned[1] != NULL) {
        job->argv[n] = "metadata"; job->argvlen[n++] = 8;
        job->argv[n] = job->owned[1]; job->argvlen[n++] = strlen(job->owned[1]);
    }
    job->argc = n;
    if (rs_loop_submit(in, job, done, call_context)) { /* on the host's loops (ABI 1.1) */
        rs_job_free(job);
        return;
    }
    job->done = done;
    job->call_context = call_context;
    pthread_mutex_lock(&in->mu);
    rs_enqueue_locked(in, job);
    pthread_mutex_unlock(&in->mu);
    return;
oom:
    rs_job_free(job);
    rs_publish_done(done, call_context, MOLT_ERR_INTERNAL, RS_NAME ": out of memory");
}
