# C fixture plugins for the loader and engine tests, built into $(FIXTURES). The file names are
# fixed: the tests refer to them. Plain cc, no Swift runtime (so they can be unloaded).
CFIX_DIR    := $(ROOT)/Tests/Fixtures/CPlugins
CFIX_COMMON := $(CFIX_DIR)/fixture_lock.c
CFIX_DEPS   := $(CFIX_COMMON) $(CFIX_DIR)/fixture_lock.h $(ABI_HEADER) $(CFIX_DIR)/fixture.mk

# basic.c: plugins wrong in exactly one way (plus dup-a/dup-b: same name and version, other bytes;
# holds-state: holds state without transfer).
CFIX_BASIC := $(addprefix $(FIXTURES)/,missing-readiness.so missing-unlock.so abi-major-2.so abi-minor-99.so abi-1-0.so \
                unknown-kind.so bad-version.so dup-a.so dup-b.so holds-state-1.0.0.so holds-state-1.1.0.so)
$(FIXTURES)/missing-readiness.so: CFIX_FLAGS := -DFIX_MISSING_READINESS
$(FIXTURES)/missing-unlock.so:    CFIX_FLAGS := -DFIX_MISSING_UNLOCK
$(FIXTURES)/abi-major-2.so:       CFIX_FLAGS := -DFIX_ABI_MAJOR_2
$(FIXTURES)/abi-minor-99.so:      CFIX_FLAGS := -DFIX_ABI_MINOR_99
$(FIXTURES)/abi-1-0.so:           CFIX_FLAGS := -DFIX_ABI_1_0
$(FIXTURES)/unknown-kind.so:      CFIX_FLAGS := -DFIX_UNKNOWN_KIND
$(FIXTURES)/bad-version.so:       CFIX_FLAGS := -DFIX_BAD_VERSION
$(FIXTURES)/dup-a.so:             CFIX_FLAGS := -DFIX_DUP_A
$(FIXTURES)/dup-b.so:             CFIX_FLAGS := -DFIX_DUP_B
$(FIXTURES)/holds-state-1.0.0.so: CFIX_FLAGS := -DFIX_HOLDS_STATE_1_0
$(FIXTURES)/holds-state-1.1.0.so: CFIX_FLAGS := -DFIX_HOLDS_STATE_1_1
$(CFIX_BASIC): $(CFIX_DIR)/basic.c $(CFIX_DEPS)
	@mkdir -p $(@D)
	$(CC) $(PLUGIN_CFLAGS) $(CFIX_FLAGS) -o $@ $(CFIX_DIR)/basic.c $(CFIX_COMMON)

# probe.c: behaviour set by config, for engine fault tests.
CFIX_PROBE := $(addprefix $(FIXTURES)/,probe-1.0.0.so probe-2.0.0.so probe-stateful-1.0.0.so probe-declared-1.0.0.so)
$(FIXTURES)/probe-1.0.0.so:          CFIX_FLAGS :=
$(FIXTURES)/probe-2.0.0.so:          CFIX_FLAGS := -DPROBE_V2
$(FIXTURES)/probe-stateful-1.0.0.so: CFIX_FLAGS := -DPROBE_STATEFUL
$(FIXTURES)/probe-declared-1.0.0.so: CFIX_FLAGS := -DPROBE_DECLARED
$(CFIX_PROBE): $(CFIX_DIR)/probe.c $(CFIX_DEPS)
	@mkdir -p $(@D)
	$(CC) $(PLUGIN_CFLAGS) $(CFIX_FLAGS) -o $@ $(CFIX_DIR)/probe.c $(CFIX_COMMON)

# The plugin authors' example must keep building and loading.
CFIX_MINIMAL := $(FIXTURES)/minimal-lock.so
$(CFIX_MINIMAL): $(ROOT)/docs/examples/c-minimal/minimal_lock.c $(ABI_HEADER)
	@mkdir -p $(@D)
	$(CC) $(PLUGIN_CFLAGS) -o $@ $<

# hidden-readiness.so: basic.c with molt_plugin_readiness defined, but hidden, in a file without the header.
CFIX_HIDDEN := $(FIXTURES)/hidden-readiness.so
$(CFIX_HIDDEN): $(CFIX_DIR)/basic.c $(CFIX_DIR)/hidden_readiness.c $(CFIX_DEPS)
	@mkdir -p $(@D)
	$(CC) $(PLUGIN_CFLAGS) -DFIX_HIDDEN_READINESS -o $@ $(CFIX_DIR)/basic.c $(CFIX_DIR)/hidden_readiness.c $(CFIX_COMMON)

# log-format.so: a correct lock whose init logs through molt_log (printf-style, truncated when long).
CFIX_LOG := $(FIXTURES)/log-format.so
$(CFIX_LOG): $(CFIX_DIR)/basic.c $(CFIX_DEPS)
	@mkdir -p $(@D)
	$(CC) $(PLUGIN_CFLAGS) -DFIX_LOG_FORMAT -o $@ $(CFIX_DIR)/basic.c $(CFIX_COMMON)

# broken-lock-1.0.0.so: correct with its defaults; each config key breaks one rule (molt plugin verify's tests).
CFIX_BROKEN_LOCK := $(FIXTURES)/broken-lock-1.0.0.so
$(CFIX_BROKEN_LOCK): $(CFIX_DIR)/broken_lock.c $(CFIX_DEPS)
	@mkdir -p $(@D)
	$(CC) $(PLUGIN_CFLAGS) -o $@ $(CFIX_DIR)/broken_lock.c $(CFIX_COMMON)

# broken-pubsub-1.0.0.so: a correct in-memory broker with its defaults; each config key breaks one rule
# (molt plugin verify's pubsub tests).
CFIX_BROKEN_PUBSUB := $(FIXTURES)/broken-pubsub-1.0.0.so
$(CFIX_BROKEN_PUBSUB): $(CFIX_DIR)/broken_pubsub.c $(ABI_HEADER) $(CFIX_DIR)/fixture.mk
	@mkdir -p $(@D)
	$(CC) $(PLUGIN_CFLAGS) -o $@ $(CFIX_DIR)/broken_pubsub.c

C_FIXTURES += $(CFIX_BASIC) $(CFIX_PROBE) $(CFIX_MINIMAL) $(CFIX_HIDDEN) $(CFIX_LOG) $(CFIX_BROKEN_LOCK) $(CFIX_BROKEN_PUBSUB)

# memstate.c: an in-memory state store with Dapr semantics (asyncCompletion=true completes from a thread).
CFIX_MEMSTATE := $(FIXTURES)/memstate-1.0.0.so
$(CFIX_MEMSTATE): $(CFIX_DIR)/memstate.c $(ABI_HEADER) $(CFIX_DIR)/fixture.mk
	@mkdir -p $(@D)
	$(CC) $(PLUGIN_CFLAGS) -o $@ $(CFIX_DIR)/memstate.c

C_FIXTURES += $(CFIX_MEMSTATE)

# ops.c: declared operations (ABI 1.2) of every type, in versions whose operations are added, changed and
# removed, and declared by a lock (see the file's comment).
CFIX_OPS := $(addprefix $(FIXTURES)/,ops-1.0.0.so ops-1.1.0.so ops-2.0.0.so ops-lock-1.0.0.so)
$(FIXTURES)/ops-1.0.0.so:      CFIX_FLAGS :=
$(FIXTURES)/ops-1.1.0.so:      CFIX_FLAGS := -DOPS_V1_1
$(FIXTURES)/ops-2.0.0.so:      CFIX_FLAGS := -DOPS_V2
$(FIXTURES)/ops-lock-1.0.0.so: CFIX_FLAGS := -DOPS_LOCK
$(CFIX_OPS): $(CFIX_DIR)/ops.c $(CFIX_DEPS)
	@mkdir -p $(@D)
	$(CC) $(PLUGIN_CFLAGS) $(CFIX_FLAGS) -o $@ $(CFIX_DIR)/ops.c $(CFIX_COMMON)

C_FIXTURES += $(CFIX_OPS)

# bad_ops.c: bindings whose declarations break one rule each (the loader refuses them, naming operation and field).
CFIX_BAD_OPS := $(addprefix $(FIXTURES)/,bad-ops-unknown-type.so bad-ops-duplicate-name.so bad-ops-missing-symbol.so \
                  bad-ops-too-many-fields.so bad-ops-bad-name.so bad-ops-duplicate-field.so bad-ops-unknown-flag.so bad-ops-none.so)
$(FIXTURES)/bad-ops-unknown-type.so:    CFIX_FLAGS := -DBAD_OPS_UNKNOWN_TYPE
$(FIXTURES)/bad-ops-duplicate-name.so:  CFIX_FLAGS := -DBAD_OPS_DUPLICATE_NAME
$(FIXTURES)/bad-ops-missing-symbol.so:  CFIX_FLAGS := -DBAD_OPS_MISSING_SYMBOL
$(FIXTURES)/bad-ops-too-many-fields.so: CFIX_FLAGS := -DBAD_OPS_TOO_MANY_FIELDS
$(FIXTURES)/bad-ops-bad-name.so:        CFIX_FLAGS := -DBAD_OPS_BAD_NAME
$(FIXTURES)/bad-ops-duplicate-field.so: CFIX_FLAGS := -DBAD_OPS_DUPLICATE_FIELD
$(FIXTURES)/bad-ops-unknown-flag.so:    CFIX_FLAGS := -DBAD_OPS_UNKNOWN_FLAG
$(FIXTURES)/bad-ops-none.so:            CFIX_FLAGS := -DBAD_OPS_NONE
$(CFIX_BAD_OPS): $(CFIX_DIR)/bad_ops.c $(ABI_HEADER) $(CFIX_DIR)/fixture.mk
	@mkdir -p $(@D)
	$(CC) $(PLUGIN_CFLAGS) $(CFIX_FLAGS) -o $@ $(CFIX_DIR)/bad_ops.c

CFIX_BAD_OPS_HIDDEN := $(FIXTURES)/bad-ops-hidden-symbol.so
$(CFIX_BAD_OPS_HIDDEN): $(CFIX_DIR)/bad_ops.c $(CFIX_DIR)/hidden_op.c $(ABI_HEADER) $(CFIX_DIR)/fixture.mk
	@mkdir -p $(@D)
	$(CC) $(PLUGIN_CFLAGS) -DBAD_OPS_HIDDEN_SYMBOL -o $@ $(CFIX_DIR)/bad_ops.c $(CFIX_DIR)/hidden_op.c

C_FIXTURES += $(CFIX_BAD_OPS) $(CFIX_BAD_OPS_HIDDEN)

# misbehaving_load.c: libraries whose constructor crashes or hangs, for the catalog's child-process
# inspection; in a subdirectory, so that serving or listing $(FIXTURES) never maps them.
CFIX_MISBEHAVING := $(addprefix $(FIXTURES)/misbehaving/,crash-on-load-1.0.0.so hang-on-load-1.0.0.so)
$(FIXTURES)/misbehaving/crash-on-load-1.0.0.so: CFIX_FLAGS := -DFIX_CRASH_ON_LOAD
$(FIXTURES)/misbehaving/hang-on-load-1.0.0.so:  CFIX_FLAGS := -DFIX_HANG_ON_LOAD
$(CFIX_MISBEHAVING): $(CFIX_DIR)/misbehaving_load.c $(CFIX_DEPS)
	@mkdir -p $(@D)
	$(CC) $(PLUGIN_CFLAGS) $(CFIX_FLAGS) -o $@ $(CFIX_DIR)/misbehaving_load.c
C_FIXTURES += $(CFIX_MISBEHAVING)
