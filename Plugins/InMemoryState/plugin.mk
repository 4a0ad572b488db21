# InMemoryState: molt's embedded default state store (`state.in-memory`), one C source built twice
# (1.0.0, and 1.1.0 with -DIN_MEMORY_V1_1: only the version differs, for swap tests), installed into
# plugins.d. Each .so is linked under $(OUT) first, then renamed into place, so a watcher of
# $(PLUGINS_DIR) never sees a half-written file.
INMEMORY_DIR  := $(ROOT)/Plugins/InMemoryState
INMEMORY_SRC  := $(INMEMORY_DIR)/in_memory_state.c
INMEMORY_V1_0 := $(PLUGINS_DIR)/in-memory-1.0.0.so
INMEMORY_V1_1 := $(PLUGINS_DIR)/in-memory-1.1.0.so

C_PLUGINS += $(INMEMORY_V1_0) $(INMEMORY_V1_1)

$(INMEMORY_V1_0): INMEMORY_DEFINES :=
$(INMEMORY_V1_1): INMEMORY_DEFINES := -DIN_MEMORY_V1_1

$(INMEMORY_V1_0) $(INMEMORY_V1_1): $(INMEMORY_SRC) $(ABI_HEADER) $(INMEMORY_DIR)/plugin.mk
	@mkdir -p $(OUT)/in-memory $(@D)
	$(CC) $(PLUGIN_CFLAGS) $(INMEMORY_DEFINES) -o $(OUT)/in-memory/$(@F) $(INMEMORY_SRC)
	install -m 0755 $(OUT)/in-memory/$(@F) $(@D)/.$(@F).tmp
	mv -f $(@D)/.$(@F).tmp $@
