import PluginHost

/// Development mode (`molt serve --watch-plugins`): components move to a rebuild of the plugin version
/// they run, through the ordinary apply pipeline.
extension Engine {
    /// Applies the running definition of every component whose plugin name@version the catalog now finds
    /// with other bytes than its active generation's: the plan sees another build and reloads (new
    /// instance ready and state handed over before the switch; any failure leaves the running generation
    /// serving). Components with a pin are left alone: the pin names the bytes they must run. Call after
    /// `catalog.rescan()` on a loader that `acceptsRebuilds`.
    public func reloadRebuiltPlugins() async -> [ApplyResult] {
        var results: [ApplyResult] = []
        for definition in runningDefinitions {
            guard definition.pin == nil, let name = definition.plugin, let version = definition.version,
                  let entry = catalog.find(kind: definition.key.kind, name: name, version: version),
                  let running = slots.withLock({ $0[definition.key] })?.activeCell.current,
                  entry.sha256 != running.binary.sha256 else { continue }
            results.append(await apply(definition))
        }
        return results
    }
}
