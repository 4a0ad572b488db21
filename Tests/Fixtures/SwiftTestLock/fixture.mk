# Swift test plugin (two versions) and the Swift minimal example of the plugin author's guide,
# staged by the root Makefile's swift-plugins target as <name>-<version>.so.
SWIFT_PLUGIN_PRODUCTS += SwiftTestLockV1:$(FIXTURES)/swift-testlock-1.0.0.so SwiftTestLockV2:$(FIXTURES)/swift-testlock-2.0.0.so
SWIFT_PLUGIN_PRODUCTS += MinimalSwiftLock:$(FIXTURES)/minimal-swift-lock.so
