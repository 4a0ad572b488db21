package import PluginABI

/// Log levels of `HostServices.log`.
public enum LogLevel: Int32, Sendable {
    case trace = 0, debug, info, warning, error
}

/// The services the host hands to `init(config:host:)`. Usable from any thread until the
/// instance's `shutdown()` has returned (do not keep it past that, e.g. in a thread you did not join).
/// ABI 1.1 hosts also run TCP streams and timers on their event loops for the plugin (HostIO.swift).
public struct HostServices: @unchecked Sendable {
    // @unchecked Sendable: `services` points to a host-owned molt_host_services that the ABI keeps
    // valid, with functions callable from any thread, until molt_plugin_destroy returns; the struct
    // is only read, never written.
    let services: UnsafePointer<molt_host_services>?

    package init(_ services: UnsafePointer<molt_host_services>?) { self.services = services }

    /// Services that do nothing, for unit-testing a component without a host.
    public static let none = HostServices(nil)

    /// Writes one log line attributed to the instance.
    public func log(_ level: LogLevel, _ message: String) {
        guard let services, ABILayout.hostServicesHasLog(services.pointee.struct_size),
              let log = services.pointee.log else { return }
        let context = services.pointee.host_context
        message.withCString { log(context, level.rawValue, $0) }
    }
}
