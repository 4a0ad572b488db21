import PluginABI
@testable import PluginKit
import Synchronization
import Testing

/// HostServices' ABI 1.1 I/O (HostIO.swift) against a fake host whose loops are driven by the test:
/// it records what the plugin asks for and delivers the callbacks when the test says so.
@Suite struct HostIOTests {
    @Test func aHostWithoutIOServicesHasNoLoops() {
        #expect(HostServices.none.loopCount == 0 && HostServices.none.currentLoop == nil)
        let fake = FakeHost(loops: 2)
        fake.services.pointee.struct_size = UInt32(MemoryLayout<molt_host_services>.offset(of: \.log)! + MemoryLayout<UnsafeRawPointer>.size)
        let host = HostServices(UnsafePointer(fake.services))
        #expect(host.loopCount == 0, "an ABI 1.0 host's struct_size ends after log")
        #expect(host.startTimer(loop: 0, after: .zero) {} == nil)
        #expect(host.openStream(loop: 0, address: "localhost", port: 1, timeout: .seconds(1), handler: Recorder()) == nil)
        #expect(fake.timers.isEmpty && fake.streams.isEmpty)
    }

    @Test func aStreamOpenedOnItsLoopReportsEveryEventAndReleasesItsHandlerWhenClosed() throws {
        let fake = FakeHost(loops: 2)
        fake.current = 1
        let host = HostServices(UnsafePointer(fake.services))
        #expect(host.loopCount == 2 && host.currentLoop == 1)
        var recorder: Recorder? = Recorder()
        weak let released = recorder
        let stream = try #require(host.openStream(loop: 1, address: "redis.local", port: 6379, timeout: .milliseconds(1500), handler: recorder!))
        recorder = nil
        let opened = try #require(fake.streams.first)
        #expect(fake.timers.isEmpty, "opened directly on its own loop")
        #expect(opened.loop == 1 && opened.address == "redis.local" && opened.port == 6379 && opened.timeoutMs == 1500)

        stream.write([1, 2])  // before connected: the host queues it
        opened.connected()
        stream.write(Array("PING".utf8))
        opened.receive(Array("+PONG\r\n".utf8))
        #expect(opened.written == [1, 2] + Array("PING".utf8))
        #expect(released?.events == ["connected", "received +PONG\r\n"])

        stream.close(reason: "done")
        stream.write([9])
        #expect(opened.closeReason == "done" && opened.written.last == Array("PING".utf8).last, "nothing is sent once closing")
        opened.receive([1])  // late bytes after close are not reported
        opened.closed("connection reset")
        #expect(released == nil, "the handler is released once closed was delivered")
        #expect(stream.isClosing)
    }

    @Test func aStreamOpenedFromAnotherThreadHopsOntoItsLoopKeepingEarlierWrites() throws {
        let fake = FakeHost(loops: 2)
        let host = HostServices(UnsafePointer(fake.services))
        let recorder = Recorder()
        let stream = try #require(host.openStream(loop: 0, address: "10.0.0.1", port: 1, timeout: .zero, handler: recorder))
        #expect(fake.streams.isEmpty && fake.timers.count == 1 && fake.timers[0].delay == 0 && fake.timers[0].loop == 0)
        stream.write(Array("early".utf8))  // on the loop, before the hop ran
        fake.fire(0)
        let opened = try #require(fake.streams.first)
        #expect(opened.written == Array("early".utf8) && opened.timeoutMs == 1, "a zero timeout still gives the dial 1 ms")
        opened.closed("refused")
        #expect(recorder.events == ["closed refused"])
    }

    @Test func closingBeforeTheHopRanNeverOpensTheStream() throws {
        let fake = FakeHost(loops: 1)
        let host = HostServices(UnsafePointer(fake.services))
        let recorder = Recorder()
        let stream = try #require(host.openStream(loop: 0, address: "h", port: 2, timeout: .seconds(1), handler: recorder))
        stream.close(reason: "shutting down")
        fake.fire(0)
        #expect(fake.streams.isEmpty && recorder.events == ["closed shutting down"])
        #expect(host.openStream(loop: 1, address: "h", port: 2, timeout: .seconds(1), handler: recorder) == nil, "loop out of range")
    }

    @Test func timersFireOnceOrAreCancelledAndReleaseTheirClosure() throws {
        let fake = FakeHost(loops: 2)
        let host = HostServices(UnsafePointer(fake.services))
        let fired = Atomic<Int>(0)
        let timer = try #require(host.startTimer(loop: 1, after: .microseconds(2500)) { fired.add(1, ordering: .relaxed) })
        #expect(fake.timers[0].loop == 1 && fake.timers[0].delay == 3, "rounded up: a timer never fires early")
        #expect(timer.id == fake.timers[0].id && timer.isPending)
        fake.fire(0)
        #expect(fired.load(ordering: .relaxed) == 1 && !timer.isPending)
        #expect(!timer.cancel() && fake.cancelled.isEmpty, "a fired timer is not cancelled")

        weak var boxReleased: Box?
        let second = try #require(startHolding(host) { boxReleased = $0 })
        #expect(boxReleased != nil, "a pending timer holds its closure")
        #expect(second.cancel() && fake.cancelled == [second.id])
        #expect(boxReleased == nil, "cancelling releases the closure")
        #expect(host.startTimer(loop: 2, after: .zero) {} == nil)
    }

    @Test func durationsBecomeWholeMilliseconds() {
        #expect(milliseconds(.zero) == 0 && milliseconds(.seconds(-1)) == 0)
        #expect(milliseconds(.nanoseconds(1)) == 1 && milliseconds(.milliseconds(8)) == 8)
        #expect(milliseconds(.seconds(3)) == 3000 && milliseconds(.seconds(Int64.max / 2)) == UInt32.max)
    }
}

private final class Box: Sendable {}

/// A timer whose closure holds a new Box (which `reveal` gets, weakly held by the caller).
private func startHolding(_ host: HostServices, reveal: (Box) -> Void) -> HostTimer? {
    let box = Box()
    reveal(box)
    return host.startTimer(loop: 0, after: .seconds(1)) { withExtendedLifetime(box) {} }
}

/// A stream handler that writes down what it was told.
private final class Recorder: HostStreamHandler, @unchecked Sendable {
    // @unchecked Sendable: the tests call it on their own thread only.
    var events: [String] = []
    func streamConnected(_ stream: HostStream) { events.append("connected") }
    func stream(_ stream: HostStream, received bytes: UnsafeRawBufferPointer) {
        events.append("received " + String(decoding: bytes, as: UTF8.self))
    }
    func streamClosed(_ stream: HostStream, reason: String) { events.append("closed \(reason)") }
}

/// A molt_host_services whose loops are the test itself.
private final class FakeHost: @unchecked Sendable {
    // @unchecked Sendable: used by one test, on its own thread.
    struct Timer {
        let id: UInt64, loop: UInt32, delay: UInt32
        let fire: molt_timer_fn
        let context: UnsafeMutableRawPointer?
    }
    let services = UnsafeMutablePointer<molt_host_services>.allocate(capacity: 1)
    var current = UInt32.max
    var streams: [FakeStream] = []
    var timers: [Timer] = []
    var cancelled: [UInt64] = []

    init(loops: UInt32) {
        services.initialize(to: molt_host_services(
            struct_size: UInt32(MemoryLayout<molt_host_services>.size),
            host_context: nil,
            log: { _, _, _ in },
            loop_count: loops,
            current_loop: { FakeHost.from($0).current },
            stream_open: { context, loop, address, port, timeout, events in
                let stream = FakeStream(loop: loop, address: String(cString: address!), port: port, timeoutMs: timeout, events: events!.pointee)
                FakeHost.from(context).streams.append(stream)
                return OpaquePointer(Unmanaged.passUnretained(stream).toOpaque())
            },
            stream_write: { stream, bytes, length in
                FakeStream.from(stream).written += Array(UnsafeBufferPointer(start: bytes, count: length))
            },
            stream_close: { stream, reason in FakeStream.from(stream).closeReason = String(cString: reason!) },
            timer_start: { context, loop, delay, fire, timerContext in
                let host = FakeHost.from(context)
                let id = UInt64(host.timers.count + 1)
                host.timers.append(Timer(id: id, loop: loop, delay: delay, fire: fire!, context: timerContext))
                return id
            },
            timer_cancel: { context, id in FakeHost.from(context).cancelled.append(id) },
            changed: nil))
        services.pointee.host_context = Unmanaged.passUnretained(self).toOpaque()
    }

    deinit { services.deallocate() }

    static func from(_ context: UnsafeMutableRawPointer?) -> FakeHost { Unmanaged.fromOpaque(context!).takeUnretainedValue() }

    func fire(_ index: Int) { timers[index].fire(timers[index].context) }
}

private final class FakeStream {
    let loop: UInt32, address: String, port: UInt16, timeoutMs: UInt32
    let events: molt_stream_events
    var written: [UInt8] = []
    var closeReason: String?

    init(loop: UInt32, address: String, port: UInt16, timeoutMs: UInt32, events: molt_stream_events) {
        (self.loop, self.address, self.port, self.timeoutMs, self.events) = (loop, address, port, timeoutMs, events)
    }

    static func from(_ stream: OpaquePointer?) -> FakeStream { Unmanaged.fromOpaque(UnsafeRawPointer(stream!)).takeUnretainedValue() }

    func connected() { events.connected(events.context) }
    func receive(_ bytes: [UInt8]) { bytes.withUnsafeBufferPointer { events.received(events.context, $0.baseAddress, $0.count) } }
    func closed(_ message: String) { message.withCString { events.closed(events.context, $0) } }
}
