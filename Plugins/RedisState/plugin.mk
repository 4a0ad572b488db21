# RedisState: the Dapr-compatible Redis state store, a Swift plugin (SwiftPM product RedisState,
# linked against hiredis), staged into plugins.d as redis-state-<version>.so by swift-plugins.
REDISSTATE_VERSION := 1.0.0
# ^ keep in sync with RedisStateStore.version
SWIFT_PLUGIN_PRODUCTS += RedisState:$(PLUGINS_DIR)/redis-state-$(REDISSTATE_VERSION).so
