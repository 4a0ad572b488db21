# LocalEnvSecrets: `local-env`, Dapr's secretstores.local.env (kind secretstore, ABI 1.3): environment
# variables as secrets, with Dapr's optional `prefix`. Linked under $(OUT) first, then renamed into place,
# so a watcher of $(PLUGINS_DIR) never sees a half-written file. `make test-plugins` runs its C test.
LOCALENV_DIR := $(ROOT)/Plugins/LocalEnvSecrets
LOCALENV_SRC := $(LOCALENV_DIR)/local_env.c
LOCALENV_SO  := $(PLUGINS_DIR)/local-env-1.0.0.so

C_PLUGINS += $(LOCALENV_SO)

$(LOCALENV_SO): $(LOCALENV_SRC) $(ABI_HEADER) $(LOCALENV_DIR)/plugin.mk
	@mkdir -p $(OUT)/local-env $(@D)
	$(CC) $(PLUGIN_CFLAGS) -o $(OUT)/local-env/$(@F) $(LOCALENV_SRC)
	install -m 0755 $(OUT)/local-env/$(@F) $(@D)/.$(@F).tmp
	mv -f $(@D)/.$(@F).tmp $@

# Test: the .so through dlopen, as molt calls it, with variables set by setenv before init.
$(OUT)/local-env/test_local_env: $(LOCALENV_DIR)/test/test_local_env.c $(ABI_HEADER)
	@mkdir -p $(@D)
	$(CC) $(PLUGIN_TEST_CFLAGS) -o $@ $< -ldl

.PHONY: test-local-env
test-local-env: $(OUT)/local-env/test_local_env $(LOCALENV_SO)
	$(OUT)/local-env/test_local_env $(LOCALENV_SO)

PLUGIN_TESTS += test-local-env
