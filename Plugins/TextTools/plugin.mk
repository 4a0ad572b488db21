# TextTools: a binding of small text operations, a Swift plugin whose methods are declared operations
# (SwiftPM product TextTools, PluginKitOperations), staged into plugins.d as text-tools-<version>.so
# by swift-plugins.
TEXTTOOLS_VERSION := 1.0.0
# ^ keep in sync with TextTools.version
SWIFT_PLUGIN_PRODUCTS += TextTools:$(PLUGINS_DIR)/text-tools-$(TEXTTOOLS_VERSION).so

# Calls the staged plugin from C as the host does (dlopen, molt_plugin_operations, the values form,
# results freed with free()): `make check-text-tools`.
.PHONY: check-text-tools
check-text-tools: swift-plugins
	@mkdir -p $(OUT)
	$(CC) -std=c11 -D_POSIX_C_SOURCE=200809L -O2 -Wall -Wextra -Wmissing-prototypes -Werror -I$(ABI_INCLUDE) \
	  -o $(OUT)/check-text-tools Plugins/TextTools/check/call_operations.c -ldl
	$(OUT)/check-text-tools $(PLUGINS_DIR)/text-tools-$(TEXTTOOLS_VERSION).so
