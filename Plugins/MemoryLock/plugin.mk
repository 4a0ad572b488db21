# MemoryLock: one C source built twice (v1, and v2 with -DMEMORYLOCK_V2), installed into plugins.d.
# Each .so is linked under $(OUT) first, then renamed into place, so a watcher of $(PLUGINS_DIR)
# never sees a half-written file.
MEMORYLOCK_DIR := $(ROOT)/Plugins/MemoryLock
MEMORYLOCK_SRC := $(MEMORYLOCK_DIR)/memorylock.c
MEMORYLOCK_V1  := $(PLUGINS_DIR)/memorylock-1.0.0.so
MEMORYLOCK_V2  := $(PLUGINS_DIR)/memorylock-2.0.0.so

C_PLUGINS += $(MEMORYLOCK_V1) $(MEMORYLOCK_V2)

$(MEMORYLOCK_V1): MEMORYLOCK_DEFINES :=
$(MEMORYLOCK_V2): MEMORYLOCK_DEFINES := -DMEMORYLOCK_V2

$(MEMORYLOCK_V1) $(MEMORYLOCK_V2): $(MEMORYLOCK_SRC) $(ABI_HEADER) $(MEMORYLOCK_DIR)/plugin.mk
	@mkdir -p $(OUT)/memorylock $(@D)
	$(CC) $(PLUGIN_CFLAGS) $(MEMORYLOCK_DEFINES) -o $(OUT)/memorylock/$(@F) $(MEMORYLOCK_SRC)
	install -m 0755 $(OUT)/memorylock/$(@F) $(@D)/.$(@F).tmp
	mv -f $(@D)/.$(@F).tmp $@

# Direct-call baseline for the ABI benchmark (not part of the default build):
#   make bench-direct && build/bench_direct [pairs]
.PHONY: bench-direct
bench-direct: $(OUT)/bench_direct

$(OUT)/bench_direct: $(MEMORYLOCK_DIR)/bench_direct.c $(MEMORYLOCK_SRC) $(ABI_HEADER)
	@mkdir -p $(@D)
	$(CC) -std=c11 -O2 -g -Wall -Wextra -Werror -pthread -I$(ABI_INCLUDE) -o $@ $(MEMORYLOCK_DIR)/bench_direct.c
