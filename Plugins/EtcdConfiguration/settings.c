/*
 * settings.c: the component's metadata -> ec_settings.
 *
 *   endpoints    required. etcd client URLs, "host:port" (http assumed) or "http(s)://host:port", separated
 *                by commas (semicolons too, as Layotto's etcd components write them); tried in turn.
 *   keyPrefix    default "": the items are the keys that start with it, named without it.
 *   dialTimeout  default "5s": a Go duration ("500ms", "5s", "1m30s") or a whole number of seconds (as
 *                Layotto writes it). Bounds connecting, and init's whole first Range.
 *
 * The prefix's key range is computed once here: [prefix, prefix with its last byte below 0xff
 * incremented), etcd's "WithPrefix"; an empty prefix (or one of 0xff bytes only) is every key from
 * "\0", with range_end "\0" (etcd: to the end of the keyspace).
 */
#include "etcd_config.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ec_settings_free(ec_settings *s) {
    for (uint32_t i = 0; i < s->endpoint_count; i++) free(s->endpoints[i]);
    free(s->endpoints_text);
    free(s->prefix);
    free(s->range_key_b64);
    free(s->range_end_b64);
    free(s->dial_timeout_text);
    *s = (ec_settings){0};
}

/* "host:port" with a numeric port in 1..65535 and a non-empty host ("[::1]:2379" included). */
static bool ec_valid_authority(const char *text, size_t length) {
    const char *colon = NULL;
    for (size_t i = 0; i < length; i++)
        if (text[i] == ':') colon = text + i;
    if (colon == NULL || colon == text || (size_t)(colon - text) + 1 >= length) return false;
    long port = 0;
    for (const char *p = colon + 1; p < text + length; p++) {
        if (!isdigit((unsigned char)*p) || (port = port * 10 + (*p - '0')) > 65535) return false;
    }
    for (const char *p = text; p < colon; p++)
        if (isspace((unsigned char)*p) || *p == '/' || *p == '@') return false;
    return port > 0;
}

static bool ec_has_scheme(const char *text, size_t length) {
    for (size_t i = 0; i + 3 <= length; i++)
        if (strncmp(text + i, "://", 3) == 0) return true;
    return false;
}

/* One endpoint, trimmed, -> a base URL without a trailing slash. */
static char *ec_endpoint_url(const char *text, size_t length, char *why, size_t why_size) {
    while (length > 0 && text[length - 1] == '/') length--;
    const char *authority = text;
    const char *scheme = "http://";
    if (length >= 7 && strncmp(text, "http://", 7) == 0) {
        authority += 7;
    } else if (length >= 8 && strncmp(text, "https://", 8) == 0) {
        authority += 8;
        scheme = "https://";
    } else if (ec_has_scheme(text, length)) {
        snprintf(why, why_size, "endpoints: \"%.*s\" has a scheme other than http:// or https://", (int)length, text);
        return NULL;
    }
    size_t authority_length = length - (size_t)(authority - text);
    if (!ec_valid_authority(authority, authority_length)) {
        snprintf(why, why_size, "endpoints: \"%.*s\" is not host:port", (int)length, text);
        return NULL;
    }
    char *url = malloc(strlen(scheme) + authority_length + 1);
    if (url == NULL) snprintf(why, why_size, "out of memory");
    else sprintf(url, "%s%.*s", scheme, (int)authority_length, authority);
    return url;
}

static bool ec_parse_endpoints(const char *text, ec_settings *s, char *why, size_t why_size) {
    for (const char *p = text; *p != '\0';) {
        size_t length = strcspn(p, ",;");
        const char *start = p;
        size_t n = length;
        while (n > 0 && isspace((unsigned char)*start)) { start++; n--; }
        while (n > 0 && isspace((unsigned char)start[n - 1])) n--;
        if (n > 0) {
            if (s->endpoint_count == EC_MAX_ENDPOINTS) {
                snprintf(why, why_size, "endpoints: more than %d endpoints", EC_MAX_ENDPOINTS);
                return false;
            }
            char *url = ec_endpoint_url(start, n, why, why_size);
            if (url == NULL) return false;
            s->endpoints[s->endpoint_count++] = url;
        }
        p += length + (p[length] != '\0');
    }
    if (s->endpoint_count == 0) {
        snprintf(why, why_size, "missing endpoints: etcd's client URLs as host:port, separated by commas");
        return false;
    }
    return true;
}

/* A Go duration ("300ms", "1.5s", "1m30s"; units ns us µs ms s m h) or whole seconds ("5"). */
static bool ec_parse_duration_ms(const char *text, uint32_t *out) {
    static const struct { const char *unit; double ms; } units[] = {
        {"ns", 1e-6}, {"us", 1e-3}, {"\xc2\xb5s", 1e-3}, {"ms", 1}, {"s", 1e3}, {"m", 60e3}, {"h", 3600e3}};
    const char *p = text;
    double total = 0;
    bool bare = true;
    if (*p == '\0') return false;
    while (*p != '\0') {
        char *end;
        if (!isdigit((unsigned char)*p) && *p != '.') return false;
        double number = strtod(p, &end);
        if (end == p) return false;
        p = end;
        if (*p == '\0' && bare) { total = number * 1e3; break; }
        bare = false;
        size_t best = 0;
        double scale = 0;
        for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
            size_t n = strlen(units[i].unit);
            if (strncmp(p, units[i].unit, n) == 0 && n > best) { best = n; scale = units[i].ms; }
        }
        if (best == 0) return false;
        total += number * scale;
        p += best;
    }
    if (!(total >= 1 && total <= 3600e3)) return false;
    *out = (uint32_t)total;
    return true;
}

static bool ec_range_bounds(ec_settings *s) {
    size_t n = s->prefix_length;
    uint8_t *end = malloc(n + 1);
    if (end == NULL) return false;
    memcpy(end, s->prefix, n);
    while (n > 0 && end[n - 1] == 0xff) n--;
    size_t end_length = 1;
    if (n == 0) end[0] = 0;
    else { end[n - 1]++; end_length = n; }
    static const uint8_t zero = 0;
    s->range_key_b64 = s->prefix_length ? ec_base64_encode((const uint8_t *)s->prefix, s->prefix_length)
                                        : ec_base64_encode(&zero, 1);
    s->range_end_b64 = ec_base64_encode(end, end_length);
    free(end);
    return s->range_key_b64 != NULL && s->range_end_b64 != NULL;
}

bool ec_settings_parse(const molt_config *config, ec_settings *out, char *why, size_t why_size) {
    const char *endpoints = molt_config_get(config, "endpoints");
    const char *prefix = molt_config_get(config, "keyPrefix");
    const char *dial_timeout = molt_config_get(config, "dialTimeout");
    ec_settings s = {0};
    if (prefix == NULL) prefix = "";
    if (dial_timeout == NULL || dial_timeout[0] == '\0') dial_timeout = "5s";
    if (endpoints == NULL || !ec_parse_endpoints(endpoints, &s, why, why_size)) {
        if (endpoints == NULL)
            snprintf(why, why_size, "missing endpoints: etcd's client URLs as host:port, separated by commas");
        ec_settings_free(&s);
        return false;
    }
    if (!ec_parse_duration_ms(dial_timeout, &s.dial_timeout_ms)) {
        snprintf(why, why_size, "dialTimeout is \"%s\"; expected a duration from 1ms to 1h such as \"5s\" or "
                 "\"500ms\", or whole seconds", dial_timeout);
        ec_settings_free(&s);
        return false;
    }
    s.endpoints_text = strdup(endpoints);
    s.prefix = strdup(prefix);
    s.prefix_length = strlen(prefix);
    s.dial_timeout_text = strdup(dial_timeout);
    if (s.endpoints_text == NULL || s.prefix == NULL || s.dial_timeout_text == NULL || !ec_range_bounds(&s)) {
        snprintf(why, why_size, "out of memory");
        ec_settings_free(&s);
        return false;
    }
    *out = s;
    return true;
}
