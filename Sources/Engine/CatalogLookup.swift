import PluginHost

extension Engine {
    /// The binary a definition runs on. Plugin name and version default to the current generation's;
    /// a version the catalog lacks triggers one rescan (a file may have been dropped in since). The warning
    /// says when the current generation is kept although its file now holds another build.
    func resolveBinary(_ definition: ComponentDefinition, current: Generation?) throws -> (binary: PluginBinary, warning: String?) {
        let key = definition.key
        guard let pluginName = definition.plugin ?? current?.binary.info.name else {
            throw ConfigProblem("component \(key) is new: name its plugin")
        }
        let keepCurrent = current.map { $0.binary.info.name == pluginName && definition.version == nil } ?? false
        let version = keepCurrent ? current?.binary.info.version : definition.version
        if keepCurrent, let current, definition.pin == nil || definition.pin == current.pin {
            guard let other = current.binary.otherBuildAtSource() else { return (current.binary, nil) }
            let info = current.binary.info
            return (current.binary, "\(current.binary.sourcePath) now holds another build of \(info.id) (sha256 \(other.prefix(16))); "
                + "\(key) keeps running the build it loaded (sha256 \(current.binary.sha256.prefix(16))): give the new build a new version, "
                + "or, while developing, serve with --watch-plugins to load rebuilds")
        }
        var entry = catalog.find(kind: key.kind, name: pluginName, version: version)
        if entry == nil {
            catalog.rescan()
            entry = catalog.find(kind: key.kind, name: pluginName, version: version)
        }
        guard let entry else {
            let available = catalog.versions(of: pluginName).map(\.description)
            let wanted = version.map { "\(pluginName)@\($0)" } ?? pluginName
            throw ConfigProblem("no \(key.kind.rawValue) plugin \(wanted) in \(loader.pluginsDirectory)"
                + (available.isEmpty ? "" : " (available versions: \(available.joined(separator: ", ")))") + refusalReasons(of: pluginName))
        }
        return (try loader.load(path: entry.path, pin: definition.pin), nil)
    }

    /// The state format a reload of `key` from `old` to `new` hands over in: nil when there is nothing to
    /// hand over, else the newest format both understand. When the state cannot be handed over (either side
    /// exports no state transfer, or no common format), the reload is refused if `old` declares it holds
    /// state callers rely on (`stateWouldBeLost`) or exports state `new` cannot take (`invalidDefinition`),
    /// unless `acceptStateLoss`: then nil, the state is dropped.
    static func handoffFormat(of key: ComponentKey, from old: PluginBinary, to new: PluginBinary,
                              acceptStateLoss: Bool) throws(StepFailure) -> UInt32? {
        let why: String
        switch (old.info.stateFormats, new.info.stateFormats) {
        case (let oldFormats?, let newFormats?) where oldFormats.overlaps(newFormats):
            return min(oldFormats.upperBound, newFormats.upperBound)
        case (let oldFormats?, let newFormats?):
            why = "no common state format: \(old.info.id) has \(oldFormats), \(new.info.id) has \(newFormats)"
        case (_, nil):
            why = "\(new.info.id) cannot import it: no state transfer"
        case (nil, _):
            why = "\(old.info.id) cannot export it: no state transfer"
        }
        if acceptStateLoss { return nil }
        if old.info.holdsState {
            throw StepFailure(.stateWouldBeLost, "reloading \(key) would lose the in-memory state of \(old.info.id) "
                + "(it holds state callers rely on, and \(why)); apply with accept_state_loss (molt apply --accept-state-loss) "
                + "to reload anyway")
        }
        guard let oldFormats = old.info.stateFormats else { return nil }
        if new.info.stateFormats == nil {
            throw StepFailure(.invalidDefinition, "\(new.info.id) cannot import state, so a reload would drop \(old.info.id)'s state; refusing "
                + "(apply with accept_state_loss, molt apply --accept-state-loss, to drop it)")
        }
        throw StepFailure(.invalidDefinition, "no common state format: \(old.info.id) has \(oldFormats), \(new.info.id) has \(new.info.stateFormats!) "
            + "(apply with accept_state_loss, molt apply --accept-state-loss, to drop the state)")
    }

    /// Why the loader refused files that look like versions of `plugin`: a refused version is not in the
    /// catalog, and "no such version" alone would hide why.
    private func refusalReasons(of plugin: String) -> String {
        catalog.problems.filter { ($0.path.split(separator: "/").last.map(String.init) ?? $0.path).hasPrefix(plugin + "-") }
            .map { "; the loader refused \($0.path): \($0.error)" }.joined()
    }
}
