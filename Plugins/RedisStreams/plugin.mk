# RedisStreams: `redis-streams` (kind pubsub, ABI 1.3): Dapr's pubsub.redis on Redis Streams with consumer groups,
# through hiredis (Debian libhiredis-dev) blocking connections on threads of its own, and jansson (libjansson-dev)
# for the metadata field. Linked under $(OUT) first, then renamed into place, so a watcher of $(PLUGINS_DIR) never
# sees a half-written file.
REDISSTREAMS_DIR  := $(ROOT)/Plugins/RedisStreams
REDISSTREAMS_SRC  := $(addprefix $(REDISSTREAMS_DIR)/,redis_streams.c settings.c connection.c entry.c \
                     command_thread.c subscription.c consumer.c)
REDISSTREAMS_DEPS := $(REDISSTREAMS_SRC) $(REDISSTREAMS_DIR)/redis_streams.h $(REDISSTREAMS_DIR)/plugin.mk $(ABI_HEADER)
REDISSTREAMS_SO   := $(PLUGINS_DIR)/redis-streams-1.0.0.so

C_PLUGINS += $(REDISSTREAMS_SO)

$(REDISSTREAMS_SO): $(REDISSTREAMS_DEPS)
	@mkdir -p $(OUT)/redis-streams $(@D)
	$(CC) $(PLUGIN_CFLAGS) -o $(OUT)/redis-streams/$(@F) $(REDISSTREAMS_SRC) -lhiredis -ljansson -pthread
	install -m 0755 $(OUT)/redis-streams/$(@F) $(@D)/.$(@F).tmp
	mv -f $(@D)/.$(@F).tmp $@
