import PluginHost

/// Kind secretstore as molt_plugin.h states it: a secret that does not exist is MOLT_ERR_NOT_FOUND (not an
/// empty answer), and bulk_get, when exported, answers every secret with at least one value each. The
/// store's own secrets are unknown to verify, so it reads one it cannot have, and whatever bulk_get lists.
struct SecretStoreChecks {
    let instance: TestInstance
    /// Makes the missing key unique to this run.
    let prefix: String

    func run(_ report: VerifyReport) async {
        await report.check("secretstore: a missing secret") { () throws(CheckOutcome) in
            let key = "\(prefix)-absent"
            do throws(PluginError) {
                _ = try await instance.plugin.secret(key: key, deadline: instance.deadline)
            } catch where error.status == .notFound {
                return "NOT_FOUND"
            } catch {
                throw .fail("get of secret '\(key)', which the store cannot hold, answered \(error.status.rawValue) (\(error.message)); want NOT_FOUND")
            }
            throw .fail("get of secret '\(key)', which the store cannot hold, answered MOLT_OK; want MOLT_ERR_NOT_FOUND")
        }
        await report.check("secretstore: bulk get, then get of each") { () throws(CheckOutcome) in
            guard instance.plugin.binary.symbols.secretBulkGet != nil else { throw .skip("no molt_secret_bulk_get") }
            let all = try await instance.call("bulk_get") { deadline throws(PluginError) in try await instance.plugin.bulkSecrets(deadline: deadline) }
            for key in all.keys.sorted().prefix(16) {
                let values = try await instance.call("get('\(key)')") { deadline throws(PluginError) in
                    try await instance.plugin.secret(key: key, deadline: deadline)
                }
                guard values == all[key] else {
                    throw .fail("get of secret '\(key)' answered values named \(values.keys.sorted()); bulk_get listed \(all[key]!.keys.sorted()) (values not shown)")
                }
            }
            return "\(all.count) secrets; get agrees with bulk_get on \(min(all.count, 16))"
        }
    }
}
