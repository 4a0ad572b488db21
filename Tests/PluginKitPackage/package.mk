# PluginKit as a package of its own: built and tested outside the repository with the sample plugin
# package (docs/examples/swift-package), resolving nothing but PluginKit.
.PHONY: test-pluginkit

test-pluginkit: swift-build
	SWIFT=$(SWIFT) MOLT_BIN=$(SWIFT_BIN)/molt bash Tests/PluginKitPackage/build-outside.sh
