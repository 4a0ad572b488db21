# LocalFileSecrets: `local-file`, Dapr's secretstores.local.file (kind secretstore, ABI 1.3): secrets from a
# JSON file parsed with jansson (Debian libjansson-dev), re-read by an inotify thread when the file changes.
# Linked under $(OUT) first, then renamed into place, so a watcher of $(PLUGINS_DIR) never sees a
# half-written file. `make test-plugins` (run by `make test`) runs its C test.
LOCALFILE_DIR  := $(ROOT)/Plugins/LocalFileSecrets
LOCALFILE_SRC  := $(addprefix $(LOCALFILE_DIR)/,local_file.c secret_table.c secrets_file.c file_watcher.c)
LOCALFILE_DEPS := $(LOCALFILE_SRC) $(LOCALFILE_DIR)/local_file.h $(LOCALFILE_DIR)/plugin.mk $(ABI_HEADER)
LOCALFILE_SO   := $(PLUGINS_DIR)/local-file-1.0.0.so

C_PLUGINS += $(LOCALFILE_SO)

$(LOCALFILE_SO): $(LOCALFILE_DEPS)
	@mkdir -p $(OUT)/local-file $(@D)
	$(CC) $(PLUGIN_CFLAGS) -o $(OUT)/local-file/$(@F) $(LOCALFILE_SRC) -ljansson -pthread
	install -m 0755 $(OUT)/local-file/$(@F) $(@D)/.$(@F).tmp
	mv -f $(@D)/.$(@F).tmp $@

# Test: the .so through dlopen, as molt calls it, with a fake host (log sink, `changed` counter) and
# secrets files in a temporary directory that the test rewrites while the watcher runs.
LOCALFILE_TEST_CFLAGS := $(PLUGIN_TEST_CFLAGS)

$(OUT)/local-file/test_local_file: $(LOCALFILE_DIR)/test/test_local_file.c $(ABI_HEADER)
	@mkdir -p $(@D)
	$(CC) $(LOCALFILE_TEST_CFLAGS) -o $@ $< -ldl

.PHONY: test-local-file
test-local-file: $(OUT)/local-file/test_local_file $(LOCALFILE_SO)
	$(OUT)/local-file/test_local_file $(LOCALFILE_SO)

PLUGIN_TESTS += test-local-file
