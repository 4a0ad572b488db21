/*
 * secrets_file.c: reads secretsFile and turns it into a table (secret_table.c).
 *
 * The file must be a regular file of at most LF_MAX_FILE_BYTES holding one JSON object (UTF-8; no
 * \u0000 in strings; a key given twice keeps its last value, as Go's encoding/json does for Dapr).
 * Refusals name the file and, for malformed JSON, the line and column. jansson's own error text quotes
 * the token it stopped at, which may be part of a secret, so messages use a fixed description of its
 * error code instead.
 */
#include "local_file.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *lf_parse_error(const json_error_t *error) {
    switch (json_error_code(error)) {
    case json_error_out_of_memory: return "out of memory";
    case json_error_stack_overflow: return "nested too deeply";
    case json_error_invalid_utf8: return "invalid UTF-8";
    case json_error_premature_end_of_input: return "unexpected end of input";
    case json_error_end_of_input_expected: return "text after the top-level value";
    case json_error_invalid_syntax: return "invalid syntax";
    case json_error_null_character: return "a \\u0000 in a string";
    case json_error_null_byte_in_key: return "a \\u0000 in a key";
    case json_error_numeric_overflow: return "a number out of range";
    default: return "malformed JSON";
    }
}

/* The file's bytes (NUL-terminated, length in *length_out), or NULL with `why`. Opened O_NONBLOCK so that a
 * FIFO in its place cannot block; anything but a regular file is refused. */
static char *lf_read(const char *path, size_t *length_out, char *why, size_t why_size) {
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        snprintf(why, why_size, "cannot open secretsFile %s: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    char *bytes = NULL;
    size_t length = 0;
    if (fstat(fd, &st) != 0) {
        snprintf(why, why_size, "cannot stat secretsFile %s: %s", path, strerror(errno));
        goto fail;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(why, why_size, "secretsFile %s is not a regular file", path);
        goto fail;
    }
    if (st.st_size > (off_t)LF_MAX_FILE_BYTES) goto too_large;
    bytes = malloc(LF_MAX_FILE_BYTES + 2); /* room to notice growth past the limit since fstat */
    if (bytes == NULL) {
        snprintf(why, why_size, "out of memory reading secretsFile %s", path);
        goto fail;
    }
    for (;;) {
        ssize_t n = read(fd, bytes + length, LF_MAX_FILE_BYTES + 1 - length);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            snprintf(why, why_size, "cannot read secretsFile %s: %s", path, strerror(errno));
            goto fail;
        }
        if (n == 0) break;
        length += (size_t)n;
        if (length > LF_MAX_FILE_BYTES) goto too_large;
    }
    close(fd);
    bytes[length] = '\0';
    *length_out = length;
    return bytes;

too_large:
    snprintf(why, why_size, "secretsFile %s is larger than the limit of 4 MiB (%u bytes)", path, LF_MAX_FILE_BYTES);
fail:
    free(bytes);
    close(fd);
    return NULL;
}

bool lf_load(const lf_settings *settings, lf_table **out, char *why, size_t why_size) {
    size_t length = 0;
    char *bytes = lf_read(settings->path, &length, why, why_size);
    if (bytes == NULL) return false;
    json_error_t error;
    json_t *root = json_loadb(bytes, length, JSON_DECODE_ANY, &error);
    free(bytes);
    if (root == NULL) {
        snprintf(why, why_size, "secretsFile %s: malformed JSON at line %d, column %d: %s", settings->path,
                 error.line, error.column, lf_parse_error(&error));
        return false;
    }
    bool ok = false;
    if (!json_is_object(root)) {
        static const char *const types[] = {"an object", "an array", "a string", "a number", "a number",
                                            "true", "false", "null"};
        snprintf(why, why_size, "secretsFile %s: the top level is %s; it must be a JSON object", settings->path,
                 types[json_typeof(root)]);
    } else {
        char reason[512];
        ok = lf_table_build(root, settings, out, reason, sizeof reason);
        if (!ok) snprintf(why, why_size, "secretsFile %s: %s", settings->path, reason);
    }
    json_decref(root);
    return ok;
}
