import CTestSupport
import Foundation
import Glibc
import Testing

/// A loopback TCP listener of the test's own.
struct Listener {
    let fd: Int32
    let port: UInt16
    let family: Int32

    init(_ family: Int32 = AF_INET) throws {
        var port: UInt16 = 0
        fd = test_tcp_listen(family, 0, &port)
        try #require(fd >= 0, "listen: \(String(cString: strerror(-fd)))")
        self.port = port
        self.family = family
    }

    /// Connects from this thread and accepts it: (client fd, its local port, accepted fd).
    func connectAndAccept() throws -> (client: Int32, clientPort: UInt16, server: Int32) {
        var local: UInt16 = 0
        let client = test_tcp_connect(family, port, &local)
        try #require(client >= 0, "connect: \(String(cString: strerror(-client)))")
        let server = test_tcp_accept(fd)
        try #require(server >= 0)
        return (client, local, server)
    }

    func close() { _ = Glibc.close(fd) }
}

/// A port nothing listens on: bound, never listened, then released.
func closedPort() throws -> UInt16 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    var address = sockaddr_in(sin_family: sa_family_t(AF_INET), sin_port: 0, sin_addr: in_addr(s_addr: UInt32(0x7f00_0001).bigEndian), sin_zero: (0, 0, 0, 0, 0, 0, 0, 0))
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    try withUnsafeMutablePointer(to: &address) { pointer in
        try pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { raw in
            try #require(bind(fd, raw, length) == 0)
            try #require(getsockname(fd, raw, &length) == 0)
        }
    }
    Glibc.close(fd)
    return UInt16(bigEndian: address.sin_port)
}

/// This process's cgroup v2 path ("0::/user.slice/…" in /proc/self/cgroup).
func ownCgroup() throws -> String {
    let text = try String(contentsOfFile: "/proc/self/cgroup", encoding: .utf8)
    let line = try #require(text.split(separator: "\n").first { $0.hasPrefix("0::") })
    return String(line.dropFirst(3))
}

/// The cgroup2 mount point (found, never assumed: /sys/fs/cgroup/unified on hybrid layouts).
func cgroup2Mount() throws -> String {
    let output = try VethPair.sh("findmnt -n -o TARGET -t cgroup2 | head -1")
    return try #require(output.split(separator: "\n").first.map(String.init))
}

func waitForChild(_ pid: pid_t) -> Int32 {
    var status: Int32 = 0
    waitpid(pid, &status, 0)
    return (status >> 8) & 0xff
}

@Suite(.serialized, .enabled(if: isRoot, "loads BPF programs: needs root"))
struct ConnectionsCommandTests {
    static let keys = ["time", "event", "direction", "pid", "tid", "comm", "cgroup", "family", "laddr", "lport",
                       "raddr", "rport", "latency_us", "error", "duration_ms", "tx_bytes", "rx_bytes"]

    @Test func connectAndAcceptOverIPv4AndIPv6AreTheCallersWithExactTuples() throws {
        let v4 = try Listener(AF_INET), v6 = try Listener(AF_INET6)
        defer { v4.close(); v6.close() }
        let run = try ConnectionsRun(["-P", "\(v4.port),\(v6.port)", "--count", "4"])
        let tid = test_gettid()
        let a = try v4.connectAndAccept()
        let b = try v6.connectAndAccept()
        let (status, events, _) = try run.finish()
        for fd in [a.client, a.server, b.client, b.server] { close(fd) }
        #expect(status == 0)
        #expect(events.count == 4)
        let cgroup = try ownCgroup()
        for event in events {
            #expect(Set(event.keys) == Set(Self.keys), "every key is always present")
            #expect(event.int("pid") == Int(getpid()))
            #expect(event.int("tid") == Int(tid))
            #expect(event.string("cgroup") == cgroup)
            #expect(event.string("comm")?.isEmpty == false)
            #expect(event.int("latency_us") != nil, "the handshake's latency")
            for key in ["error", "duration_ms", "tx_bytes", "rx_bytes"] { #expect(event.isNull(key), "\(key) is only for failed or close") }
        }
        func find(_ kind: String, _ family: Int) throws -> [String: Any] {
            try #require(events.first { $0.string("event") == kind && $0.int("family") == family })
        }
        for (family, address, listener, client) in [(4, "127.0.0.1", v4, a), (6, "::1", v6, b)] {
            let connect = try find("connect", family)
            #expect(connect.string("direction") == "connect")
            #expect(connect.string("laddr") == address && connect.string("raddr") == address)
            #expect(connect.int("lport") == Int(client.clientPort) && connect.int("rport") == Int(listener.port))
            let accept = try find("accept", family)
            #expect(accept.string("direction") == "accept")
            #expect(accept.string("laddr") == address && accept.string("raddr") == address)
            #expect(accept.int("lport") == Int(listener.port) && accept.int("rport") == Int(client.clientPort))
        }
    }

    @Test func aConnectFromAChildIsTheChildsAndAnAcceptInAThreadHasThatThreadsTID() throws {
        let listener = try Listener()
        defer { listener.close() }
        let run = try ConnectionsRun(["-P", "\(listener.port)", "--count", "2"])
        let child = test_spawn_connector(AF_INET, listener.port, 0, nil)
        try #require(child > 0)
        var acceptor: Int32 = 0
        let server = test_accept_in_thread(listener.fd, &acceptor)
        try #require(server >= 0)
        #expect(waitForChild(child) == 0)
        close(server)
        let (status, events, _) = try run.finish()
        #expect(status == 0)
        let connect = try #require(events.first { $0.string("event") == "connect" })
        #expect(connect.int("pid") == Int(child) && connect.int("tid") == Int(child))
        let accept = try #require(events.first { $0.string("event") == "accept" })
        #expect(acceptor != getpid())
        #expect(accept.int("pid") == Int(getpid()), "the process, not the thread")
        #expect(accept.int("tid") == Int(acceptor))
    }

    @Test func aRefusedConnectIsFailedWithECONNREFUSEDOnlyWithFailed() throws {
        let port = try closedPort()
        let run = try ConnectionsRun(["-P", "\(port)", "--failed", "--count", "1"])
        let tid = test_gettid()
        #expect(test_tcp_connect(AF_INET, port, nil) == -ECONNREFUSED)
        let (status, events, _) = try run.finish()
        #expect(status == 0)
        let failed = try #require(events.first)
        #expect(failed.string("event") == "failed")
        #expect(failed.string("error") == "ECONNREFUSED")
        #expect(failed.int("pid") == Int(getpid()) && failed.int("tid") == Int(tid))
        #expect(failed.string("raddr") == "127.0.0.1" && failed.int("rport") == Int(port))
        #expect(failed.isNull("duration_ms") && failed.isNull("tx_bytes"))

        let plain = try ConnectionsRun(["-P", "\(port)"])
        #expect(test_tcp_connect(AF_INET, port, nil) == -ECONNREFUSED)
        #expect(try successful(plain.finish(timeout: 0.5)).output.isEmpty, "without --failed a failed connect is not shown")
    }

    @Test func aConnectThatFailsBeforeItsSYNHasConnectsOwnError() throws {
        // In a namespace with one ephemeral port: the second connect to the same place has none.
        let namespace = "nacct-c\(getpid() % 100_000)"
        try VethPair.sh("ip netns add \(namespace); ip -n \(namespace) link set lo up; ip netns exec \(namespace) sysctl -qw net.ipv4.ip_local_port_range='40000 40000'")
        defer { _ = try? VethPair.sh("ip netns del \(namespace)") }
        let port = 5999
        let run = try ConnectionsRun(["-P", "\(port)", "--failed", "-r", "connect"])
        let helper = Process()
        helper.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
        helper.arguments = ["netns", "exec", namespace, "/usr/bin/python3", "-c", """
            import errno, socket
            s = socket.socket(); s.bind(('127.0.0.1', \(port))); s.listen()
            a = socket.create_connection(('127.0.0.1', \(port)))
            b = socket.socket()
            try:
                b.connect(('127.0.0.1', \(port))); print('connected')
            except OSError as e:
                print(errno.errorcode[e.errno])
            """]
        let out = Pipe()
        helper.standardOutput = out
        try helper.run()
        let said = LineReader(out.fileHandleForReading).next()
        helper.waitUntilExit()
        #expect(said == "EADDRNOTAVAIL")
        let events = try successful(run.finish(timeout: 0.5)).output
        let failed = try #require(events.first { $0.string("event") == "failed" })
        #expect(failed.string("error") == "EADDRNOTAVAIL", "connect()'s own error, not ECONNABORTED")
        #expect(failed.int("pid") == Int(helper.processIdentifier) && failed.int("rport") == port)
        #expect(events.filter { $0.string("event") == "connect" }.count == 1, "the first connect")
    }

    @Test func closesHaveTheDurationAndExactPayloadBytesEachWay() throws {
        let listener = try Listener()
        defer { listener.close() }
        let run = try ConnectionsRun(["-P", "\(listener.port)", "--close", "--count", "4"])
        let (client, clientPort, server) = try listener.connectAndAccept()
        #expect(test_tcp_send(client, 100_000) == 0 && test_tcp_receive(server, 100_000) == 0)
        #expect(test_tcp_send(server, 7_777) == 0 && test_tcp_receive(client, 7_777) == 0)
        usleep(100_000)
        close(client)
        #expect(test_tcp_receive(server, 1) == -1, "the client's FIN")
        close(server)
        let (status, events, _) = try run.finish()
        #expect(status == 0)
        let closes = events.filter { $0.string("event") == "close" }
        #expect(closes.count == 2)
        let outbound = try #require(closes.first { $0.string("direction") == "connect" })
        #expect(outbound.int("lport") == Int(clientPort) && outbound.int("rport") == Int(listener.port))
        #expect(outbound.int("tx_bytes") == 100_000 && outbound.int("rx_bytes") == 7_777)
        let inbound = try #require(closes.first { $0.string("direction") == "accept" })
        #expect(inbound.int("lport") == Int(listener.port) && inbound.int("rport") == Int(clientPort))
        #expect(inbound.int("tx_bytes") == 7_777 && inbound.int("rx_bytes") == 100_000)
        for close in closes {
            let duration = try #require(close["duration_ms"] as? Double)
            #expect(duration >= 100 && duration < 2_000)
            #expect(close.int("pid") == Int(getpid()))
            #expect(close.isNull("error"))
        }
    }

    @Test func aConnectionOpenedBeforeNetacctShowsWhatIsKnownWhenItCloses() throws {
        let listener = try Listener()
        defer { listener.close() }
        let (client, clientPort, server) = try listener.connectAndAccept()
        #expect(test_tcp_send(client, 10) == 0 && test_tcp_receive(server, 10) == 0)
        #expect(test_tcp_send(server, 20) == 0 && test_tcp_receive(client, 20) == 0)
        let run = try ConnectionsRun(["-P", "\(listener.port)", "--close", "--count", "2"])
        close(client)
        #expect(test_tcp_receive(server, 1) == -1, "the client's FIN")
        close(server)
        let (status, events, _) = try run.finish()
        #expect(status == 0)
        #expect(events.count == 2)
        for event in events {
            #expect(event.string("event") == "close")
            for key in ["pid", "tid", "comm", "cgroup", "direction", "duration_ms"] { #expect(event.isNull(key), "\(key) is unknown") }
            #expect(event.string("laddr") == "127.0.0.1")
            #expect(Set([event.int("lport"), event.int("rport")]) == [Int(clientPort), Int(listener.port)])
        }
        // Its direction unknown, the connecting side's count keeps its SYN (README).
        let outbound = try #require(events.first { $0.int("lport") == Int(clientPort) })
        #expect(outbound.int("tx_bytes") == 11 && outbound.int("rx_bytes") == 20)
        let inbound = try #require(events.first { $0.int("lport") == Int(listener.port) })
        #expect(inbound.int("tx_bytes") == 20 && inbound.int("rx_bytes") == 10)
    }

    @Test func aResetCloseCountsThePayloadWithNoFIN() throws {
        let listener = try Listener()
        defer { listener.close() }
        let run = try ConnectionsRun(["-P", "\(listener.port)", "--close", "-r", "connect", "--count", "2"])
        let (client, _, server) = try listener.connectAndAccept()
        #expect(test_tcp_send(client, 1_000) == 0 && test_tcp_receive(server, 1_000) == 0)
        #expect(test_tcp_send(server, 300) == 0 && test_tcp_receive(client, 300) == 0)
        var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
        #expect(setsockopt(client, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size)) == 0)
        close(client)  // a RST, no FIN
        close(server)
        let (status, events, _) = try run.finish()
        #expect(status == 0)
        let closed = try #require(events.first { $0.string("event") == "close" })
        #expect(closed.int("tx_bytes") == 1_000 && closed.int("rx_bytes") == 300)
        #expect(events.first?.string("event") == "connect")
    }

    @Test func aPlainAcceptIsShownToo() throws {
        let listener = try Listener()
        defer { listener.close() }
        let run = try ConnectionsRun(["-P", "\(listener.port)", "-r", "accept", "--count", "1"])
        var local: UInt16 = 0
        let client = test_tcp_connect(AF_INET, listener.port, &local)
        try #require(client >= 0)
        let server = accept(listener.fd, nil, nil)  // accept(2), not accept4(2)
        try #require(server >= 0)
        close(client)
        close(server)
        let (status, events, _) = try run.finish()
        #expect(status == 0)
        let accepted = try #require(events.first)
        #expect(accepted.string("event") == "accept" && accepted.int("rport") == Int(local))
        #expect(accepted.int("pid") == Int(getpid()))
    }

    /// Connections to two listeners, from this process and from a child, over both families.
    struct Traffic {
        let a: Listener, b: Listener, v6: Listener
        var child: pid_t = 0

        init() throws {
            a = try Listener()
            b = try Listener()
            v6 = try Listener(AF_INET6)
        }

        mutating func run() throws {
            for listener in [a, b, v6] {
                let pair = try listener.connectAndAccept()
                Glibc.close(pair.client)
                Glibc.close(pair.server)
            }
            child = test_spawn_connector(AF_INET, a.port, 0, nil)
            let server = test_tcp_accept(a.fd)
            #expect(waitForChild(child) == 0)
            Glibc.close(server)
        }

        var ports: String { "\(a.port),\(b.port),\(v6.port)" }
        func close() { a.close(); b.close(); v6.close() }
    }

    /// Each filter keeps what it should and drops what it should: without one, the traffic makes
    /// 8 events (4 connects, 4 accepts); each filter's count and content are checked.
    @Test(arguments: ["", "-p", "-P", "-r connect", "-r accept", "-4", "-6"])
    func eachFilterKeepsWhatItShouldAndDropsTheRest(_ filter: String) throws {
        var traffic = try Traffic()
        defer { traffic.close() }
        // -p needs the PID of a process that connects only once netacct runs.
        var gate: Int32 = -1
        let waiting = test_spawn_gated_connector(AF_INET, traffic.a.port, &gate)
        try #require(waiting > 0)
        var arguments = ["--count", "100"]
        switch filter {
        case "": arguments += ["-P", traffic.ports]
        case "-p": arguments += ["-P", traffic.ports, "-p", String(waiting)]
        case "-P": arguments += ["-P", String(traffic.b.port)]
        default: arguments += ["-P", traffic.ports] + filter.split(separator: " ").map(String.init)
        }
        let run = try ConnectionsRun(arguments)
        try traffic.run()
        close(gate)
        let server = test_tcp_accept(traffic.a.fd)
        #expect(waitForChild(waiting) == 0)
        close(server)
        let events = try successful(run.finish(timeout: 1)).output
        let me = Int(getpid())
        func count(_ kind: String, where predicate: ([String: Any]) -> Bool = { _ in true }) -> Int {
            events.filter { $0.string("event") == kind && predicate($0) }.count
        }
        switch filter {
        case "":
            #expect(events.count == 10)
            #expect(count("connect") == 5 && count("accept") == 5)
        case "-p":
            #expect(events.count == 1)
            #expect(count("connect") { $0.int("pid") == Int(waiting) } == 1, "only the connect of that process")
        case "-P":
            #expect(events.count == 2)
            #expect(events.allSatisfy { $0.int("lport") == Int(traffic.b.port) || $0.int("rport") == Int(traffic.b.port) })
        case "-r connect":
            #expect(events.count == 5 && count("connect") == 5)
            #expect(count("connect") { $0.int("pid") == Int(traffic.child) } == 1)
        case "-r accept":
            #expect(events.count == 5 && count("accept") == 5)
            #expect(count("accept") { $0.int("pid") == me } == 5)
        case "-4":
            #expect(events.count == 8 && events.allSatisfy { $0.int("family") == 4 })
        case "-6":
            #expect(events.count == 2 && events.allSatisfy { $0.int("family") == 6 && $0.string("laddr") == "::1" })
        default:
            Issue.record("no expectation for \(filter)")
        }
    }

    @Test func cgroupKeepsOnlyTheConnectionsOfItsProcesses() throws {
        let mount = try cgroup2Mount()
        let name = "netacct-test-\(getpid())"
        let directory = "\(mount)/\(name)"
        try #require(mkdir(directory, 0o755) == 0)
        defer { rmdir(directory) }
        let listener = try Listener()
        defer { listener.close() }
        let run = try ConnectionsRun(["-P", "\(listener.port)", "--cgroup", "/\(name)", "--count", "10"])
        let pair = try listener.connectAndAccept()
        close(pair.client)
        close(pair.server)
        let child = directory.withCString { test_spawn_connector(AF_INET, listener.port, 0, $0) }
        let server = test_tcp_accept(listener.fd)
        #expect(waitForChild(child) == 0)
        close(server)
        let events = try successful(run.finish(timeout: 1)).output
        #expect(events.count == 1, "only the child's connect: this process is in another cgroup")
        let connect = try #require(events.first)
        #expect(connect.string("event") == "connect")
        #expect(connect.int("pid") == Int(child))
        #expect(connect.string("cgroup") == "/\(name)")
    }

    @Test func aStopSignalEndsItEvenWhileNobodyReadsItsOutput() throws {
        let listener = try Listener()
        defer { listener.close() }
        // Its standard output is never read: it fills at 64 KiB.
        let tool = try NetacctProcess(["connections", "--json", "-v", "-P", "\(listener.port)"], readingOutput: false)
        try tool.awaitErr("connections programs attached")
        for _ in 0..<400 {  // 800 events of ~330 bytes: several times what the pipe holds
            let pair = try listener.connectAndAccept()
            close(pair.client)
            close(pair.server)
        }
        usleep(300_000)
        tool.signal(SIGINT)
        #expect(tool.waitForExit(within: 3), "SIGINT must end it while its output is full")
        tool.stop(SIGKILL)  // if it has not ended: then its status is SIGKILL's, and the test fails
        #expect(tool.err.split(separator: "\n").contains { $0.hasPrefix("netacct connections: ") && $0.contains("events shown") })
    }

    @Test func countStopsAfterThatManyEvents() throws {
        let listener = try Listener()
        defer { listener.close() }
        let run = try ConnectionsRun(["-P", "\(listener.port)", "-r", "connect", "--count", "2"])
        for _ in 0..<3 {
            let pair = try listener.connectAndAccept()
            close(pair.client)
            close(pair.server)
        }
        let (status, events, err) = try run.finish()
        #expect(status == 0)
        #expect(events.count == 2)
        #expect(err.contains("netacct connections: 2 events shown, 0 lost"))
    }

    @Test func theTableHasTheSeedsColumnsAndTheLatency() throws {
        let listener = try Listener()
        defer { listener.close() }
        let tool = try NetacctProcess(["connections", "-P", "\(listener.port)", "--count", "2"])
        // Its header means the programs are attached.
        let header = try tool.line("its header")
        #expect(header.split(separator: " ") == ["TIME", "PID", "COMM", "IP", "LADDR", "LPORT", "RADDR", "RPORT", "DIRECTION", "LAT(ms)"])
        let pair = try listener.connectAndAccept()
        close(pair.client)
        close(pair.server)
        let rows = [tool.nextLine(), tool.nextLine()].compactMap { $0?.split(separator: " ").map(String.init) }
        tool.expectExit(0)
        #expect(rows.count == 2)
        let connect = try #require(rows.first { $0[8] == "connect" })
        #expect(connect[1] == String(getpid()) && connect[3] == "4")
        #expect(connect[4] == "127.0.0.1" && connect[5] == String(pair.clientPort))
        #expect(connect[6] == "127.0.0.1" && connect[7] == String(listener.port))
        #expect(Double(connect[9]) != nil, "the latency in milliseconds")
    }
}

/// Bad input: a clear message and exit status 2, before anything loads (no root needed).
struct ConnectionsUsageTests {
    @Test(arguments: [
        (["-P", "0"], "from 1 to 65535"),
        (["-P", "70000"], "from 1 to 65535"),
        (["-P", "80,http"], "not \"http\""),
        (["-4", "-6"], "-4 and -6 exclude each other"),
        (["-r", "sideways"], "sideways"),
        (["--count", "0"], "at least 1"),
        (["-p", "0"], "positive"),
    ])
    func badInputIsAClearErrorWithStatus2(_ arguments: [String], _ message: String) throws {
        let result = try Binary.run(["connections"] + arguments)
        #expect(result.status == 2)
        #expect(result.err.contains(message), "\(result.err)")
        #expect(result.out.isEmpty)
    }

    @Test(.enabled(if: isRoot, "loads nothing, but checks the cgroup as root would"))
    func anUnknownCgroupIsAnErrorThatSaysWhere() throws {
        let result = try Binary.run(["connections", "--cgroup", "/no/such/cgroup"])
        #expect(result.status == 1)
        #expect(result.err.contains("No cgroup /no/such/cgroup under"))
    }
}
