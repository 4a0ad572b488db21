/*
 * settings.c: the component's metadata, as Dapr's pubsub.redis names and reads it.
 *
 * Durations (processingTimeout, redeliverInterval, dialTimeout) are Go durations ("10s", "500ms",
 * "1m30s") or a plain number of milliseconds, as Dapr accepts them. Values are never echoed for
 * redisPassword; other bad values are named with their key.
 */
#include "redis_streams.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

/* Decimal digits only, no overflow, within [0, max]. */
static bool rs_parse_uint(const char *text, uint64_t max, uint64_t *out) {
    if (text == NULL || *text == '\0') return false;
    uint64_t value = 0;
    for (const char *p = text; *p; p++) {
        if (*p < '0' || *p > '9') return false;
        uint64_t digit = (uint64_t)(*p - '0');
        if (value > (UINT64_MAX - digit) / 10) return false;
        value = value * 10 + digit;
    }
    if (value > max) return false;
    *out = value;
    return true;
}

/* A Go duration (units h, m, s, ms, us, µs, ns; fractions allowed) or plain milliseconds, into ms. */
static bool rs_parse_duration_ms(const char *text, int64_t *out_ms) {
    uint64_t plain;
    if (rs_parse_uint(text, (uint64_t)INT64_MAX / 1000000, &plain)) {
        *out_ms = (int64_t)plain;
        return true;
    }
    static const struct { const char *unit; double ms; } units[] = {
        {"ns", 1e-6}, {"us", 1e-3}, {"\xc2\xb5s", 1e-3}, {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}};
    const char *p = text;
    double total = 0;
    if (p == NULL || *p == '\0') return false;
    if (strcmp(p, "0") == 0) { *out_ms = 0; return true; }
    while (*p) {
        char *end;
        if (!((*p >= '0' && *p <= '9') || *p == '.')) return false;
        double number = strtod(p, &end);
        if (end == p) return false;
        p = end;
        size_t best = 0;
        double factor = 0;
        for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
            size_t n = strlen(units[i].unit);
            /* the longest unit that matches ("ms" before "m") */
            if (strncmp(p, units[i].unit, n) == 0 && n > best) { best = n; factor = units[i].ms; }
        }
        if (best == 0) return false;
        p += best;
        total += number * factor;
        if (total > 1e15) return false;
    }
    *out_ms = (int64_t)(total + 0.5);
    return true;
}

static char *rs_strdup_or_null(const char *s) { return s != NULL && *s != '\0' ? strdup(s) : NULL; }

bool rs_settings_parse(const molt_config *config, rs_settings *out, molt_message *error_out) {
    memset(out, 0, sizeof *out);
    const char *value;
    const char *address = molt_config_get(config, "redisHost");
    if (address == NULL || *address == '\0') {
        rs_text(error_out, RS_NAME ": config key redisHost is required (host:port of the Redis server)");
        return false;
    }
    out->address = strdup(address);
    const char *colon = strrchr(address, ':');
    const char *host_start = address, *host_end = colon != NULL ? colon : address + strlen(address);
    if (*address == '[') { /* [v6]:port */
        const char *close = strchr(address, ']');
        if (close == NULL) goto bad_host;
        host_start = address + 1;
        host_end = close;
        colon = close[1] == ':' ? close + 1 : NULL;
    }
    uint64_t port = 6379;
    if (colon != NULL && !rs_parse_uint(colon + 1, 65535, &port)) goto bad_host;
    if (host_end == host_start || port == 0) goto bad_host;
    out->host = strndup(host_start, (size_t)(host_end - host_start));
    out->port = (int)port;

    out->username = rs_strdup_or_null(molt_config_get(config, "redisUsername"));
    out->password = rs_strdup_or_null(molt_config_get(config, "redisPassword"));

    uint64_t number;
    value = molt_config_get(config, "redisDB");
    if (value != NULL && *value != '\0') {
        if (!rs_parse_uint(value, 1000000, &number)) {
            rs_text(error_out, RS_NAME ": invalid value \"%.64s\" for config key redisDB: expected a database "
                               "number", value);
            goto fail;
        }
        out->db = (int)number;
    }

    value = molt_config_get(config, "consumerID");
    const char *component = config->struct_size >= offsetof(molt_config, component_name) + sizeof(char *)
                                ? config->component_name : NULL;
    if (value == NULL || *value == '\0') value = component;
    if (value == NULL || *value == '\0') {
        rs_text(error_out, RS_NAME ": config key consumerID is required (the consumer group's name) when the "
                           "component has no name");
        goto fail;
    }
    if (strlen(value) > 128) {
        rs_text(error_out, RS_NAME ": config key consumerID is longer than 128 bytes");
        goto fail;
    }
    out->group = strdup(value);

    static const struct { const char *key, *fallback; size_t offset; } durations[] = {
        {"processingTimeout", "15s", offsetof(rs_settings, processing_timeout_ms)},
        {"redeliverInterval", "60s", offsetof(rs_settings, redeliver_interval_ms)},
        {"dialTimeout", "5s", offsetof(rs_settings, dial_timeout_ms)},
    };
    for (size_t i = 0; i < sizeof durations / sizeof durations[0]; i++) {
        value = molt_config_get(config, durations[i].key);
        if (value == NULL || *value == '\0') value = durations[i].fallback;
        int64_t ms;
        if (!rs_parse_duration_ms(value, &ms)) {
            rs_text(error_out, RS_NAME ": invalid value \"%.64s\" for config key %s: expected a duration such as "
                               "\"10s\" or \"500ms\", or milliseconds", value, durations[i].key);
            goto fail;
        }
        *(int64_t *)((char *)out + durations[i].offset) = ms;
    }
    if (out->dial_timeout_ms <= 0) out->dial_timeout_ms = 5000;

    value = molt_config_get(config, "maxLenApprox");
    if (value != NULL && *value != '\0') {
        if (!rs_parse_uint(value, (uint64_t)INT64_MAX, &number)) {
            rs_text(error_out, RS_NAME ": invalid value \"%.64s\" for config key maxLenApprox: expected a number of "
                               "entries", value);
            goto fail;
        }
        out->max_len_approx = (int64_t)number;
    }

    static const struct { const char *key, *fallback; } counts[] = {{"queueDepth", "100"}, {"concurrency", "10"}};
    for (size_t i = 0; i < 2; i++) {
        value = molt_config_get(config, counts[i].key);
        if (value == NULL || *value == '\0') value = counts[i].fallback;
        if (!rs_parse_uint(value, 100000, &number) || number == 0) {
            rs_text(error_out, RS_NAME ": invalid value \"%.64s\" for config key %s: expected a number from 1 to "
                               "100000", value, counts[i].key);
            goto fail;
        }
        if (i == 0) out->queue_depth = (uint32_t)number; /* concurrency: checked, the host's window rules */
    }

    static const char *const flags[] = {"ackOnError", "enableTLS"};
    for (size_t i = 0; i < 2; i++) {
        value = molt_config_get(config, flags[i]);
        bool on = value != NULL && (strcmp(value, "true") == 0 || strcmp(value, "True") == 0 || strcmp(value, "1") == 0);
        if (value != NULL && *value != '\0' && !on && strcmp(value, "false") != 0 && strcmp(value, "False") != 0 &&
            strcmp(value, "0") != 0) {
            rs_text(error_out, RS_NAME ": invalid value \"%.16s\" for config key %s: expected true or false", value,
                    flags[i]);
            goto fail;
        }
        if (i == 0) out->ack_on_error = on;
        if (i == 1 && on) {
            rs_text(error_out, RS_NAME ": enableTLS is not supported by this plugin (plain TCP only)");
            goto fail;
        }
    }
    return true;

bad_host:
    rs_text(error_out, RS_NAME ": invalid value \"%.200s\" for config key redisHost: expected host:port", address);
fail:
    rs_settings_free(out);
    return false;
}

void rs_settings_free(rs_settings *s) {
    free(s->address);
    free(s->host);
    free(s->username);
    if (s->password != NULL) memset(s->password, 0, strlen(s->password));
    free(s->password);
    free(s->group);
    memset(s, 0, sizeof *s);
}
