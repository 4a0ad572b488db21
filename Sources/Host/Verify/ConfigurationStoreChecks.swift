import PluginHost

/// Kind configuration as molt_plugin.h states it: a key that does not exist is left out of the answer (not
/// an error), and a get of every item agrees with a get of each. The store's items are unknown to verify,
/// so it asks for one it cannot have, and for whatever the store lists.
struct ConfigurationStoreChecks {
    let instance: TestInstance
    /// Makes the missing key unique to this run.
    let prefix: String

    func run(_ report: VerifyReport) async {
        await report.check("configuration: a missing key") { () throws(CheckOutcome) in
            let key = "\(prefix)-absent"
            let items = try await instance.call("get(['\(key)'])") { deadline throws(PluginError) in
                try await instance.plugin.configuration(keys: [key], deadline: deadline)
            }
            guard items.isEmpty else { throw .fail("get of '\(key)', which the store cannot hold, answered \(items.count) items; want none") }
            return "left out"
        }
        await report.check("configuration: get of all, then of each") { () throws(CheckOutcome) in
            let all = try await instance.call("get([])") { deadline throws(PluginError) in try await instance.plugin.configuration(keys: [], deadline: deadline) }
            for key in all.keys.sorted().prefix(16) {
                let one = try await instance.call("get(['\(key)'])") { deadline throws(PluginError) in
                    try await instance.plugin.configuration(keys: [key], deadline: deadline)
                }
                guard one[key] == all[key], one.count == 1 else {
                    throw .fail("get of '\(key)' answered \(one.count) items (version '\(one[key]?.version ?? "-")'); get of all listed it with version '\(all[key]!.version)'")
                }
            }
            return "\(all.count) items; get of each agrees on \(min(all.count, 16))"
        }
    }
}
