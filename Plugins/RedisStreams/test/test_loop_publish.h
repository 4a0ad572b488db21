/* test_loop_publish.h: the loop-publish scenarios (test_loop_publish.c), run by test_redis_streams.c. */
#ifndef TEST_LOOP_PUBLISH_H
#define TEST_LOOP_PUBLISH_H

#include "redis_server.h"

void loop_publish_tests(redis_server *server);

#endif /* TEST_LOOP_PUBLISH_H */
