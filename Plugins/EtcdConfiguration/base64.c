/*
 * base64.c: standard base64 (RFC 4648, "+/" and "=" padding), which etcd's JSON gateway uses for every
 * bytes field (keys, values, range bounds). Encoding always pads; decoding accepts padded and unpadded
 * text and refuses anything else (whitespace included: the gateway writes none).
 */
#include "etcd_config.h"

#include <stdlib.h>
#include <string.h>

static const char ec_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *ec_base64_encode(const uint8_t *bytes, size_t length) {
    char *out = malloc((length + 2) / 3 * 4 + 1);
    if (out == NULL) return NULL;
    char *p = out;
    for (size_t i = 0; i < length; i += 3) {
        uint32_t chunk = (uint32_t)bytes[i] << 16;
        if (i + 1 < length) chunk |= (uint32_t)bytes[i + 1] << 8;
        if (i + 2 < length) chunk |= bytes[i + 2];
        *p++ = ec_alphabet[(chunk >> 18) & 63];
        *p++ = ec_alphabet[(chunk >> 12) & 63];
        *p++ = i + 1 < length ? ec_alphabet[(chunk >> 6) & 63] : '=';
        *p++ = i + 2 < length ? ec_alphabet[chunk & 63] : '=';
    }
    *p = '\0';
    return out;
}

static int ec_sextet(char c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

char *ec_base64_decode(const char *text, size_t *length_out) {
    size_t n = strlen(text);
    if (n % 4 == 0 && n >= 1 && text[n - 1] == '=') n--;
    if (n % 4 == 3 && n >= 1 && text[n - 1] == '=') n--;
    if (n % 4 == 1) return NULL;
    char *out = malloc(n / 4 * 3 + 3);
    if (out == NULL) return NULL;
    size_t length = 0;
    uint32_t chunk = 0;
    for (size_t i = 0; i < n; i++) {
        int sextet = ec_sextet(text[i]);
        if (sextet < 0) {
            free(out);
            return NULL;
        }
        chunk = chunk << 6 | (uint32_t)sextet;
        if (i % 4 == 3) {
            out[length++] = (char)(chunk >> 16);
            out[length++] = (char)(chunk >> 8);
            out[length++] = (char)chunk;
            chunk = 0;
        }
    }
    if (n % 4 == 2) {
        out[length++] = (char)(chunk >> 4);
    } else if (n % 4 == 3) {
        out[length++] = (char)(chunk >> 10);
        out[length++] = (char)(chunk >> 2);
    }
    out[length] = '\0';
    *length_out = length;
    return out;
}
