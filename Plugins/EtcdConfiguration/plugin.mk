# EtcdConfiguration: `etcd-config` (kind configuration, ABI 1.3): configuration items from the etcd keys under a
# prefix, cached in memory and kept current by an etcd watch, through etcd's v3 JSON gateway with libcurl (Debian
# libcurl4-openssl-dev) and jansson (libjansson-dev). Linked under $(OUT) first, then renamed into place, so a
# watcher of $(PLUGINS_DIR) never sees a half-written file. `make test-plugins` (run by `make test`) runs its C test.
ETCDCONFIG_DIR  := $(ROOT)/Plugins/EtcdConfiguration
ETCDCONFIG_SRC  := $(addprefix $(ETCDCONFIG_DIR)/,etcd_config.c settings.c base64.c config_table.c etcd_http.c \
                   etcd_range.c watch_stream.c)
ETCDCONFIG_DEPS := $(ETCDCONFIG_SRC) $(ETCDCONFIG_DIR)/etcd_config.h $(ETCDCONFIG_DIR)/plugin.mk $(ABI_HEADER)
ETCDCONFIG_SO   := $(PLUGINS_DIR)/etcd-config-1.0.0.so

C_PLUGINS += $(ETCDCONFIG_SO)

$(ETCDCONFIG_SO): $(ETCDCONFIG_DEPS)
	@mkdir -p $(OUT)/etcd-config $(@D)
	$(CC) $(PLUGIN_CFLAGS) -o $(OUT)/etcd-config/$(@F) $(ETCDCONFIG_SRC) -lcurl -ljansson -pthread
	install -m 0755 $(OUT)/etcd-config/$(@F) $(@D)/.$(@F).tmp
	mv -f $(@D)/.$(@F).tmp $@

# Test: the .so through dlopen, as molt calls it, with a fake host (log sink, `changed` recorder), against a real
# etcd (Debian etcd-server) that the test starts, stops and restarts itself on free loopback ports, and a TCP
# proxy in front of it that the test can cut (to compact etcd while the watch is away).
ETCDCONFIG_TEST_CFLAGS := $(PLUGIN_TEST_CFLAGS) -I$(ETCDCONFIG_DIR)/test
ETCDCONFIG_TEST_SRC := $(addprefix $(ETCDCONFIG_DIR)/test/,test_etcd_config.c etcd_server.c tcp_proxy.c)

$(OUT)/etcd-config/test_etcd_config: $(ETCDCONFIG_TEST_SRC) $(ETCDCONFIG_DIR)/test/etcd_server.h \
                                     $(ETCDCONFIG_DIR)/test/tcp_proxy.h $(ABI_HEADER)
	@mkdir -p $(@D)
	$(CC) $(ETCDCONFIG_TEST_CFLAGS) -o $@ $(ETCDCONFIG_TEST_SRC) -ldl -lcurl

.PHONY: test-etcd-config
test-etcd-config: $(OUT)/etcd-config/test_etcd_config $(ETCDCONFIG_SO)
	$(OUT)/etcd-config/test_etcd_config $(ETCDCONFIG_SO)

PLUGIN_TESTS += test-etcd-config
