// The Makefile of every C template (`molt plugin new --language c`, any kind): molt's C plugin flags,
// NAME-VERSION.so, `make test` (test/test_plugin.c), `make install`.
enum CTemplateMakefile {
    static let makefile = #"""
# __PLUGIN_NAME__: `make` builds __PLUGIN_NAME__-$(VERSION).so; `make VERSION=1.1.0` builds another version from
# the same source; `make test` checks it; `make install PLUGINS_DIR=...` stages it for molt.
NAME        := __PLUGIN_NAME__
VERSION     ?= 1.0.0
PLUGINS_DIR ?= plugins.d
CC          ?= cc
CFLAGS      ?= -O2 -g
# molt's flags for C plugins: -D_POSIX_C_SOURCE declares what -std=c11 hides (strdup, clock_gettime),
# -Werror makes every warning an error, -Wmissing-prototypes refuses a misspelt molt_ name, and
# -fvisibility=hidden exports only the MOLT_EXPORT functions.
PLUGIN_CFLAGS := -std=c11 -D_POSIX_C_SOURCE=200809L -fPIC -shared -fvisibility=hidden \
                 -Wall -Wextra -Wmissing-prototypes -Werror -pthread -Iinclude
SO := $(NAME)-$(VERSION).so

.PHONY: all test install clean
all: $(SO)

$(SO): $(NAME).c include/molt_plugin.h Makefile
	$(CC) $(CFLAGS) $(PLUGIN_CFLAGS) -DPLUGIN_VERSION='"$(VERSION)"' -o $@ $(NAME).c

build/test_plugin: test/test_plugin.c include/molt_plugin.h Makefile
	@mkdir -p build
	$(CC) $(CFLAGS) -std=c11 -D_POSIX_C_SOURCE=200809L -Wall -Wextra -Werror -pthread -Iinclude -o $@ test/test_plugin.c -ldl

test: $(SO) build/test_plugin
	./build/test_plugin ./$(SO)

# Copies the .so under a temporary name and renames it, so molt never sees a half-written file.
install: $(SO)
	@mkdir -p $(PLUGINS_DIR)
	install -m 0755 $(SO) $(PLUGINS_DIR)/.$(SO).tmp
	mv -f $(PLUGINS_DIR)/.$(SO).tmp $(PLUGINS_DIR)/$(SO)

clean:
	rm -rf build $(NAME)-*.so
"""#
}
