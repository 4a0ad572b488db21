import Logging
import PluginABI
import Synchronization

/// The host side of one instance's molt_host_services: its `host_context`, retained by the services
/// struct until the instance is destroyed (or its init failed). Log lines carry the component and
/// plugin; I/O goes to the host's loops (`HostIO`).
final class HostServicesContext: Sendable {
    let logger: Logger
    let io: HostIO
    /// Who hears the plugin's `changed` reports (set by the engine once the instance serves); reports
    /// before it is set, or after it is cleared, are dropped: whoever sets it reads everything anew.
    let changeHandler = Mutex<(@Sendable (String?) -> Void)?>(nil)

    private init(logger: Logger, io: HostIO) {
        self.logger = logger
        self.io = io
    }

    /// A services struct owning a new context (released with `PluginInstance.release`).
    static func services(logger: Logger, io: HostIO) -> molt_host_services {
        molt_host_services(
            struct_size: UInt32(MemoryLayout<molt_host_services>.size),
            host_context: Unmanaged.passRetained(HostServicesContext(logger: logger, io: io)).toOpaque(),
            log: { context, level, message in
                guard let context, let message else { return }
                HostServicesContext.from(context).log(level: level, message: copiedString(message) ?? "")
            },
            loop_count: UInt32(io.loops.count),
            current_loop: { context in
                guard let context else { return UInt32.max }
                return HostServicesContext.from(context).io.currentLoop()
            },
            stream_open: { context, loop, address, port, timeoutMs, events in
                guard let context, let address, let events else { return nil }
                return HostServicesContext.from(context).io.openStream(loop: loop, address: String(cString: address), port: port,
                                                   timeoutMs: timeoutMs, events: events.pointee).map(OpaquePointer.init)
            },
            stream_write: { stream, bytes, length in
                guard let stream, let bytes else { return }
                let hostStream = HostStream.from(stream)
                guard hostStream.eventLoop.inEventLoop else {
                    // The ABI says "on the stream's loop only"; a plugin that breaks the rule gets its
                    // bytes sent in order from the loop instead of a data race.
                    let copy = Array(UnsafeRawBufferPointer(start: bytes, count: length))
                    hostStream.eventLoop.execute { copy.withUnsafeBytes { hostStream.write($0) } }
                    return
                }
                hostStream.write(UnsafeRawBufferPointer(start: bytes, count: length))
            },
            stream_close: { stream, reason in
                guard let stream else { return }
                let hostStream = HostStream.from(stream)
                let why = reason.map { String(cString: $0) } ?? "closed by the plugin"
                guard hostStream.eventLoop.inEventLoop else {
                    hostStream.eventLoop.execute { hostStream.close(reason: why) }  // see stream_write
                    return
                }
                hostStream.close(reason: why)
            },
            timer_start: { context, loop, delayMs, fire, timerContext in
                guard let context, let fire else { return 0 }
                return HostServicesContext.from(context).io.startTimer(loop: loop, delayMs: delayMs, fire: fire, context: timerContext)
            },
            timer_cancel: { context, timer in
                guard let context else { return }
                HostServicesContext.from(context).io.cancelTimer(timer)
            },
            changed: { context, key in
                guard let context else { return }
                let changedKey = key.map { String(cString: $0) }
                if let handler = HostServicesContext.from(context).changeHandler.withLock({ $0 }) { handler(changedKey) }
            })
    }

    fileprivate static func from(_ context: UnsafeMutableRawPointer) -> HostServicesContext {
        Unmanaged<HostServicesContext>.fromOpaque(context).takeUnretainedValue()
    }

    func log(level: molt_log_level, message: String) {
        let swiftLevel: Logger.Level
        switch level {
        case MOLT_LOG_TRACE: swiftLevel = .trace
        case MOLT_LOG_DEBUG: swiftLevel = .debug
        case MOLT_LOG_INFO: swiftLevel = .info
        case MOLT_LOG_WARNING: swiftLevel = .warning
        default: swiftLevel = .error
        }
        logger.log(level: swiftLevel, "\(message)")
    }
}

extension HostStream {
    /// The stream behind a `molt_stream *` handle (imported as an opaque pointer).
    static func from(_ stream: OpaquePointer) -> HostStream {
        Unmanaged<HostStream>.fromOpaque(UnsafeMutableRawPointer(stream)).takeUnretainedValue()
    }
}
