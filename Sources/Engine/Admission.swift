import PluginHost

extension Engine {
    /// Counts `keys` (components not serving, whose apply locks the caller holds) against
    /// `settings.maxComponents` until `releaseRoom`: all of them fit, or none is counted.
    /// Under both locks (`slots`, then `addingComponents`), so concurrent applies never add more than
    /// the limit between them.
    func reserveRoom(for keys: [ComponentKey]) throws(ConfigProblem) {
        // The closures return the problem rather than throw it: typed throws through Mutex.withLock,
        // inlined into the async apply path, crashed the Swift 6.3.1 optimizer (coroutine splitting).
        let problem: String? = slots.withLock { slots in
            addingComponents.withLock { adding in
                // A key both serving and being added (between its insertion and release) counts once.
                let counted = slots.count + adding.filter { slots[$0] == nil }.count
                let new = keys.filter { slots[$0] == nil && !adding.contains($0) }
                if let problem = ComponentLimits.countProblem(serving: counted, adding: new, limit: settings.maxComponents) {
                    return problem
                }
                adding.formUnion(new)
                return nil
            }
        }
        if let problem { throw ConfigProblem(problem) }
    }

    /// Ends the reservation of `reserveRoom`, once the components serve or their apply failed.
    func releaseRoom(for keys: [ComponentKey]) {
        addingComponents.withLock { $0.subtract(keys) }
    }
}
