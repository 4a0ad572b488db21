import ArgumentParser
import FoundationEssentials
import GRPCCore
import GRPCNIOTransportHTTP2
import PluginHost
import MoltProtos
import SwiftProtobuf

/// `molt subscriptions list|apply|remove`: the app's pub/sub subscriptions of a running molt, through its Control API.
struct SubscriptionsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "subscriptions",
        abstract: "List, apply or remove the pub/sub subscriptions a running molt delivers to its app (needs molt serve --app-port).",
        discussion: """
            Subscriptions applied here are kept in molt's --state-directory and restored at restart. One of the same \
            name in a --components file, a file-agent file or an etcd key is overridden while this one exists; for \
            one pubsub and topic, the app's programmatic subscription wins, then the first source to declare it.
            Exit 0 on success, 1 when molt refuses the request (malformed YAML, unknown name, no app channel), \
            2 when the control plane cannot be reached or refuses the call (token).
            """,
        subcommands: [List.self, ApplyFile.self, RemoveName.self])

    /// Codes of a request molt read and refused (as opposed to a control plane that cannot be reached or a bad token).
    static let refusals: [RPCError.Code] = [.invalidArgument, .notFound, .failedPrecondition, .internalError]

    /// Runs a subscription call; a refusal by molt (bad input, unknown name, no app channel) is printed and exits 1.
    static func call<Result: Sendable>(
        _ control: ControlOptions,
        _ body: @escaping @Sendable (Molt_Control_V1_Control.Client<HTTP2ClientTransport.Posix>, Metadata, CallOptions) async throws -> Result
    ) async throws -> Result {
        let outcome = try await control.withControl { client, metadata, options -> Result? in
            do {
                return try await body(client, metadata, options)
            } catch let error as RPCError where Self.refusals.contains(error.code) {
                printError("molt: \(error.message)")
                return nil
            }
        }
        guard let result = outcome else { throw ControlExit.failed }
        return result
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Every subscription: programmatic, and declared by a file, an etcd key or the Control API, with its state.",
            discussion: """
                STATE: subscribed; waiting-for-pubsub (its pubsub is not configured, molt keeps trying); starting; \
                refused (another source's subscription to that pubsub and topic runs); overridden (a Control API \
                subscription of the same name replaces it); not-scoped (its scopes exclude this app).
                """)

        @OptionGroup var control: ControlOptions
        @Flag(help: "Print JSON: {\"subscriptions\": [...]}.") var json = false

        func run() async throws {
            let response = try await SubscriptionsCommand.call(control) { client, metadata, options in
                try await client.listSubscriptions(Molt_Control_V1_ListSubscriptionsRequest(), metadata: metadata, options: options)
            }
            if json {
                print(try response.jsonString())
                return
            }
            let header = ["NAME", "PUBSUB", "TOPIC", "ROUTE", "STATE", "SOURCE"]
            let rows = response.subscriptions.map { status in
                let subscription = status.subscription
                let route = subscription.rules.isEmpty ? subscription.defaultRoute : "\(subscription.defaultRoute) (+\(subscription.rules.count) rules)"
                let state = status.detail.isEmpty ? status.state : "\(status.state): \(status.detail)"
                return [subscription.name.isEmpty ? "-" : subscription.name, subscription.pubsubname, subscription.topic, route,
                        state, "\(status.sourceKind) \(status.source)"]
            }
            print(table(header, rows))
        }
    }

    struct ApplyFile: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "apply",
            abstract: "Add or replace the Dapr kind: Subscription documents of a YAML file (all of them, or none when one is malformed).",
            discussion: """
                Each document: apiVersion dapr.io/v2alpha1 (or v1alpha1), kind Subscription, metadata.name, spec.pubsubname, \
                spec.topic, spec.routes.default and spec.routes.rules (each match a CEL expression, compiled when applied), spec.deadLetterTopic, spec.metadata, \
                scopes. Takes effect at once; other subscriptions keep running untouched.
                """)

        @OptionGroup var control: ControlOptions
        @Option(name: .shortAndLong, help: "The YAML file of kind: Subscription documents.") var file: String

        func run() async throws {
            guard let bytes = readWholeFile(file) else { throw ValidationError("cannot read \(file)") }
            var request = Molt_Control_V1_ApplySubscriptionRequest()
            request.yaml = String(decoding: bytes, as: UTF8.self)
            request.yamlOrigin = file
            let sent = request
            let response = try await SubscriptionsCommand.call(control) { client, metadata, options in
                try await client.applySubscription(sent, metadata: metadata, options: options)
            }
            for applied in response.applied {
                let status = applied.status
                let state = status.state.isEmpty ? "" : ", \(status.state)\(status.detail.isEmpty ? "" : ": \(status.detail)")"
                print("subscription/\(applied.name): \(applied.action) (\(status.subscription.pubsubname)/\(status.subscription.topic) -> "
                    + "\(status.subscription.defaultRoute)\(state))")
            }
            for warning in response.warnings { print("  \(warning)") }
        }
    }

    struct RemoveName: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "remove",
            abstract: "Remove a subscription added through the Control API (or `molt subscriptions apply`).")

        @OptionGroup var control: ControlOptions
        @Argument(help: "The subscription's name.") var name: String

        func run() async throws {
            var request = Molt_Control_V1_RemoveSubscriptionRequest()
            request.name = name
            let sent = request
            let response = try await SubscriptionsCommand.call(control) { client, metadata, options in
                try await client.removeSubscription(sent, metadata: metadata, options: options)
            }
            print("subscription/\(response.removed.name): removed (\(response.removed.pubsubname)/\(response.removed.topic))")
        }
    }
}

