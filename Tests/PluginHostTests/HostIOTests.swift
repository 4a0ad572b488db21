import Logging
import NIOCore
import NIOPosix
import PluginABI
@testable import PluginHost
import Synchronization
import Testing

/// The ABI 1.1 I/O services as a plugin sees them: through the C function pointers of
/// molt_host_services, with C callbacks, against real sockets.
@Suite struct HostIOTests {
    /// What a plugin's callbacks saw, in order.
    final class Recorder: Sendable {
        let events = Mutex<[String]>([])
        let loops = Mutex<[UInt32]>([])
        func record(_ event: String, loop: UInt32) {
            events.withLock { $0.append(event) }
            loops.withLock { $0.append(loop) }
        }
        var seen: [String] { events.withLock { $0 } }
    }

    /// The services of an instance, and the recorder behind the callbacks' context.
    struct Plugin {
        let services: molt_host_services
        let recorder = Recorder()
        var context: UnsafeMutableRawPointer { Unmanaged.passUnretained(recorder).toOpaque() }
        var loop: UInt32 { services.current_loop(services.host_context) }

        init() {
            services = HostServicesContext.services(logger: Logger(label: "test"), io: .shared)
        }

        func events() -> molt_stream_events {
            molt_stream_events(
                context: context,
                connected: { context in Plugin.recorder(context).record("connected", loop: Plugin.loop()) },
                received: { context, bytes, length in
                    let text = String(decoding: UnsafeBufferPointer(start: bytes, count: length), as: UTF8.self)
                    Plugin.recorder(context).record("received \(text)", loop: Plugin.loop())
                },
                closed: { context, message in
                    Plugin.recorder(context).record("closed \(String(cString: message!))", loop: Plugin.loop())
                })
        }

        static func recorder(_ context: UnsafeMutableRawPointer?) -> Recorder {
            Unmanaged<Recorder>.fromOpaque(context!).takeUnretainedValue()
        }

        static func loop() -> UInt32 { HostIO.shared.currentLoop() }
    }

    func waitUntil(_ condition: () -> Bool) async throws {
        for _ in 0..<500 where !condition() { try await Task.sleep(for: .milliseconds(10)) }
    }

    @Test func aFailedConnectDeliversClosedOnceWithTheReason() async throws {
        let plugin = Plugin()
        #expect(plugin.services.struct_size >= UInt32(MemoryLayout<molt_host_services>.size))
        #expect(plugin.services.loop_count >= 1)
        #expect(plugin.loop == UInt32.max, "a test thread is not one of the host's loops")
        var events = plugin.events()
        // Port 1 on loopback: nothing listens there.
        let stream = plugin.services.stream_open(plugin.services.host_context, 0, "127.0.0.1", 1, 2000, &events)
        #expect(stream != nil)
        try await waitUntil { !plugin.recorder.seen.isEmpty }
        try await Task.sleep(for: .milliseconds(50))
        let seen = plugin.recorder.seen
        #expect(seen.count == 1 && seen[0].hasPrefix("closed cannot connect to 127.0.0.1:1"), "\(seen)")
        #expect(plugin.recorder.loops.withLock { $0 } == [0], "callbacks run on the stream's loop")
    }

    @Test func bytesWrittenBeforeConnectingAreSentThenEchoedThenClosed() async throws {
        let echo = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { channel in channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(Echo()) } }
            .bind(host: "127.0.0.1", port: 0).get()
        defer { echo.close(promise: nil) }
        let plugin = Plugin()
        var events = plugin.events()
        let port = UInt16(echo.localAddress!.port!)
        let loop = plugin.services.loop_count - 1
        let stream = try #require(plugin.services.stream_open(plugin.services.host_context, loop, "127.0.0.1", port, 2000, &events))
        // Writes and close belong on the stream's loop: hop there with a timer of delay 0.
        let write: molt_timer_fn = { context in
            let (stream, write) = Unmanaged<StreamBox>.fromOpaque(context!).takeRetainedValue().value
            "ping".withCString { write(stream, UnsafeRawPointer($0).assumingMemoryBound(to: UInt8.self), 4) }
        }
        let box = Unmanaged.passRetained(StreamBox(value: (stream, plugin.services.stream_write))).toOpaque()
        #expect(plugin.services.timer_start(plugin.services.host_context, loop, 0, write, box) != 0)
        try await waitUntil { plugin.recorder.seen.contains("received ping") }
        let close: molt_timer_fn = { context in
            let (stream, close) = Unmanaged<CloseBox>.fromOpaque(context!).takeRetainedValue().value
            "done".withCString { close(stream, $0) }
        }
        let closeBox = Unmanaged.passRetained(CloseBox(value: (stream, plugin.services.stream_close))).toOpaque()
        _ = plugin.services.timer_start(plugin.services.host_context, loop, 0, close, closeBox)
        try await waitUntil { plugin.recorder.seen.last?.hasPrefix("closed") == true }
        try await Task.sleep(for: .milliseconds(50))
        #expect(plugin.recorder.seen == ["connected", "received ping", "closed done"])
        #expect(Set(plugin.recorder.loops.withLock { $0 }) == [loop])
    }

    /// The ABI asks for writes on the stream's loop; a plugin that writes from another thread still has
    /// its bytes sent, in order, and its callbacks on the loop.
    @Test func aWriteFromAnotherThreadIsCarriedToTheLoop() async throws {
        let echo = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { channel in channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(Echo()) } }
            .bind(host: "127.0.0.1", port: 0).get()
        defer { echo.close(promise: nil) }
        let plugin = Plugin()
        var events = plugin.events()
        let stream = try #require(plugin.services.stream_open(plugin.services.host_context, 0, "127.0.0.1",
                                                              UInt16(echo.localAddress!.port!), 2000, &events))
        try await waitUntil { plugin.recorder.seen.contains("connected") }
        for word in ["one", "two"] {
            word.withCString { plugin.services.stream_write(stream, UnsafeRawPointer($0).assumingMemoryBound(to: UInt8.self), word.utf8.count) }
        }
        try await waitUntil { plugin.recorder.seen.joined().contains("onetwo") || plugin.recorder.seen.contains("received two") }
        "bye".withCString { plugin.services.stream_close(stream, $0) }
        try await waitUntil { plugin.recorder.seen.last?.hasPrefix("closed") == true }
        let received = plugin.recorder.seen.filter { $0.hasPrefix("received ") }.map { $0.dropFirst("received ".count) }.joined()
        #expect(received == "onetwo")
        #expect(plugin.recorder.seen.last == "closed bye")
        #expect(Set(plugin.recorder.loops.withLock { $0 }) == [0])
    }

    @Test func aTimerFiresOnceOnItsLoopAndACancelledOneNever() async throws {
        let plugin = Plugin()
        let fire: molt_timer_fn = { context in Plugin.recorder(context).record("fired", loop: Plugin.loop()) }
        let kept = plugin.services.timer_start(plugin.services.host_context, 0, 20, fire, plugin.context)
        let cancelled = Unmanaged.passRetained(CancelBox(value: plugin.services)).toOpaque()
        // Cancel on the timer's loop, as the ABI asks: from a timer of delay 0 on that loop.
        let timer = plugin.services.timer_start(plugin.services.host_context, 0, 200, fire, plugin.context)
        CancelBox.pending.withLock { $0 = timer }
        _ = plugin.services.timer_start(plugin.services.host_context, 0, 0, { context in
            let services = Unmanaged<CancelBox>.fromOpaque(context!).takeRetainedValue().value
            services.timer_cancel(services.host_context, CancelBox.pending.withLock { $0 })
        }, cancelled)
        #expect(kept != 0 && timer != 0 && kept != timer)
        try await Task.sleep(for: .milliseconds(400))
        #expect(plugin.recorder.seen == ["fired"])
        #expect(plugin.recorder.loops.withLock { $0 } == [0])
        #expect(plugin.services.timer_start(plugin.services.host_context, plugin.services.loop_count, 0, fire, plugin.context) == 0,
                "a loop out of range is refused")
    }
}

final class StreamBox: @unchecked Sendable {
    // @unchecked: handed to one timer callback, which takes it back.
    let value: (OpaquePointer, @convention(c) (OpaquePointer?, UnsafePointer<UInt8>?, Int) -> Void)
    init(value: (OpaquePointer, @convention(c) (OpaquePointer?, UnsafePointer<UInt8>?, Int) -> Void)) { self.value = value }
}

final class CloseBox: @unchecked Sendable {
    // @unchecked: handed to one timer callback, which takes it back.
    let value: (OpaquePointer, @convention(c) (OpaquePointer?, UnsafePointer<CChar>?) -> Void)
    init(value: (OpaquePointer, @convention(c) (OpaquePointer?, UnsafePointer<CChar>?) -> Void)) { self.value = value }
}

final class CancelBox: @unchecked Sendable {
    // @unchecked: handed to one timer callback, which takes it back.
    static let pending = Mutex<UInt64>(0)
    let value: molt_host_services
    init(value: molt_host_services) { self.value = value }
}

/// Echoes what it reads.
final class Echo: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        context.writeAndFlush(data, promise: nil)
    }
}
