# molt: `make run` sets up what is missing, builds, and serves the demo config; `make test` runs every test.
SWIFT       ?= swift
CC          ?= cc
CONFIG      ?= debug
SWIFT_FLAGS ?=
ROOT        := $(abspath .)
PLUGINS_DIR := $(ROOT)/plugins.d
# Build outputs that are not SwiftPM's: C objects, test fixture plugins.
OUT         := $(ROOT)/build
FIXTURES    := $(OUT)/fixtures
ABI_INCLUDE := $(ROOT)/PluginKit/Sources/PluginABI/include
ABI_HEADER  := $(ABI_INCLUDE)/molt_plugin.h
# C plugins are built with plain cc (no Swift runtime) so they can be unloaded.
PLUGIN_CFLAGS := -std=c11 -D_POSIX_C_SOURCE=200809L -O2 -g -fPIC -shared -fvisibility=hidden -Wall -Wextra -Wmissing-prototypes -Werror -pthread -I$(ABI_INCLUDE)
# The plugins' C tests (programs that dlopen a built .so): the same warnings, the shared checks (plugin_check.h).
PLUGIN_TEST_CFLAGS := -std=c11 -D_POSIX_C_SOURCE=200809L -O1 -g -Wall -Wextra -Wmissing-prototypes -Werror -pthread \
                      -I$(ABI_INCLUDE) -I$(ROOT)/Plugins/TestSupport
SWIFT_BIN    = $(shell $(SWIFT) build -c $(CONFIG) $(SWIFT_FLAGS) --show-bin-path)

.PHONY: all build release run demo-redis-dr test test-plugins deps plugins swift-build swift-plugins fixtures bench protos clean

all: build

# Each plugin or fixture area contributes its own rules and appends its outputs to these lists.
C_PLUGINS :=
C_FIXTURES :=
SWIFT_PLUGIN_PRODUCTS :=
# Targets that test a plugin on its own (C tests that dlopen the .so); `make test-plugins` runs them all.
PLUGIN_TESTS :=
include $(wildcard Plugins/*/plugin.mk)
include $(wildcard Tests/Fixtures/*/fixture.mk)
# The API tests (pytest, against a real `molt serve`): defines python-env and test-api.
include Tests/API/api.mk
# PluginKit built on its own outside the repository: defines test-pluginkit.
include Tests/PluginKitPackage/package.mk

test-plugins: $(PLUGIN_TESTS)

deps:
	@bash scripts/install-deps.sh

swift-build:
	$(SWIFT) build -c $(CONFIG) $(SWIFT_FLAGS)

# The release molt as benchmarked (scripts/release-build.sh: no full Foundation, lld, RELR, link order).
release:
	SWIFT=$(SWIFT) bash scripts/release-build.sh $(ROOT)/.build-release
	@echo "molt: $$(SWIFT=$(SWIFT) bash scripts/release-build.sh $(ROOT)/.build-release --show-bin-path)/molt"

# Swift plugins: build each dynamic-library product, then install it as <name>-<version>.so.
# SWIFT_PLUGIN_PRODUCTS holds product:destination pairs.
swift-plugins: swift-build
	@set -e; bin="$(SWIFT_BIN)"; for pair in $(SWIFT_PLUGIN_PRODUCTS); do \
	  product=$${pair%%:*}; dest=$${pair#*:}; mkdir -p "$$(dirname $$dest)"; \
	  install -m 0755 "$$bin/lib$$product.so" "$$dest"; echo "staged $$dest"; done

plugins: $(C_PLUGINS) swift-plugins
fixtures: $(C_FIXTURES)

build: deps plugins fixtures

test: build python-env
	$(MAKE) test-plugins
	MOLT_PLUGINS_DIR=$(PLUGINS_DIR) MOLT_FIXTURES_DIR=$(FIXTURES) MOLT_BENCH_BIN=$(SWIFT_BIN)/molt-bench $(SWIFT) test -c $(CONFIG) $(SWIFT_FLAGS)
	$(MAKE) test-pluginkit
	$(MAKE) test-api

run: build
	$(SWIFT_BIN)/molt serve --plugins-directory $(PLUGINS_DIR) --components examples/demo-components.json

# The Redis DR story in one command: two local redis-servers, molt serving statestore on the first, then
# `molt apply` switches it to the second while molt keeps running (scripts/demo-redis-dr.sh).
demo-redis-dr: build
	MOLT_BIN=$(SWIFT_BIN)/molt MOLT_PLUGINS_DIR=$(PLUGINS_DIR) bash scripts/demo-redis-dr.sh

bench:
	@bash scripts/bench.sh

# Regenerates Sources/MoltProtos/Generated from the .proto files (committed; the build never runs it).
protos:
	@bash scripts/generate-protos.sh

clean:
	rm -rf $(OUT) .build $(PLUGINS_DIR)/*.so
