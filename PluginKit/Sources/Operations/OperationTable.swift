// The registered component's operations, checked once and turned into the static molt_operation
// declarations (values form) that molt_plugin_operations returns, and the dispatch behind the exported
// thunks molt_pluginkit_operation_<i> (Exports.swift): thunk i calls operation i.
package import PluginABI
internal import PluginKit
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

package final class OperationTable: @unchecked Sendable {
    // @unchecked Sendable: every stored property is set in init and never mutated; the C declarations
    // and strings they point to are allocated once, never written afterwards and never freed (Swift
    // plugins are never unloaded), so any thread may read them. `entries` holds @Sendable closures.

    /// The number of thunks Exports.swift defines.
    package static let maxOperations = 16

    /// The registered component's table, or nil when it declares no operations (not an
    /// OperationProvider). A Swift global: built lazily, once, thread-safely, on first use.
    package static let shared: OperationTable? =
        (Registration.shared.componentType as? any OperationProvider.Type).map { OperationTable($0) }

    /// `count` declarations, or nil when there are none. Static: valid while the library is loaded.
    package let declarations: UnsafePointer<molt_operation>?
    package let count: UInt32
    private let entries: [Entry]

    /// A class, so that a call borrows it instead of copying (and retaining) each of its fields.
    private final class Entry: Sendable {
        let name: String
        let parameters: [(name: String, type: ValueType)]
        let results: [(name: String, type: ValueType)]
        /// Why it cannot be called (it is also declared under a name saying so), or nil.
        let problem: String?
        let invoke: @Sendable (UnsafeMutableRawPointer, UnsafePointer<molt_value>?, UnsafeMutablePointer<molt_value>?)
            throws(PluginError) -> Void

        init(
            name: String, parameters: [(name: String, type: ValueType)], results: [(name: String, type: ValueType)],
            problem: String?,
            invoke: @escaping @Sendable (UnsafeMutableRawPointer, UnsafePointer<molt_value>?, UnsafeMutablePointer<molt_value>?)
                throws(PluginError) -> Void
        ) {
            self.name = name
            self.parameters = parameters
            self.results = results
            self.problem = problem
            self.invoke = invoke
        }
    }

    package init<C: OperationProvider>(_: C.Type) {
        let operations = C.operations
        var entries: [Entry] = []
        var names = Set<String>()
        for (index, operation) in operations.enumerated() {
            let invoke = operation.invoke  // captured alone: a call then retains one closure, not the whole Operation
            var problems = Self.problems(of: operation)
            if !names.insert(operation.name).inserted { problems.append("declared twice") }
            if index >= Self.maxOperations {
                problems.append("operation \(index + 1) of \(operations.count); PluginKit exports at most \(Self.maxOperations)")
            }
            entries.append(Entry(
                name: operation.name,
                parameters: Array(zip(operation.parameters.map(\.name), operation.parameterTypes)),
                results: Array(zip(operation.results.map(\.name), operation.resultTypes)),
                problem: problems.isEmpty ? nil : problems.joined(separator: "; "),
                invoke: { (instance, values, out) throws(PluginError) in
                    try invoke(component(at: instance, as: C.self), values, out)
                }))
        }
        self.entries = entries
        count = UInt32(operations.count)
        declarations = operations.isEmpty ? nil : Self.declare(operations, entries)
    }

    /// What is wrong with `operations`, one message per problem naming the operation.
    package static func problems<C>(of operations: [Operation<C>]) -> [String] {
        var problems: [String] = []
        if operations.count > maxOperations {
            problems.append("\(operations.count) operations declared; PluginKit exports at most \(maxOperations)")
        }
        var names = Set<String>()
        for operation in operations {
            if !names.insert(operation.name).inserted { problems.append("operation '\(operation.name)' is declared twice") }
            problems += Self.problems(of: operation).map { "operation '\(operation.name)': \($0)" }
        }
        return problems
    }

    /// What is wrong with one operation on its own (names, counts, one-line texts).
    private static func problems<C>(of operation: Operation<C>) -> [String] {
        var problems: [String] = []
        if !isOperationName(operation.name) { problems.append("the name must match [a-z][a-z0-9_-]{0,63}") }
        if !isOneLine(operation.description) { problems.append("the description must be one line") }
        let sides = [
            ("parameter", operation.parameters, operation.parameterTypes.count),
            ("result", operation.results, operation.resultTypes.count),
        ]
        var fieldNames = Set<String>()
        for (side, fields, arity) in sides {
            if fields.count != arity {
                problems.append("\(fields.count) \(side) name(s) for a method with \(arity) \(side)(s)")
            }
            if arity > Int(MOLT_OPERATION_MAX_FIELDS) {
                problems.append("\(arity) \(side)s; the ABI allows at most \(MOLT_OPERATION_MAX_FIELDS)")
            }
            for field in fields {
                if !isFieldName(field.name) { problems.append("\(side) name '\(field.name)' must match [a-z][A-Za-z0-9_]{0,63}") }
                if !fieldNames.insert(field.name).inserted { problems.append("'\(field.name)' names two parameters or results") }
                if let text = field.description, !isOneLine(text) { problems.append("\(side) '\(field.name)': the description must be one line") }
            }
        }
        return problems
    }

    /// Calls operation `index` on `instance` (the values form), after checking what the host passed:
    /// never traps on a bad call, answers it with a status and a message. On failure every string or
    /// bytes result allocated so far is freed and its payload zeroed (so the host's free is harmless).
    package func call(
        _ index: Int, _ instance: molt_instance?, _ parameters: UnsafePointer<molt_value>?,
        _ results: UnsafeMutablePointer<molt_value>?, _ message: UnsafeMutablePointer<molt_message>?
    ) -> molt_status {
        func fail(_ error: PluginError) -> molt_status {
            writeMessage(error.cMessage, to: message)
            return error.cStatus
        }
        guard index < entries.count else {
            return fail(.unsupported("molt_pluginkit_operation_\(index): this plugin declares \(entries.count) operations"))
        }
        let entry = entries[index]
        if let problem = entry.problem {
            return fail(.internalError("operation '\(entry.name)' is declared wrongly: \(problem)"))
        }
        guard let instance else { return fail(.invalidArgument("operation '\(entry.name)': instance is NULL")) }
        guard entry.parameters.isEmpty || parameters != nil else {
            return fail(.invalidArgument("operation '\(entry.name)': parameters is NULL"))
        }
        guard entry.results.isEmpty || results != nil else {
            return fail(.invalidArgument("operation '\(entry.name)': results is NULL"))
        }
        for (i, field) in entry.parameters.enumerated() where parameters![i].type != field.type.rawValue {
            return fail(.invalidArgument("operation '\(entry.name)': parameter '\(field.name)' is passed as "
                + "\(ValueType.describe(parameters![i].type)), declared \(field.type)"))
        }
        for (i, field) in entry.results.enumerated() {
            guard results![i].type == field.type.rawValue else {
                return fail(.invalidArgument("operation '\(entry.name)': result '\(field.name)' is passed as "
                    + "\(ValueType.describe(results![i].type)), declared \(field.type)"))
            }
            results![i] = Self.zero(field.type)  // the ABI says the host zeroed it; do not rely on it
        }
        do throws(PluginError) {
            try entry.invoke(instance, parameters, results)
            return MOLT_OK
        } catch {
            for (i, field) in entry.results.enumerated() {
                switch field.type {
                case .string: free(UnsafeMutableRawPointer(mutating: results![i].as.string))
                case .bytes: free(UnsafeMutableRawPointer(mutating: results![i].as.bytes.data))
                case .int64, .double, .bool: break
                }
                results![i] = Self.zero(field.type)
            }
            return fail(error)
        }
    }

    private static func zero(_ type: ValueType) -> molt_value {
        var value = molt_value()
        value.type = type.rawValue
        return value
    }

    /// The static declarations: one molt_operation per operation, its symbol the thunk of its index.
    /// An operation with a problem is declared under a name stating it, which the host refuses at load.
    private static func declare<C>(_ operations: [Operation<C>], _ entries: [Entry]) -> UnsafePointer<molt_operation> {
        let array = UnsafeMutablePointer<molt_operation>.allocate(capacity: operations.count)
        for (index, (operation, entry)) in zip(operations, entries).enumerated() {
            let name = entry.problem.map { "\(operation.name) (PluginKit: \($0))" } ?? operation.name
            var flags = UInt32(MOLT_OPERATION_VALUES)
            if operation.blocking { flags |= UInt32(MOLT_OPERATION_BLOCKING) }
            (array + index).initialize(to: molt_operation(
                name: staticCString(name),
                description: staticCString(operation.description),
                symbol: staticCString("molt_pluginkit_operation_\(index)"),
                flags: flags,
                parameter_count: UInt32(operation.parameters.count),
                parameters: declare(operation.parameters, operation.parameterTypes),
                result_count: UInt32(operation.results.count),
                results: declare(operation.results, operation.resultTypes)))
        }
        return UnsafePointer(array)
    }

    /// The static fields (nil when none). A name without a type (more names than the method has
    /// values) is declared with type 0; the operation's name already says so.
    private static func declare(_ fields: [OperationField], _ types: [ValueType]) -> UnsafePointer<molt_operation_field>? {
        guard !fields.isEmpty else { return nil }
        let array = UnsafeMutablePointer<molt_operation_field>.allocate(capacity: fields.count)
        for (i, field) in fields.enumerated() {
            (array + i).initialize(to: molt_operation_field(
                name: staticCString(field.name),
                type: i < types.count ? types[i].rawValue : 0,
                description: field.description.map(staticCString)))
        }
        return UnsafePointer(array)
    }
}

/// `[a-z][a-z0-9_-]{0,63}` (molt_operation.name).
private func isOperationName(_ name: String) -> Bool {
    let utf8 = Array(name.utf8)
    guard (1...64).contains(utf8.count), isLower(utf8[0]) else { return false }
    return utf8.allSatisfy { isLower($0) || isDigit($0) || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: "-") }
}

/// `[a-z][A-Za-z0-9_]{0,63}` (molt_operation_field.name).
private func isFieldName(_ name: String) -> Bool {
    let utf8 = Array(name.utf8)
    guard (1...64).contains(utf8.count), isLower(utf8[0]) else { return false }
    return utf8.allSatisfy { isLower($0) || isDigit($0) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains($0) || $0 == UInt8(ascii: "_") }
}

private func isLower(_ c: UInt8) -> Bool { (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(c) }
private func isDigit(_ c: UInt8) -> Bool { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(c) }
private func isOneLine(_ text: String) -> Bool { !text.utf8.contains(where: { $0 == 10 || $0 == 13 || $0 == 0 }) }

/// A NUL-terminated copy that lives as long as the library (for the static declarations).
private func staticCString(_ string: String) -> UnsafePointer<CChar> {
    UnsafePointer(strdup(string)!)
}
