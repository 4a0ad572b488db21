/* plugin_check.h: the checks the plugins' C tests share. A failed check prints its line and what it compared,
 * counts in `failures` (defined once by each test program) and lets the test go on; main exits non-zero when
 * `failures` is not 0. */
#ifndef PLUGIN_CHECK_H
#define PLUGIN_CHECK_H

#include <stdio.h>
#include <string.h>

extern int failures;

#define CHECK(condition) \
    do { if (!(condition)) { fprintf(stderr, "FAIL line %d: %s\n", __LINE__, #condition); failures++; } } while (0)
#define CHECK_TEXT(got, expected)                                                                          \
    do { if (strcmp((got), (expected)) != 0) {                                                             \
        fprintf(stderr, "FAIL line %d: got \"%s\", expected \"%s\"\n", __LINE__, (got), (expected)); failures++; } \
    } while (0)
#define CHECK_HAS(text, part)                                                                              \
    do { if (strstr((text), (part)) == NULL) {                                                             \
        fprintf(stderr, "FAIL line %d: \"%s\" lacks \"%s\"\n", __LINE__, (text), (part)); failures++; } } while (0)

#endif /* PLUGIN_CHECK_H */
