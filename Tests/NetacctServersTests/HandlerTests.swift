import FoundationEssentials
import Logging
import NIOCore
import NIOEmbedded
@testable import NetacctServers
import Accounting
import DaemonProtocol
import NetacctKit
import Testing

/// The servers' handlers on swift-nio's EmbeddedChannel, over a service of made-up samples:
/// no kernel, no sockets.
struct HandlerTests {
    /// A service whose every refresh sees `count` live single-thread processes, PIDs 1…count.
    static func shared(processes count: Int, loop: EventLoop, budget: Int = 16 << 20) -> SharedService {
        let threads = (1...max(count, 1)).prefix(count).map { pid in
            Snapshot.LiveThread(id: ThreadID(tid: Int32(pid), startNanoseconds: 1,
                                             process: ProcessID(pid: Int32(pid), startNanoseconds: 1)),
                                traffic: Traffic(udpTxPackets: UInt64(pid), udpTxBytes: 100 * UInt64(pid)), cgroupID: 1, comm: "p\(pid)")
        }
        let service = AccountingService(source: { Snapshot(threads: threads, exits: []) })
        return SharedService(service: service, loop: loop, logger: Logger(label: "test"), replyBudget: budget)
    }

    static func channel(_ handler: some ChannelHandler) throws -> EmbeddedChannel {
        let channel = EmbeddedChannel(handler: handler)
        try channel.connect(to: SocketAddress(unixDomainSocketPath: "/test")).wait()
        return channel
    }

    static func outbound(_ channel: EmbeddedChannel) throws -> [ByteBuffer] {
        var buffers: [ByteBuffer] = []
        while let buffer = try channel.readOutbound(as: ByteBuffer.self) { buffers.append(buffer) }
        return buffers
    }

    @Test func atopGetsWholeRecordsInChunksAndATerminator() throws {
        let loop = EmbeddedEventLoop()
        let channel = try Self.channel(NetatopHandler(shared: Self.shared(processes: 1000, loop: loop)))
        // atop's request, in two halves: nothing until it is whole.
        try channel.writeInbound(channel.allocator.buffer(bytes: [UInt8](repeating: 9, count: 50)))
        #expect(try Self.outbound(channel).isEmpty)
        try channel.writeInbound(channel.allocator.buffer(bytes: [UInt8](repeating: 9, count: 46)))
        let chunks = try Self.outbound(channel)
        // 1000 records and the terminator: three chunks of at most 360 whole records.
        #expect(chunks.map(\.readableBytes) == [360 * 96, 360 * 96, 281 * 96])
        var all = ByteBuffer()
        for var chunk in chunks { all.writeBuffer(&chunk) }
        let records = stride(from: 0, to: all.readableBytes, by: 96).map {
            NetatopRecord(decoding: all.getBytes(at: $0, length: 96)!)!
        }
        #expect(records.last == .terminator)
        let data = records.dropLast()
        #expect(Set(data.map(\.pid)) == Set(1...1000))
        #expect(data.allSatisfy { $0.traffic.udpTxPackets == UInt64($0.pid) && $0.command == "p\($0.pid)" })
        #expect(channel.isActive)
    }

    @Test func theAPIAnswersInOrderAndRefusesUnknownRequests() throws {
        let loop = EmbeddedEventLoop()
        let channel = try Self.channel(APIHandler(shared: Self.shared(processes: 3, loop: loop)))
        try channel.writeInbound(channel.allocator.buffer(string: "what\nproce"))
        try channel.writeInbound(channel.allocator.buffer(string: "sses\n"))
        let lines = try Self.outbound(channel).map { String(buffer: $0) }
        #expect(lines.count == 2)
        #expect(lines.first == #"{"version":1,"error":"unknown request \"what\" (requests: processes)"}"# + "\n")
        // The documented layout, snake_case, keys in order; counters cumulative.
        #expect(lines.last?.hasPrefix(#"{"version":1,"verb":"processes","threads_kept":false,"processes":[{"pid":1,"start_ns":1,"comm":"p1","cgroup_id":1,"exited":false,"tcp_tx_packets":0,"tcp_tx_bytes":0,"tcp_rx_packets":0,"tcp_rx_bytes":0,"udp_tx_packets":1,"udp_tx_bytes":100,"udp_rx_packets":0,"udp_rx_bytes":0},"#) == true)
        #expect(lines.last?.hasSuffix(#""losses":{"uncounted_calls":0,"dropped_exits":0,"unregistered_processes":0,"late_thread_exits":0,"forgotten_exits":0,"uncounted_socket_calls":0}}"# + "\n") == true)
        let reply = try DaemonAPI.decode(ProcessesReply.self, from: Data(lines[1].utf8.dropLast()))
        #expect(reply.processes.map { $0.pid }.sorted() == [1, 2, 3])
        #expect(reply.processes.map { $0.udpTxBytes }.sorted() == [100, 200, 300])
        #expect(reply.processes.allSatisfy { $0.comm == "p\($0.pid)" && !$0.exited })
    }

    @Test func anAPIClientThatQueuesTooManyRequestsIsDropped() throws {
        let loop = EmbeddedEventLoop()
        let channel = try Self.channel(APIHandler(shared: Self.shared(processes: 1, loop: loop)))
        // The one being answered and 4 more are allowed; the sixth line in one read is not.
        try channel.writeInbound(channel.allocator.buffer(string: String(repeating: "processes\n", count: 5)))
        #expect(channel.isActive)
        #expect(try Self.outbound(channel).count == 5)
        try channel.writeInbound(channel.allocator.buffer(string: String(repeating: "processes\n", count: 6)))
        #expect(!channel.isActive)
    }

    @Test func aRequestLineWithoutEndIsBounded() throws {
        let loop = EmbeddedEventLoop()
        let channel = try Self.channel(APIHandler(shared: Self.shared(processes: 1, loop: loop)))
        try channel.writeInbound(channel.allocator.buffer(bytes: [UInt8](repeating: 0x61, count: APIHandler.maximumRequest)))
        #expect(channel.isActive)
        try channel.writeInbound(channel.allocator.buffer(bytes: [0x61]))
        #expect(!channel.isActive)
    }
}

/// atop's 96-byte record, both ways.
struct NetatopRecordTests {
    @Test func aRecordSurvivesEncodingAndDecoding() throws {
        let record = NetatopRecord(pid: 4_000_000, startSeconds: 1234, command: "a-name-of-15-by",
                                   traffic: Traffic(tcpTxPackets: 1, tcpTxBytes: 2, tcpRxPackets: 3, tcpRxBytes: 4,
                                                    udpTxPackets: 5, udpTxBytes: 6, udpRxPackets: 7, udpRxBytes: .max))
        var buffer = ByteBuffer()
        record.encode(into: &buffer)
        #expect(buffer.readableBytes == NetatopRecord.size)
        #expect(NetatopRecord(decoding: buffer.readableBytesView) == record)
        // The id at offset 0, the first counter at 32 (atop's struct netpertask, little-endian).
        #expect(buffer.getInteger(at: 0, endianness: .little, as: Int32.self) == 4_000_000)
        #expect(buffer.getInteger(at: 32, endianness: .little, as: UInt64.self) == 1)
        // A longer name keeps the kernel's 15 bytes and a NUL.
        var long = ByteBuffer()
        NetatopRecord(pid: 1, command: "a-name-longer-than-fifteen").encode(into: &long)
        #expect(NetatopRecord(decoding: long.readableBytesView)?.command == "a-name-longer-t")
        #expect(NetatopRecord(decoding: [UInt8](repeating: 0, count: 95)) == nil)
    }
}

/// The bound on unsent replies and the rate-limited log, on their own.
struct ServerPartsTests {
    final class Clock: @unchecked Sendable { var now = 0.0 }

    @Test func theReplyBudgetDropsTheOldestUnreadReplyNeverTheAsker() {
        let clock = Clock()
        let budget = ReplyBudget(limit: 100, clock: { clock.now })
        let a = Owner(), b = Owner(), c = Owner()
        var dropped: [String] = []
        budget.hold(60, for: a.id) { dropped.append("a") }
        clock.now = 1
        budget.hold(30, for: b.id) { dropped.append("b") }
        clock.now = 2
        // c needs 40: a (oldest) goes, b stays.
        #expect(budget.hold(40, for: c.id) { dropped.append("c") } == 1)
        #expect(dropped == ["a"])
        #expect(budget.total == 70)
        // What has been sent is released; a client that has gone frees what it held.
        budget.release(30, for: b.id)
        #expect(budget.forget(c.id))
        #expect(budget.total == 0)
        // A reply larger than the whole budget is still sent (the asker is never dropped).
        #expect(budget.hold(500, for: a.id) { dropped.append("a") } == 0)
        #expect(budget.dropped == 1)
    }

    final class Owner {
        var id: ObjectIdentifier { ObjectIdentifier(self) }
    }

    final class Lines: @unchecked Sendable { var messages: [String] = [] }

    struct Capture: LogHandler {
        let lines: Lines
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(level: Logger.Level, message: Logger.Message, metadata: Logger.Metadata?, source: String,
                 file: String, function: String, line: UInt) {
            let held = metadata?["similar_since_last_line"].map { " (+\($0))" } ?? ""
            lines.messages.append("\(message)\(held)")
        }
    }

    @Test func repeatedWarningsAreLoggedOncePerIntervalWithACount() {
        let clock = Clock(), lines = Lines()
        let log = RateLimitedLog(logger: Logger(label: "test") { _ in Capture(lines: lines) }, interval: 10, clock: { clock.now })
        for _ in 0..<500 { log.log(.warning, "refused", "refusing a client") }
        log.log(.warning, "other", "something else")
        clock.now = 11
        log.log(.warning, "refused", "refusing a client")
        #expect(lines.messages == ["refusing a client", "something else", "refusing a client (+499)"])
    }
}

/// Optional collectors: one the kernel cannot support is skipped, anything else is an error.
struct OptionalCollectorTests {
    final class Fake: Collector {
        var verb: DaemonAPI.Verb { .nic }
        func connect(client: APIClientID) {}
        func disconnect(client: APIClientID) {}
        func maintain(interval: Double) throws -> Bool { false }
        func answer(client: APIClientID) throws -> any DaemonReply { NICReply(interfaces: []) }
        var losses: [String] { [] }
    }

    @Test func aCollectorTheKernelCannotSupportIsSkippedOthersFailTheDaemon() throws {
        let logger = Logger(label: "test")
        #expect(try Daemon.optional("fake", logger: logger) { Fake() } != nil)
        #expect(try Daemon.optional("fake", logger: logger) {
            throw NetacctError("Kernel 5.4 has no such tracepoint", kind: .unsupported)
        } == nil)
        #expect(throws: NetacctError.self) {
            _ = try Daemon.optional("fake", logger: logger) { throw NetacctError("needs root", kind: .permission) }
        }
    }
}
