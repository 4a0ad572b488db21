# RateLimiter: `rate-limiter`, issue 18's C example of declared operations (kind binding), one source set
# built twice (1.0.0, and 1.1.0 with -DRATE_LIMITER_V1_1: state format 2 besides 1), installed into
# plugins.d. Each .so is linked under $(OUT) first, then renamed into place, so a watcher of
# $(PLUGINS_DIR) never sees a half-written file. `make test-plugins` (run by `make test`) runs its C tests.
RATELIMITER_DIR  := $(ROOT)/Plugins/RateLimiter
RATELIMITER_SRC  := $(addprefix $(RATELIMITER_DIR)/,rate_limiter.c bucket_table.c state_transfer.c)
RATELIMITER_DEPS := $(RATELIMITER_SRC) $(addprefix $(RATELIMITER_DIR)/,rate_limiter.h bucket_table.h plugin.mk) $(ABI_HEADER)
RATELIMITER_V1_0 := $(PLUGINS_DIR)/rate-limiter-1.0.0.so
RATELIMITER_V1_1 := $(PLUGINS_DIR)/rate-limiter-1.1.0.so

C_PLUGINS += $(RATELIMITER_V1_0) $(RATELIMITER_V1_1)

$(RATELIMITER_V1_0): RATELIMITER_DEFINES :=
$(RATELIMITER_V1_1): RATELIMITER_DEFINES := -DRATE_LIMITER_V1_1

$(RATELIMITER_V1_0) $(RATELIMITER_V1_1): $(RATELIMITER_DEPS)
	@mkdir -p $(OUT)/rate-limiter $(@D)
	$(CC) $(PLUGIN_CFLAGS) $(RATELIMITER_DEFINES) -o $(OUT)/rate-limiter/$(@F) $(RATELIMITER_SRC) -lm
	install -m 0755 $(OUT)/rate-limiter/$(@F) $(@D)/.$(@F).tmp
	mv -f $(@D)/.$(@F).tmp $@

# Tests: the bucket table with a fake clock (compiled in), then both .so files through dlopen, as molt
# calls them (operations looked up by their declared symbols), including state handed across versions.
RATELIMITER_TEST_CFLAGS := $(PLUGIN_TEST_CFLAGS) -I$(RATELIMITER_DIR)

$(OUT)/rate-limiter/test_bucket_table: $(RATELIMITER_DIR)/test/test_bucket_table.c $(RATELIMITER_DIR)/bucket_table.c \
                                       $(RATELIMITER_DIR)/bucket_table.h
	@mkdir -p $(@D)
	$(CC) $(RATELIMITER_TEST_CFLAGS) -o $@ $(filter %.c,$^) -lm

$(OUT)/rate-limiter/test_rate_limiter: $(RATELIMITER_DIR)/test/test_rate_limiter.c $(ABI_HEADER)
	@mkdir -p $(@D)
	$(CC) $(RATELIMITER_TEST_CFLAGS) -o $@ $< -ldl

.PHONY: test-rate-limiter
test-rate-limiter: $(OUT)/rate-limiter/test_bucket_table $(OUT)/rate-limiter/test_rate_limiter $(RATELIMITER_V1_0) $(RATELIMITER_V1_1)
	$(OUT)/rate-limiter/test_bucket_table
	$(OUT)/rate-limiter/test_rate_limiter $(RATELIMITER_V1_0) $(RATELIMITER_V1_1)

PLUGIN_TESTS += test-rate-limiter
