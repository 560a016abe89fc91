import Foundation
import Glibc
import Accounting
import NetacctKit
import Testing

/// Per-socket counting (`top --connections`) with real programs and real sockets: exact calls
/// and bytes per connection, endpoints, closing, a reused 4-tuple, a socket two processes use,
/// and a full record table.
@Suite(.serialized, .enabled(if: BPFEnvironment.available, "needs root and Linux >= 6.3 with BTF"))
struct SocketCountingTests {
    static func engine(onlyPID: Int32? = getpid(), records: UInt32? = nil) throws -> AccountingEngine {
        var options = AccountingEngine.Options(onlyPID: onlyPID, perSocket: true)
        if let records { options.socketRecords = records }
        return try AccountingEngine(options: options)
    }

    static func cookie(_ socket: Socket) throws -> UInt64 {
        var cookie: UInt64 = 0, length = socklen_t(8)
        try check(getsockopt(socket.fd, SOL_SOCKET, 57 /* SO_COOKIE */, &cookie, &length), "getsockopt SO_COOKIE")
        return cookie
    }

    static func peerPort(_ socket: Socket) throws -> UInt16 {
        var address = sockaddr_storage(), length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        try withUnsafeMutableBytes(of: &address) { raw in
            try check(getpeername(socket.fd, raw.baseAddress!.assumingMemoryBound(to: sockaddr.self), &length), "getpeername")
        }
        return withUnsafeBytes(of: address) { $0.load(fromByteOffset: 2, as: UInt16.self).bigEndian }
    }

    /// The samples of this process's sockets, by cookie.
    static func byCookie(_ samples: [SocketSample]) -> [UInt64: SocketSample] {
        Dictionary(samples.filter { $0.id.process.pid == getpid() }.map { ($0.id.cookie, $0) }, uniquingKeysWith: { a, _ in a })
    }

    /// The syscall engine has no per-socket records: asked for both, it says so and loads nothing.
    @Test func perSocketCountingOnTheSyscallEngineIsRefusedWithItsReason() throws {
        do {
            _ = try AccountingEngine(options: .init(perSocket: true, kind: .syscalls))
            Issue.record("per-socket counting loaded on the syscall engine")
        } catch let error as NetacctError {
            #expect(error.kind == .unsupported)
            #expect(error.message.contains("Counting per connection needs the sock engine (Linux >= 6.3"), "\(error)")
            #expect(error.message.contains("run without --connections"))
        }
    }

    @Test func everyConnectionOfOneProcessIsCountedExactly() throws {
        let engine = try Self.engine()
        let table = SocketTable()
        // Two TCP connections over IPv4, one over IPv6, a connected and an unconnected UDP socket.
        let tcp4a = try tcpPair(.v4), tcp4b = try tcpPair(.v4), tcp6 = try tcpPair(.v6)
        for _ in 0..<3 { _ = try tcp4a.client.send(1000) }
        let tcp4aCalls = try tcp4a.server.receiveAll(3000)
        _ = try tcp4b.client.send(5)
        _ = try tcp4b.server.receiveAll(5)
        for _ in 0..<2 { _ = try tcp6.server.send(700) }
        let tcp6Calls = try tcp6.client.receiveAll(1400)
        let connected = try udpPair(.v4, connected: true)
        for size in 1...4 { _ = try connected.sender.send(size * 10) }
        for _ in 1...4 { try check(connected.receiver.receive(100), "recv") }
        let unconnected = try udpPair(.v6, connected: false)
        let peer = try udpPair(.v6, connected: false)
        _ = try unconnected.sender.sendTo(33, unconnected.address)
        _ = try unconnected.sender.sendTo(44, peer.address)
        try check(unconnected.receiver.receive(100), "recv")
        try check(peer.receiver.receive(100), "recv")

        let samples = Self.byCookie(try table.sample(engine))
        func expect(_ socket: Socket, _ traffic: SocketTraffic, _ transport: SocketSample.Transport, _ family: SocketSample.Family,
                    connected: Bool = true, sourceLocation: SourceLocation = #_sourceLocation) throws {
            let sample = try #require(samples[try Self.cookie(socket)], sourceLocation: sourceLocation)
            #expect(sample.total == traffic, sourceLocation: sourceLocation)
            #expect(sample.transport == transport && sample.family == family && !sample.closed, sourceLocation: sourceLocation)
            #expect(sample.localPort == (try portNumber(try socket.localAddress())), sourceLocation: sourceLocation)
            #expect(sample.localAddress == (family == .ipv4 ? "127.0.0.1" : "::1") || sample.localAddress == "::" || sample.localAddress == "0.0.0.0",
                    sourceLocation: sourceLocation)
            if connected {
                #expect(sample.remoteAddress == (family == .ipv4 ? "127.0.0.1" : "::1"), sourceLocation: sourceLocation)
                #expect(sample.remotePort == (try Self.peerPort(socket)), sourceLocation: sourceLocation)
            } else {
                #expect(sample.remoteAddress == nil && sample.remotePort == 0, sourceLocation: sourceLocation)
            }
        }
        try expect(tcp4a.client, SocketTraffic(txPackets: 3, txBytes: 3000), .tcp, .ipv4)
        try expect(tcp4a.server, SocketTraffic(rxPackets: UInt64(tcp4aCalls), rxBytes: 3000), .tcp, .ipv4)
        try expect(tcp4b.client, SocketTraffic(txPackets: 1, txBytes: 5), .tcp, .ipv4)
        try expect(tcp4b.server, SocketTraffic(rxPackets: 1, rxBytes: 5), .tcp, .ipv4)
        try expect(tcp6.server, SocketTraffic(txPackets: 2, txBytes: 1400), .tcp, .ipv6)
        try expect(tcp6.client, SocketTraffic(rxPackets: UInt64(tcp6Calls), rxBytes: 1400), .tcp, .ipv6)
        try expect(connected.sender, SocketTraffic(txPackets: 4, txBytes: 100), .udp, .ipv4)
        try expect(connected.receiver, SocketTraffic(rxPackets: 4, rxBytes: 100), .udp, .ipv4, connected: false)
        // An unconnected UDP socket: one sample with the bytes of all its peers, no remote end.
        try expect(unconnected.sender, SocketTraffic(txPackets: 2, txBytes: 77), .udp, .ipv6, connected: false)
        try expect(unconnected.receiver, SocketTraffic(rxPackets: 1, rxBytes: 33), .udp, .ipv6, connected: false)
        try expect(peer.receiver, SocketTraffic(rxPackets: 1, rxBytes: 44), .udp, .ipv6, connected: false)
        let sockets = [tcp4a.client, tcp4a.server, tcp4b.client, tcp4b.server, tcp6.client, tcp6.server, connected.sender,
                       connected.receiver, unconnected.sender, unconnected.receiver, peer.receiver]
        let cookies = Set(try sockets.map(Self.cookie))
        // (Other suites of this test process may talk at the same time: only these sockets are ours.)
        #expect(cookies.count == 11 && cookies.isSubset(of: samples.keys), "a sample per socket that talked")
        #expect(!samples.keys.contains(try Self.cookie(peer.sender)), "a socket that never talked has none")
        #expect(try engine.losses().isZero)
    }

    /// A thread keeps its last socket and that socket's record in its slot: calls that alternate
    /// between two sockets (a miss each time) and that repeat on one (a hit) count on the right one.
    @Test func aThreadAlternatingBetweenSocketsCountsEachExactly() throws {
        let engine = try Self.engine()
        let table = SocketTable()
        let a = try udpPair(.v4, connected: true), b = try udpPair(.v6, connected: true)
        for round in 1...10 {
            _ = try a.sender.send(round)
            _ = try b.sender.send(100 + round)
            _ = try a.sender.send(1)
            _ = try a.sender.send(2)
        }
        for _ in 1...30 { try check(a.receiver.receive(200), "recv") }
        for _ in 1...10 { try check(b.receiver.receive(200), "recv") }
        let samples = Self.byCookie(try table.sample(engine))
        #expect(samples[try Self.cookie(a.sender)]?.total == SocketTraffic(txPackets: 30, txBytes: 55 + 10 + 20))
        #expect(samples[try Self.cookie(b.sender)]?.total == SocketTraffic(txPackets: 10, txBytes: 1000 + 55))
        #expect(samples[try Self.cookie(a.receiver)]?.total == SocketTraffic(rxPackets: 30, rxBytes: 85))
        #expect(samples[try Self.cookie(b.receiver)]?.total == SocketTraffic(rxPackets: 10, rxBytes: 1055))
        #expect(try engine.losses().isZero)
    }

    @Test func aClosedSocketGivesItsFinalCountsOnceAndItsRecordBack() throws {
        let engine = try Self.engine(records: 4)
        let table = SocketTable()
        var pair: (client: Socket, server: Socket)? = try tcpPair(.v4)
        let cookies = (try Self.cookie(pair!.client), try Self.cookie(pair!.server))
        _ = try pair!.client.send(10)
        _ = try pair!.server.receiveAll(10)
        #expect(Self.byCookie(try table.sample(engine))[cookies.0]?.closed == false)
        _ = try pair!.client.send(20)
        _ = try pair!.server.receiveAll(20)
        pair = nil
        let final = Self.byCookie(try table.sample(engine))
        #expect(final[cookies.0]?.closed == true && final[cookies.0]?.total == SocketTraffic(txPackets: 2, txBytes: 30))
        #expect(final[cookies.1]?.closed == true && final[cookies.1]?.total.rxBytes == 30)
        let again = Self.byCookie(try table.sample(engine))
        #expect(again[cookies.0] == nil && again[cookies.1] == nil, "closed sockets are sampled once")
        // Their records were given back: four table-sized rounds of new sockets all count.
        // (With room for four records, other suites' sockets of this process may take some:
        // then calls go uncounted per socket, and that is what the last check would say.)
        for _ in 0..<4 {
            var udp: (sender: Socket, receiver: Socket, address: LoopbackAddress)? = try udpPair(.v4, connected: true)
            _ = try udp!.sender.send(9)
            try check(udp!.receiver.receive(100), "recv")
            let mine = (try Self.cookie(udp!.sender), try Self.cookie(udp!.receiver))
            let live = Self.byCookie(try table.sample(engine))
            #expect(live[mine.0]?.total.txBytes == 9 && live[mine.1]?.total.rxBytes == 9)
            udp = nil
            let closing = Self.byCookie(try table.sample(engine))
            #expect(closing[mine.0]?.closed == true && closing[mine.1]?.closed == true, "the closing sample")
        }
        #expect(try engine.losses().uncountedSocketCalls == 0)
    }

    @Test(arguments: [Family.v4, .v6])
    func aReusedFourTupleStartsFromZero(_ family: Family) throws {
        let engine = try Self.engine()
        let table = SocketTable()
        let listener = try Socket(family, Int32(SOCK_STREAM.rawValue))
        try listener.bind(LoopbackAddress(family))
        try check(listen(listener.fd, 4), "listen")
        var clientPort: UInt16 = 0
        var seen: [SocketSample] = []
        for (round, bytes) in [300, 7].enumerated() {
            let client = try Socket(family, Int32(SOCK_STREAM.rawValue))
            // The same local port both times; no TIME_WAIT (closed with a reset).
            try client.bind(LoopbackAddress(family, port: clientPort))
            clientPort = try portNumber(try client.localAddress())
            var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
            setsockopt(client.fd, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
            try client.connect(try listener.localAddress())
            let server = Socket(fd: try check(accept(listener.fd, nil, nil), "accept"))
            setsockopt(server.fd, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
            _ = try client.send(bytes)
            _ = try server.receiveAll(bytes)
            let live = Self.byCookie(try table.sample(engine))
            let sample = try #require(live[try Self.cookie(client)], "round \(round)")
            #expect(sample.total == SocketTraffic(txPackets: 1, txBytes: UInt64(bytes)), "round \(round): from zero")
            #expect(sample.localPort == clientPort)
            seen.append(sample)
            withExtendedLifetime((client, server)) {}
        }
        #expect(seen[0].remotePort == seen[1].remotePort && seen[0].localPort == seen[1].localPort)
        #expect(seen[0].id != seen[1].id)
    }

    @Test func aSocketTwoProcessesUseHasASampleForEach() throws {
        let engine = try Self.engine(onlyPID: nil)
        let table = SocketTable()
        var udp: (sender: Socket, receiver: Socket, address: LoopbackAddress)? = try udpPair(.v4, connected: true)
        _ = try udp!.sender.send(11)
        // A child process inherits the sender (as fd 3) and sends on it twice.
        let script = "import socket; s = socket.socket(fileno=3); s.send(b'x' * 22); s.send(b'y' * 33)"
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, udp!.sender.fd, 3)
        var child: pid_t = 0
        let argv: [UnsafeMutablePointer<CChar>?] = ["/usr/bin/python3", "-c", script].map { (text: String) in strdup(text) } + [nil]
        defer { argv.forEach { free($0) } }
        try #require(posix_spawn(&child, "/usr/bin/python3", &actions, nil, argv, environ) == 0)
        var status: Int32 = 0
        waitpid(child, &status, 0)
        try #require(status == 0, "the child sent")
        _ = try udp!.sender.send(44)
        let cookie = try Self.cookie(udp!.sender)
        let mine = try table.sample(engine).filter { $0.id.cookie == cookie }
        let parent = mine.first { $0.id.process.pid == getpid() }, other = mine.first { $0.id.process.pid == child }
        #expect(mine.count == 2)
        #expect(parent?.total == SocketTraffic(txPackets: 2, txBytes: 55))
        #expect(other?.total == SocketTraffic(txPackets: 2, txBytes: 55))
        #expect(parent?.closed == false, "the socket is open in this process")
        #expect(other?.closed == true, "the child has exited: its use of the socket is over, and its record given back")
        #expect(try table.sample(engine).filter { $0.id.cookie == cookie }.map(\.id.process.pid) == [getpid()])
        udp = nil
        let closing = try table.sample(engine).filter { $0.id.cookie == cookie }
        #expect(closing.count == 1 && closing.allSatisfy(\.closed), "the parent's closes with the socket")
    }

    @Test func aFullTableLosesPerSocketCountsVisiblyNeverTheThreads() throws {
        let engine = try Self.engine(records: 2)
        let table = SocketTable()
        var recorder = ProcessTable(keepsThreads: true)
        // On a thread of its own, whose counters are its alone (other suites of this test
        // process may talk meanwhile): 2 receivers + 2 senders, 4 sockets for 2 records.
        let (tid, pairs) = try onNewThread {
            let pairs = try (0..<2).map { _ in try udpPair(.v4, connected: true) }
            for pair in pairs {
                _ = try pair.sender.send(10)
                try check(pair.receiver.receive(100), "recv")
            }
            return pairs
        }
        let cookies = Set(try pairs.flatMap { [try Self.cookie($0.sender), try Self.cookie($0.receiver)] })
        let samples = Self.byCookie(try table.sample(engine))
        let counted = cookies.filter { samples[$0] != nil }
        let lost = try engine.losses().uncountedSocketCalls
        #expect(counted.count + Int(lost) >= 4 && counted.count <= 2, "two records, and every call of the others counted as lost")
        var source = engine
        var thread: ProcessTable.ThreadSample?
        for _ in 0..<50 where thread?.exited != true {
            thread = try recorder.ingest(from: &source, reporting: .all).flatMap(\.threads).first { $0.id.tid == tid } ?? thread
            usleep(20_000)
        }
        #expect(thread?.total == Traffic(udpTxPackets: 2, udpTxBytes: 20, udpRxPackets: 2, udpRxBytes: 20), "the thread counts every call")
        withExtendedLifetime(pairs) {}
    }
}
