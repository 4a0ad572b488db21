import EventRouting
import ServingCore

extension AppSubscription {
    /// The app path of one event (`cloudEvent`: the CloudEvent as delivered, decoded from JSON; a raw payload's is
    /// the wrapper molt builds), as Dapr's findMatchingRoute chooses it: the first rule whose `match` is true for
    /// `event`, else `route`. nil: no rule matched and there is no default route (Dapr drops the event, or sends it
    /// to the dead-letter topic). Throws when a match cannot be evaluated for this event (a missing field, a type
    /// mismatch) or is not a bool: Dapr stops there and dead-letters the event, or has it delivered again.
    ///
    /// Cost: without rules, none; with rules, the event is converted to CEL values once per call.
    package func path(for cloudEvent: JSONValue) throws(RoutingError) -> String? {
        guard !rules.isEmpty else { return route.isEmpty ? nil : route }
        return try rules.path(for: CELValue(cloudEvent: cloudEvent), defaultPath: route)
    }
}

extension CELValue {
    /// A JSON value as Dapr's rules see it: decoded by Go's encoding/json into `any`, so every number is a double.
    package init(cloudEvent value: JSONValue) {
        switch value {
        case .null: self = .null
        case .bool(let flag): self = .bool(flag)
        case .integer(let number): self = .double(Double(number))
        case .number(let number): self = .double(number)
        case .string(let text): self = .string(text)
        case .array(let items): self = .list(items.map(CELValue.init(cloudEvent:)))
        case .object(let fields): self = .map(fields.mapValues(CELValue.init(cloudEvent:)))
        }
    }
}
