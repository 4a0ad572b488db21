# InMemoryPubsub: `in-memory-pubsub`, an in-memory broker (kind pubsub, ABI 1.3) for `make run` and tests, one
# source set built twice (1.0.0, and 1.1.0 with -DIN_MEMORY_PUBSUB_V1_1: state format 2 besides 1), installed
# into plugins.d. Each .so is linked under $(OUT) first, then renamed into place, so a watcher of
# $(PLUGINS_DIR) never sees a half-written file. `make test-plugins` (run by `make test`) runs its C test.
INMEMPUBSUB_DIR  := $(ROOT)/Plugins/InMemoryPubsub
INMEMPUBSUB_SRC  := $(addprefix $(INMEMPUBSUB_DIR)/,in_memory_pubsub.c topic_queue.c delivery.c state_transfer.c)
INMEMPUBSUB_DEPS := $(INMEMPUBSUB_SRC) $(INMEMPUBSUB_DIR)/in_memory_pubsub.h $(INMEMPUBSUB_DIR)/plugin.mk $(ABI_HEADER)
INMEMPUBSUB_V1_0 := $(PLUGINS_DIR)/in-memory-pubsub-1.0.0.so
INMEMPUBSUB_V1_1 := $(PLUGINS_DIR)/in-memory-pubsub-1.1.0.so

C_PLUGINS += $(INMEMPUBSUB_V1_0) $(INMEMPUBSUB_V1_1)

$(INMEMPUBSUB_V1_0): INMEMPUBSUB_DEFINES :=
$(INMEMPUBSUB_V1_1): INMEMPUBSUB_DEFINES := -DIN_MEMORY_PUBSUB_V1_1

$(INMEMPUBSUB_V1_0) $(INMEMPUBSUB_V1_1): $(INMEMPUBSUB_DEPS)
	@mkdir -p $(OUT)/in-memory-pubsub $(@D)
	$(CC) $(PLUGIN_CFLAGS) $(INMEMPUBSUB_DEFINES) -o $(OUT)/in-memory-pubsub/$(@F) $(INMEMPUBSUB_SRC)
	install -m 0755 $(OUT)/in-memory-pubsub/$(@F) $(@D)/.$(@F).tmp
	mv -f $(@D)/.$(@F).tmp $@

# Test: both .so files through dlopen, as molt calls them, with a fake host sink that records deliveries;
# acks come from the test thread and from within deliver; state handed from 1.0.0 to 1.1.0 and between 1.1.0s.
INMEMPUBSUB_TEST_CFLAGS := $(PLUGIN_TEST_CFLAGS)

INMEMPUBSUB_TEST_SRC := $(addprefix $(INMEMPUBSUB_DIR)/test/,test_in_memory_pubsub.c fake_host.c)

$(OUT)/in-memory-pubsub/test_in_memory_pubsub: $(INMEMPUBSUB_TEST_SRC) $(INMEMPUBSUB_DIR)/test/fake_host.h $(ABI_HEADER)
	@mkdir -p $(@D)
	$(CC) $(INMEMPUBSUB_TEST_CFLAGS) -o $@ $(INMEMPUBSUB_TEST_SRC) -ldl

.PHONY: test-in-memory-pubsub
test-in-memory-pubsub: $(OUT)/in-memory-pubsub/test_in_memory_pubsub $(INMEMPUBSUB_V1_0) $(INMEMPUBSUB_V1_1)
	$(OUT)/in-memory-pubsub/test_in_memory_pubsub $(INMEMPUBSUB_V1_0) $(INMEMPUBSUB_V1_1)

PLUGIN_TESTS += test-in-memory-pubsub
