# RedisStreams: `redis-streams` (kind pubsub, ABI 1.3): Dapr's pubsub.redis on Redis Streams with consumer groups,
# through hiredis (Debian libhiredis-dev): publish on the host's event loops (ABI 1.1 I/O), the rest on blocking
# connections on threads of its own, and jansson (libjansson-dev)
# for the metadata field. Linked under $(OUT) first, then renamed into place, so a watcher of $(PLUGINS_DIR) never
# sees a half-written file. `make test-plugins` (run by `make test`) runs its C test.
REDISSTREAMS_DIR  := $(ROOT)/Plugins/RedisStreams
REDISSTREAMS_SRC  := $(addprefix $(REDISSTREAMS_DIR)/,redis_streams.c settings.c connection.c entry.c \
                     command_thread.c loop_publish.c loop_connection.c subscription.c consumer.c)
REDISSTREAMS_DEPS := $(REDISSTREAMS_SRC) $(REDISSTREAMS_DIR)/redis_streams.h $(REDISSTREAMS_DIR)/loop_shard.h $(REDISSTREAMS_DIR)/plugin.mk $(ABI_HEADER)
REDISSTREAMS_SO   := $(PLUGINS_DIR)/redis-streams-1.0.0.so

C_PLUGINS += $(REDISSTREAMS_SO)

$(REDISSTREAMS_SO): $(REDISSTREAMS_DEPS)
	@mkdir -p $(OUT)/redis-streams $(@D)
	$(CC) $(PLUGIN_CFLAGS) -o $(OUT)/redis-streams/$(@F) $(REDISSTREAMS_SRC) -lhiredis -ljansson -pthread
	install -m 0755 $(OUT)/redis-streams/$(@F) $(@D)/.$(@F).tmp
	mv -f $(@D)/.$(@F).tmp $@

# Test: the .so through dlopen, as molt calls it, with a fake host sink and a fake host with event loops, against a real redis-server (Debian
# redis-server) that the test starts itself on a free loopback port and stops at exit (also on failure).
REDISSTREAMS_TEST_CFLAGS := $(PLUGIN_TEST_CFLAGS) -I$(REDISSTREAMS_DIR)/test
REDISSTREAMS_TEST_SRC := $(addprefix $(REDISSTREAMS_DIR)/test/,test_redis_streams.c test_loop_publish.c \
                         redis_server.c fake_sink.c fake_loop.c)

$(OUT)/redis-streams/test_redis_streams: $(REDISSTREAMS_TEST_SRC) $(addprefix $(REDISSTREAMS_DIR)/test/,redis_server.h \
                                         fake_sink.h fake_loop.h test_loop_publish.h) $(ABI_HEADER)
	@mkdir -p $(@D)
	$(CC) $(REDISSTREAMS_TEST_CFLAGS) -o $@ $(REDISSTREAMS_TEST_SRC) -ldl -lhiredis

.PHONY: test-redis-streams
test-redis-streams: $(OUT)/redis-streams/test_redis_streams $(REDISSTREAMS_SO)
	$(OUT)/redis-streams/test_redis_streams $(REDISSTREAMS_SO)

PLUGIN_TESTS += test-redis-streams
