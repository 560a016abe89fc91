import Foundation
import Glibc
import Testing

/// A counter of the kernel's TCP MIBs in `namespace`, as nstat shows it: `Tcp` ones from
/// /proc/net/snmp (`RetransSegs`, `OutRsts`), `TcpExt` ones from /proc/net/netstat
/// (`TCPLossProbes`, `TCPAbortOnTimeout`, `TCPWinProbe`, `TCPToZeroWindowAdv`).
func kernelCounter(_ namespace: String, _ group: String, _ name: String) throws -> Int {
    let file = group == "TcpExt" ? "/proc/net/netstat" : "/proc/net/snmp"
    let lines = try VethPair.sh("ip netns exec \(namespace) cat \(file)").split(separator: "\n").filter { $0.hasPrefix("\(group):") }
    try #require(lines.count == 2, "\(group) in \(file)")
    let names = lines[0].split(separator: " "), values = lines[1].split(separator: " ")
    let index = try #require(names.firstIndex { $0 == name }, "\(group) \(name) in \(file)")
    return try #require(Int(values[index]))
}

/// What `netacct top --tcp --connections --json` showed after its first line.
struct TCPReport {
    let lines: [[String: Any]]

    private func processes(_ pid: Int) -> [[String: Any]] {
        lines.flatMap { ($0["processes"] as? [[String: Any]]) ?? [] }.filter { ($0["pid"] as? Int) == pid }
    }

    /// A counter of process `pid` summed over the intervals: `["resets_sent"]`, or a cause of
    /// `["retransmitted_segments", "timeout"]`.
    func sum(_ path: [String], of pid: Int) -> Int {
        processes(pid).reduce(0) { total, process in
            var value: Any? = process
            for key in path { value = (value as? [String: Any])?[key] }
            return total + ((value as? Int) ?? 0)
        }
    }

    /// The RTT samples of process `pid` by bucket (its upper bound in microseconds, 0: the last).
    func rtt(of pid: Int) -> [Int: Int] {
        var buckets: [Int: Int] = [:]
        for process in processes(pid) {
            for bucket in ((process["rtt"] as? [String: Any])?["buckets"] as? [[String: Any]]) ?? [] {
                buckets[(bucket["below_us"] as? Int) ?? 0, default: 0] += (bucket["count"] as? Int) ?? 0
            }
        }
        return buckets
    }

    /// The median's bucket, by its upper bound in microseconds (nil: no samples).
    func medianBucket(of pid: Int) -> Int? {
        let buckets = rtt(of: pid).sorted { ($0.key == 0 ? Int.max : $0.key) < ($1.key == 0 ? Int.max : $1.key) }
        let total = buckets.reduce(0) { $0 + $1.value }
        var seen = 0
        for (bound, count) in buckets {
            seen += count
            if seen * 2 >= total && total > 0 { return bound }
        }
        return nil
    }

    /// Process `pid`'s connections: each interval's row of each (by local port).
    func connections(of pid: Int) -> [[String: Any]] {
        processes(pid).flatMap { ($0["connections"] as? [[String: Any]]) ?? [] }
    }

    /// A counter of `pid`'s connections summed over the intervals and connections.
    func connectionSum(_ path: [String], of pid: Int) -> Int {
        connections(of: pid).reduce(0) { total, row in
            var value: Any? = row
            for key in path { value = (value as? [String: Any])?[key] }
            return total + ((value as? Int) ?? 0)
        }
    }
}

/// `netacct top --tcp --connections --json 0.5` from before the traffic to after it.
final class TCPRun {
    let tool: NetacctProcess

    init() throws {
        tool = try NetacctProcess(["top", "--tcp", "--connections", "--json", "--no-daemon", "0.5"])
        let first = try tool.line("its first interval")
        _ = try #require(try JSONSerialization.jsonObject(with: Data(first.utf8)) as? [String: Any], "\(first)")
    }

    /// The intervals read before the end (they are in the report too).
    private var seen: [[String: Any]] = []

    /// The intervals read so far.
    var seenLines: [[String: Any]] { seen }

    /// The intervals up to the first that ended at `date` or later.
    func lines(until date: Date) throws -> [[String: Any]] {
        let format = ISO8601DateFormatter()
        format.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        var read: [[String: Any]] = []
        for _ in 0..<100 {
            let line = try lines(1)[0]
            read.append(line)
            if let time = (line["time"] as? String).flatMap(format.date(from:)), time >= date { return read }
        }
        throw DaemonTestError("no interval ended at \(date) in 100 intervals")
    }

    /// The next `count` intervals.
    func lines(_ count: Int) throws -> [[String: Any]] {
        let lines = try (0..<count).map { _ in
            let line = try tool.line("an interval", within: 10)
            return try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], "\(line)")
        }
        seen += lines
        return lines
    }

    func finish(sourceLocation: SourceLocation = #_sourceLocation) throws -> TCPReport {
        usleep(600_000)
        tool.signal(SIGINT)
        var lines = seen
        while let line = tool.nextLine(within: 30, sourceLocation: sourceLocation) {
            lines.append(try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], "\(line)"))
        }
        tool.expectExit(0, within: 30, sourceLocation: sourceLocation)
        #expect(!lines.isEmpty, "the interval SIGINT ended is shown", sourceLocation: sourceLocation)
        return TCPReport(lines: lines)
    }
}

@Suite(.serialized, .enabled(if: isRoot, "makes network namespaces and loads BPF programs: needs root"))
struct TCPHealthTests {
    /// Drops packets in `namespace` by an nftables rule (`match`), counting them.
    static func dropping(in namespace: String, _ match: String, hook: String = "input") throws {
        try VethPair.sh("""
            ip netns exec \(namespace) nft add table inet nth
            ip netns exec \(namespace) nft add chain inet nth \(hook) '{ type filter hook \(hook) priority 0; }'
            ip netns exec \(namespace) nft add rule inet nth \(hook) '\(match)' counter drop
            """)
    }

    /// Waits (up to 20 s) until no connection in `namespaces` can still send a segment: only
    /// listeners and TIME_WAIT sockets are left (a FIN a loaded machine was slow to acknowledge is
    /// sent again, by an orphaned socket, after its process ended). The kernel's counters read
    /// after this hold everything the test made, and the tool's last sample, taken after, too.
    static func settle(_ namespaces: String...) throws {
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline {
            let busy = try namespaces.map { try VethPair.sh("ip netns exec \($0) ss -tanH state connected exclude time-wait") }
            if busy.allSatisfy({ $0.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty }) { return }
            usleep(100_000)
        }
        Issue.record("connections still open in \(namespaces) after 20 s")
    }

    static func stopDropping(in namespace: String) throws {
        _ = try VethPair.sh("ip netns exec \(namespace) nft delete table inet nth")
    }

    /// A client of (address, port) that connects, exchanges 100 bytes, says `connected`, and on
    /// `go` sends 100 more under a user timeout of `timeout` ms; it prints the error its read ends
    /// with (its errno) and its TCP_INFO's tcpi_total_retrans.
    static let stalledClient = """
        import socket, struct, sys
        address, port, timeout = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
        c = socket.create_connection((address, port), timeout=30)
        c.sendall(b'x' * 100)
        got = 0
        while got < 100: got += len(c.recv(100))
        print('connected', flush=True)
        sys.stdin.readline()
        c.setsockopt(socket.IPPROTO_TCP, 18, timeout)  # TCP_USER_TIMEOUT
        c.sendall(b'y' * 100)
        try:
            c.recv(100)
            print(0, flush=True)
        except OSError as e:
            print(e.errno, flush=True)
        info = c.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 232)
        print(struct.unpack_from('I', info, 100)[0], flush=True)
        c.close()
        """

    /// A client that connects to (address, port) and prints the errno it failed with (0: none).
    static let connector = """
        import socket, sys
        address, port = sys.argv[1], int(sys.argv[2])
        try:
            socket.create_connection((address, port), timeout=30).close()
            print(0, flush=True)
        except OSError as e:
            print(e.errno, flush=True)
        """

    // MARK: Retransmissions

    /// Bulk transfers through a rule that drops one data segment in 8 at random: the senders'
    /// segments sent again are the namespace's RetransSegs (what `nstat -az TcpRetransSegs`
    /// shows) and each sender's TCP_INFO, per process and per connection; the causes add up,
    /// fast retransmits among them, no more tail-loss probes than the kernel's TCPLossProbes.
    @Test func retransmissionsAreTheSendersRetransSegsWithTheirCauses() throws {
        let lab = WireLab()
        let (a, b) = (try lab.namespace("a"), try lab.namespace("b"))
        let (sender, receiver) = try lab.link(a, b, subnet: 1)
        try Self.dropping(in: b, "tcp dport 5005 meta length gt 100 numgen random mod 8 == 0")
        let (resent, probes) = (try WireLab.snmp(a, "Tcp", "RetransSegs"), try kernelCounter(a, "TcpExt", "TCPLossProbes"))
        let serversResent = try WireLab.snmp(b, "Tcp", "RetransSegs")
        let run = try TCPRun()
        var clients: [(pid: Int, retransmitted: [Int])] = []
        var servers: [Int] = []
        for _ in 0..<3 {
            let exchange = try WireTests.tcp(client: sender, server: receiver, port: 5005, bulk: 2_000_000)
            clients.append((exchange.client, exchange.retransmitted))
            servers.append(exchange.server)
        }
        try Self.settle(a, b)
        let (resentNow, probesNow) = (try WireLab.snmp(a, "Tcp", "RetransSegs") - resent, try kernelCounter(a, "TcpExt", "TCPLossProbes") - probes)
        let serversNow = try WireLab.snmp(b, "Tcp", "RetransSegs") - serversResent
        let report = try run.finish()
        try #require(resentNow > 0, "segments were sent again")
        #expect(clients.reduce(0) { $0 + report.sum(["retransmitted_segments", "total"], of: $1.pid) } == resentNow)
        for client in clients {
            let segments = report.sum(["retransmitted_segments", "total"], of: client.pid)
            #expect([segments, report.sum(["retransmitted_bytes", "total"], of: client.pid)] == client.retransmitted,
                    "netacct's count of the client's retransmissions is its TCP_INFO's")
            let causes = ["timeout", "fast", "probe", "syn", "synack"].map { report.sum(["retransmitted_segments", $0], of: client.pid) }
            #expect(causes.reduce(0, +) == segments, "the causes add up: \(causes)")
            #expect(causes[3] == 0 && causes[4] == 0, "no handshake was lost")
            // Per connection: the same, on the connection's rows.
            #expect(report.connectionSum(["retransmitted_segments", "total"], of: client.pid) == segments)
        }
        let byCause = ["fast", "probe"].map { cause in clients.reduce(0) { $0 + report.sum(["retransmitted_segments", cause], of: $1.pid) } }
        #expect(byCause[0] > 0, "fast retransmits after SACKs")
        #expect(byCause[1] <= probesNow, "tail-loss probes: at most the kernel's \(probesNow)")
        // The receivers send no data: only a FIN acknowledged late is ever sent again there.
        #expect(servers.reduce(0) { $0 + report.sum(["retransmitted_segments", "total"], of: $1) } == serversNow)
    }

    /// A connection whose peer goes silent: its data is sent again on timeouts (maybe after a
    /// tail-loss probe), as many as RetransSegs says, and then the connection is given up
    /// (TCP_USER_TIMEOUT): one timeout, the kernel's TCPAbortOnTimeout.
    @Test func aBlackholedConnectionRetransmitsOnTimeoutsAndIsGivenUp() throws {
        let lab = WireLab()
        let (a, b) = (try lab.namespace("a"), try lab.namespace("b"))
        let (sender, receiver) = try lab.link(a, b, subnet: 1)
        let run = try TCPRun()
        let server = try Python("server", in: b, WireTests.server, [receiver.address, 5007, "echo"])
        #expect(try server.line("readiness") == "listening")
        let client = try Python("client", in: a, Self.stalledClient, [receiver.address, 5007, 2500])
        #expect(try client.line("its connection") == "connected")
        let (resent, probes, aborts) = (try WireLab.snmp(a, "Tcp", "RetransSegs"), try kernelCounter(a, "TcpExt", "TCPLossProbes"),
                                        try kernelCounter(a, "TcpExt", "TCPAbortOnTimeout"))
        try Self.dropping(in: b, "tcp dport 5007")
        try client.say()
        #expect(try client.line("its error", within: 30) == "\(ETIMEDOUT)")
        let kernelCount = Int(try client.line("its TCP_INFO"))
        try client.finish()
        try Self.settle(a)
        let (resentNow, probesNow, abortsNow) = (try WireLab.snmp(a, "Tcp", "RetransSegs") - resent,
                                                 try kernelCounter(a, "TcpExt", "TCPLossProbes") - probes,
                                                 try kernelCounter(a, "TcpExt", "TCPAbortOnTimeout") - aborts)
        let report = try run.finish()
        let timeouts = report.sum(["retransmitted_segments", "timeout"], of: client.pid)
        let tlp = report.sum(["retransmitted_segments", "probe"], of: client.pid)
        #expect(timeouts >= 2, "sent again on timeouts")
        #expect(tlp == probesNow, "the tail-loss probe the kernel counted")
        #expect(timeouts + tlp == resentNow && report.sum(["retransmitted_segments", "total"], of: client.pid) == resentNow)
        #expect(kernelCount == resentNow, "its TCP_INFO")
        #expect(report.sum(["retransmitted_segments", "fast"], of: client.pid) == 0)
        #expect(report.sum(["timeouts"], of: client.pid) == 1 && abortsNow == 1, "given up once")
        #expect(report.sum(["failed_connects"], of: client.pid) == 0, "it was connected")
        _ = sender
    }

    /// A connect to a port whose SYNs are dropped: its SYN is sent again (tcp_syn_retries 1 in
    /// its namespace), then the connect fails on a timeout. A connect whose SYN-ACKs are dropped
    /// for a while: the listener's SYN-ACKs are sent again, each in RetransSegs of its namespace.
    @Test func synAndSynAckRetransmissionsAndAFailedConnect() throws {
        let lab = WireLab()
        let (a, b) = (try lab.namespace("a"), try lab.namespace("b"))
        let (_, receiver) = try lab.link(a, b, subnet: 1)
        try VethPair.sh("ip netns exec \(a) sysctl -qw net.ipv4.tcp_syn_retries=1")
        try Self.dropping(in: b, "tcp dport 5008")
        let (resentA, resentB) = (try WireLab.snmp(a, "Tcp", "RetransSegs"), try WireLab.snmp(b, "Tcp", "RetransSegs"))
        let run = try TCPRun()
        let failing = try Python("connector", in: a, Self.connector, [receiver.address, 5008])
        #expect(try failing.line("its error", within: 30) == "\(ETIMEDOUT)")
        try failing.finish()
        // (Its one retry, and one more as the connect's time runs out: as the kernel counts.)
        let failedResent = try WireLab.snmp(a, "Tcp", "RetransSegs") - resentA
        #expect(failedResent >= 1, "its SYN sent again")
        try Self.stopDropping(in: b)
        // SYN-ACKs dropped on their way in to the client for 2.5 s: the client sends its SYN
        // again at 1 s (its one retry), the listener its SYN-ACK at 1 s and for the new SYN.
        try VethPair.sh("ip netns exec \(a) sysctl -qw net.ipv4.tcp_syn_retries=3")
        let server = try Python("server", in: b, WireTests.server, [receiver.address, 5009, "echo"])
        #expect(try server.line("readiness") == "listening")
        try Self.dropping(in: a, "tcp sport 5009 tcp flags & (syn | ack) == syn | ack")
        let (resentA2, resentB2) = (try WireLab.snmp(a, "Tcp", "RetransSegs"), try WireLab.snmp(b, "Tcp", "RetransSegs"))
        let late = try Python("connector", in: a, Self.connector, [receiver.address, 5009])
        usleep(2_500_000)
        try Self.stopDropping(in: a)
        #expect(try late.line("its error", within: 30) == "0")
        try late.finish()
        #expect(try server.line("its byte count") == "0")
        try server.finish()
        try Self.settle(a, b)
        let (resentLate, resentServer) = (try WireLab.snmp(a, "Tcp", "RetransSegs") - resentA2, try WireLab.snmp(b, "Tcp", "RetransSegs") - resentB2)
        let report = try run.finish()
        #expect(report.sum(["retransmitted_segments", "syn"], of: failing.pid) == failedResent)
        #expect(report.sum(["retransmitted_segments", "total"], of: failing.pid) == failedResent)
        #expect(report.sum(["failed_connects"], of: failing.pid) == 1 && report.sum(["timeouts"], of: failing.pid) == 1)
        // Everything each side sent again (a FIN a loaded machine acknowledged late too), the
        // handshake's among it.
        try #require(resentLate > 0 && resentServer > 0, "the SYN and the SYN-ACK were sent again")
        // (On a mismatch: each row's own and the kernel's per-socket count, and what the earlier
        // connector and the unattributed events got meanwhile, to tell whose the difference is.)
        #expect(report.sum(["retransmitted_segments", "total"], of: late.pid) == resentLate,
                """
                the client's rows: \(report.connections(of: late.pid).map { ($0["local"] ?? "", $0["closed"] ?? "", $0["kernel_total_retrans"] ?? "", $0["retransmitted_segments"] ?? "") }); \
                the failed connector's total \(report.sum(["retransmitted_segments", "total"], of: failing.pid)) against \(failedResent); \
                unattributed \(report.lines.map { (($0["unattributed"] as? [String: Any])?["retransmitted_segments"] as? [String: Any])?["total"] as? Int ?? 0 }.reduce(0, +))
                """)
        #expect(report.sum(["retransmitted_segments", "syn"], of: late.pid) >= 1)
        #expect(report.sum(["failed_connects"], of: late.pid) == 0)
        #expect(report.sum(["retransmitted_segments", "total"], of: server.pid) == resentServer,
                "the listener's rows: \(report.connections(of: server.pid).map { ($0["local"] ?? "", $0["closed"] ?? "", $0["retransmitted_segments"] ?? "") })")
        #expect(report.sum(["retransmitted_segments", "synack"], of: server.pid) >= 1)
        _ = resentB
    }

    // MARK: Resets

    /// A client that aborts its connection (SO_LINGER 0: a reset sent, the server's received)
    /// and then connects to a closed port (a reset received, a failed connect; the reset the
    /// server's kernel sent is no socket's).
    static let aborter = """
        import socket, struct, sys
        address, port, closed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
        c = socket.create_connection((address, port), timeout=20)
        c.sendall(b'x' * 50)
        got = 0
        while got < 50: got += len(c.recv(50))
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
        c.close()
        try:
            socket.create_connection((address, closed), timeout=20)
            print(0, flush=True)
        except OSError as e:
            print(e.errno, flush=True)
        """

    static let resetServer = """
        import socket, sys
        s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(1)
        print('listening', flush=True)
        c, _ = s.accept()
        c.sendall(c.recv(50))
        try:
            while c.recv(100): pass
            print('closed', flush=True)
        except ConnectionResetError:
            print('reset', flush=True)
        """

    @Test func resetsBothWaysAreCountedExactly() throws {
        let lab = WireLab()
        let (a, b) = (try lab.namespace("a"), try lab.namespace("b"))
        let (_, receiver) = try lab.link(a, b, subnet: 1)
        let (sentA, sentB) = (try WireLab.snmp(a, "Tcp", "OutRsts"), try WireLab.snmp(b, "Tcp", "OutRsts"))
        let run = try TCPRun()
        let server = try Python("server", in: b, Self.resetServer, [receiver.address, 5010])
        #expect(try server.line("readiness") == "listening")
        let client = try Python("client", in: a, Self.aborter, [receiver.address, 5010, 5011])
        #expect(try client.line("its error") == "\(ECONNREFUSED)")
        try client.finish()
        #expect(try server.line("how it ended") == "reset")
        try server.finish()
        let report = try run.finish()
        let (sentByA, sentByB) = (try WireLab.snmp(a, "Tcp", "OutRsts") - sentA, try WireLab.snmp(b, "Tcp", "OutRsts") - sentB)
        #expect(sentByA == 1 && sentByB == 1, "the kernels sent a reset each")
        #expect(report.sum(["resets_sent"], of: client.pid) == 1, "the abort")
        #expect(report.sum(["resets_received"], of: client.pid) == 1, "the refused connect")
        #expect(report.sum(["failed_connects"], of: client.pid) == 1)
        #expect(report.sum(["resets_received"], of: server.pid) == 1 && report.sum(["resets_sent"], of: server.pid) == 0)
        let unattributed = report.lines.reduce(0) { $0 + ((($1["unattributed"] as? [String: Any])?["resets_sent"] as? Int) ?? 0) }
        #expect(unattributed >= 1, "the refusal is no socket's")
    }

    // MARK: Windows

    /// A server that stops reading: its window closes (a zero window sent, the sender's zero
    /// window received), the sender probes it (TCPWinProbe), and it reads again on `go`.
    static let slowReader = """
        import socket, sys
        s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(1)
        print('listening', flush=True)
        c, _ = s.accept()
        sys.stdin.readline()
        got = 0
        while True:
            d = c.recv(65536)
            if not d: break
            got += len(d)
        print(got, flush=True)
        """

    @Test func aReceiverThatStopsReadingStallsItsSender() throws {
        let lab = WireLab()
        let (a, b) = (try lab.namespace("a"), try lab.namespace("b"))
        let (_, receiver) = try lab.link(a, b, subnet: 1)
        let run = try TCPRun()
        let server = try Python("server", in: b, Self.slowReader, [receiver.address, 5012])
        #expect(try server.line("readiness") == "listening")
        let (probes, zeroAdvertised) = (try kernelCounter(a, "TcpExt", "TCPWinProbe"), try kernelCounter(b, "TcpExt", "TCPToZeroWindowAdv"))
        let client = try Python("client", in: a, WireTests.client, [receiver.address, 5012, "sink", 1_000_000])
        // Window probes back off from about 200 ms: 3 s gives several. While the window stays
        // closed every probe sent arrives into it: once the sender has sent none for a second
        // (read before and after an interval that ended in that second), netacct's count up to
        // that interval is the kernel's TCPWinProbe exactly. (A probe sent as the reader resumes
        // may arrive into an open window: the count is compared while it is closed.)
        usleep(3_000_000)
        var probed = -1
        for _ in 0..<10 {
            let before = try kernelCounter(a, "TcpExt", "TCPWinProbe")
            _ = try run.lines(until: Date().addingTimeInterval(1))
            let after = try kernelCounter(a, "TcpExt", "TCPWinProbe")
            if before == after {
                probed = after - probes
                break
            }
        }
        try #require(probed > 0, "the sender probed the closed window, then paused for a second")
        #expect(TCPReport(lines: run.seenLines).sum(["window_probes"], of: server.pid) == probed, "the probes the sender sent: \(probed)")
        try server.say()
        #expect(try server.line("its byte count") == "1000000")
        _ = try client.line("its retransmissions")
        try client.finish()
        try server.finish()
        let report = try run.finish()
        let advertised = try kernelCounter(b, "TcpExt", "TCPToZeroWindowAdv") - zeroAdvertised
        #expect(report.sum(["zero_windows_received"], of: client.pid) >= 1)
        let sent = report.sum(["zero_windows_sent"], of: server.pid)
        #expect(sent >= 1 && sent <= advertised, "stalls seen: \(sent), the kernel's TCPToZeroWindowAdv \(advertised)")
        #expect(report.sum(["window_probes"], of: server.pid) >= probed)
    }

    // MARK: RTT

    /// An echo client that makes `n` exchanges of 50 bytes, says `done` and closes on `go`.
    static let pinger = """
        import socket, sys
        address, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
        c = socket.create_connection((address, port), timeout=20)
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for _ in range(n):
            c.sendall(b'x' * 50)
            got = 0
            while got < 50: got += len(c.recv(50 - got))
        print('done', flush=True)
        sys.stdin.readline()
        c.shutdown(socket.SHUT_WR)
        while c.recv(100): pass
        c.close()
        """

    /// `ss -ti`'s rtt (milliseconds) of the connection from `namespace` to `port`.
    static func ssRTT(_ namespace: String, port: Int) throws -> Double {
        let text = try VethPair.sh("ip netns exec \(namespace) ss -tin dport = :\(port)")
        let field = try #require(text.split(whereSeparator: \.isWhitespace).first { $0.hasPrefix("rtt:") }, "\(text)")
        return try #require(Double(field.dropFirst(4).split(separator: "/")[0]))
    }

    /// Echo exchanges through a token bucket on the client's side of the link that lets one
    /// request (116 bytes on the wire) through every 10 ms: each round trip waits 10 ms more
    /// than without it. The client's RTT distribution moves from below a millisecond to the
    /// bucket of 10 ms (8-16 ms), its connection's smoothed RTT is 10 ms +- 30%, and `ss -ti`
    /// shows the RTT netacct read from the same socket.
    @Test func aDelayMadeByATokenBucketMovesTheRTTByItsAmount() throws {
        let lab = WireLab()
        let (a, b) = (try lab.namespace("a"), try lab.namespace("b"))
        let (sender, receiver) = try lab.link(a, b, subnet: 1)
        let run = try TCPRun()
        func exchanges(port: Int) throws -> (pid: Int, srtt: Double, ss: Double) {
            let server = try Python("server", in: b, WireTests.server, [receiver.address, port, "echo"])
            #expect(try server.line("readiness") == "listening")
            let client = try Python("client", in: a, Self.pinger, [receiver.address, port, 200])
            #expect(try client.line("its exchanges", within: 60) == "done")
            // The connection idles: its last row (the interval of the last exchange, read after
            // it) and ss see the same RTT, which no longer moves.
            let ss = try Self.ssRTT(a, port: port)
            var rows: [[String: Any]] = []
            var quiet = 0
            for _ in 0..<40 where quiet < 2 {
                let line = try run.lines(1)[0]
                let process = ((line["processes"] as? [[String: Any]]) ?? []).first { ($0["pid"] as? Int) == client.pid }
                let mine = ((process?["connections"] as? [[String: Any]]) ?? []).filter { ($0["remote"] as? String)?.hasSuffix(":\(port)") == true }
                rows += mine
                if !rows.isEmpty && mine.isEmpty { quiet += 1 }
            }
            let srtt = Double(try #require(rows.last?["srtt_us"] as? Int, "the connection's last row: \(rows)"))
            try client.say()
            try client.finish()
            _ = try server.line("its byte count")
            try server.finish()
            return (client.pid, srtt, ss)
        }
        let plain = try exchanges(port: 5013)
        try VethPair.sh("ip netns exec \(a) tc qdisc add dev \(sender.device) root tbf rate 92800bit burst 200 limit 10000")
        let shaped = try exchanges(port: 5014)
        let report = try run.finish()
        let (plainMedian, shapedMedian) = (report.medianBucket(of: plain.pid), report.medianBucket(of: shaped.pid))
        #expect((plainMedian ?? .max) <= 1024, "below a millisecond without the bucket: \(report.rtt(of: plain.pid))")
        #expect(shapedMedian == 16384, "the 8-16 ms bucket with it: \(report.rtt(of: shaped.pid))")
        #expect(report.rtt(of: shaped.pid).values.reduce(0, +) >= 150, "a sample per round trip")
        #expect(abs(shaped.srtt - 10_000) <= 3_000, "smoothed RTT \(shaped.srtt) us")
        for run in [plain, shaped] {
            #expect(abs(run.srtt / 1000 - run.ss) <= max(0.01, run.ss * 0.02), "ss -ti: \(run.ss) ms, netacct \(run.srtt) us")
        }
    }
}

/// The daemon's TCP health collector (`--tcp`): the `tcp` API and the `netacct_tcp_*` families.
@Suite(.serialized, .enabled(if: isRoot, "loads BPF programs and makes network namespaces: needs root"))
struct TCPHealthDaemonTests {
    /// Ports of its own: suites run at once (MetricsTests listens from 19600, its Prometheus from 29090).
    static let address = "127.0.0.1:\(22000 + Int(getpid() % 300))"
    static let prometheusPort = 30100 + Int(getpid() % 300)

    /// A process in a cgroup of its own aborts a connection and makes a refused connect, then
    /// exits. The API keeps it, exited, with its counts, read after read (for the retention);
    /// a real Prometheus gets them in the cgroup's series, and the scrape passes promtool.
    @Test func anExitedProcessKeepsItsCountsAndItsCgroupHasThemInPrometheus() throws {
        let cgroups = try TestCgroups()
        let lab = WireLab()
        let (a, b) = (try lab.namespace("a"), try lab.namespace("b"))
        let (_, receiver) = try lab.link(a, b, subnet: 1)
        let daemon = try DaemonProcess(extra: ["--tcp", "--listen", Self.address, "--metrics-top", "1000"])
        defer { daemon.stopExpectingSuccess() }
        let prometheus = try PrometheusServer(target: Self.address, port: Self.prometheusPort)
        let server = try Python("server", in: b, TCPHealthTests.resetServer, [receiver.address, 5020])
        #expect(try server.line("readiness") == "listening")
        let client = try Python("client", in: a, TCPHealthTests.aborter, [receiver.address, 5020, 5021], cgroup: cgroups.root + cgroups.unit)
        #expect(try client.line("its error") == "\(ECONNREFUSED)")
        try client.finish()
        #expect(try server.line("how it ended") == "reset")
        try server.finish()
        for read in 1...2 {
            let http = try Curl.get("http://\(Self.address)/api/v1/tcp")
            #expect(http.status == 200)
            let reply = try #require(try JSONSerialization.jsonObject(with: Data(http.body.utf8)) as? [String: Any])
            let processes = try #require(reply["processes"] as? [[String: Any]])
            let exited = try #require(processes.first { $0["pid"] as? Int == client.pid }, "read \(read): \(processes)")
            #expect(exited["exited"] as? Bool == true)
            let counts = try #require(exited["counts"] as? [String: Any])
            #expect(counts["resets_sent"] as? Int == 1 && counts["resets_received"] as? Int == 1 && counts["failed_connects"] as? Int == 1, "\(counts)")
            let serving = try #require(processes.first { $0["pid"] as? Int == server.pid })
            #expect((serving["counts"] as? [String: Any])?["resets_received"] as? Int == 1)
        }
        let unit = cgroups.unit
        #expect(try prometheus.await(#"sum(netacct_cgroup_tcp_resets_total{cgroup="\#(unit)",name="web.service",direction="sent"})"#, 1) == 1)
        #expect(try prometheus.await(#"sum(netacct_cgroup_tcp_resets_total{cgroup="\#(unit)",direction="received"})"#, 1) == 1)
        #expect(try prometheus.await(#"sum(netacct_cgroup_tcp_failed_connects_total{cgroup="\#(unit)"})"#, 1) == 1)
        // Its one round trip before the abort: an RTT sample in the cgroup's histogram.
        #expect(try prometheus.await(#"sum(netacct_cgroup_tcp_rtt_seconds_count{cgroup="\#(unit)"})"#, 1) == 1)
        let (status, body) = try Curl.get("http://\(Self.address)/metrics")
        #expect(status == 200)
        try MetricsTests.expectPromtoolPasses(body)
        #expect(body.contains("netacct_tcp_retransmitted_segments_total{cause=\"timeout\"}"))
        #expect(body.contains("netacct_tcp_unattributed_resets_total{direction=\"sent\"}"))
        withExtendedLifetime(cgroups) {}
    }
}

struct TCPHealthUsageTests {
    @Test(arguments: [
        (["--tcp", "--wire"], "--tcp counts per process, cgroup and connection: it goes with neither --wire"),
        (["--tcp", "--threads"], "--tcp counts per process, cgroup and connection: it goes with neither --wire"),
        (["--tcp", "--connections", "-4"], "--tcp counts per process, cgroup and connection: it goes with neither --wire"),
        (["--tcp", "--engine", "sock"], "--tcp counts per process, cgroup and connection: it goes with neither --wire"),
    ])
    func badUsageIsAClearErrorWithStatus2(_ arguments: [String], _ message: String) throws {
        let result = try Binary.run(["top"] + arguments + ["0.1", "1"])
        #expect(result.status == 2, "\(result.err)")
        #expect(result.out.isEmpty)
        #expect(result.err.contains(message), "\(result.err)")
    }
}

extension TCPHealthDaemonTests {
    /// `top --tcp` reads a daemon that follows TCP health instead of loading its programs: the
    /// interval's refused connects of a process, through the daemon's counts.
    @Test func topTCPReadsTheDaemon() throws {
        let lab = WireLab()
        let (a, b) = (try lab.namespace("a"), try lab.namespace("b"))
        let (_, receiver) = try lab.link(a, b, subnet: 1)
        let daemon = try DaemonProcess(extra: ["--tcp"])
        defer { daemon.stopExpectingSuccess() }
        let top = try NetacctProcess(["top", "--tcp", "--json", "-v", "--daemon-socket", daemon.api, "3", "1"])
        try top.awaitErr("reading the TCP health of the netacct daemon", within: 20)
        let refused = try Python("connector", in: a, TCPHealthTests.connector, [receiver.address, 5030])
        #expect(try refused.line("its error") == "\(ECONNREFUSED)")
        try refused.finish()
        #expect(top.wait() == 0, "\(top.err)")
        let line = try #require(try JSONSerialization.jsonObject(with: Data(top.out.utf8)) as? [String: Any], "\(top.out)")
        let processes = try #require(line["processes"] as? [[String: Any]])
        let row = try #require(processes.first { $0["pid"] as? Int == refused.pid }, "\(processes)")
        #expect(row["failed_connects"] as? Int == 1 && row["resets_received"] as? Int == 1 && row["exited"] as? Bool == true, "\(row)")
    }
}

/// `top --tcp` on a terminal (tmux): its sort keys, `c` for the connection rows, `q`.
@Suite(.serialized, .enabled(if: isRoot, "loads BPF programs: needs root"))
struct TCPHealthInteractiveTests {
    /// A python3 script (killed at the end) of its own, with its PID.
    final class Script {
        let process = Process()
        init(_ source: String) throws {
            process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
            process.arguments = ["-c", source]
            try process.run()
        }
        var pid: String { String(process.processIdentifier) }
        deinit {
            if process.isRunning { kill(process.processIdentifier, SIGKILL); process.waitUntilExit() }
        }
    }

    @Test func sortKeysPutTheTroubledOrTheSlowFirstAndCShowsConnections() throws {
        // One process pings itself over loopback, 20 ms between round trips (RTT samples, no
        // errors); another is refused by a closed port ten times a second (resets, failed connects).
        let pinger = try Script("""
            import socket, time
            l = socket.socket(); l.bind(('127.0.0.1', 0)); l.listen(1)
            c = socket.create_connection(l.getsockname()); s, _ = l.accept()
            c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1); s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            while True:
                c.sendall(b'p' * 50); s.sendall(s.recv(50)); c.recv(50); time.sleep(0.02)
            """)
        let refused = try Script("""
            import socket, time
            while True:
                try: socket.create_connection(('127.0.0.1', 9)).close()
                except OSError: pass
                time.sleep(0.1)
            """)
        let screen = try TmuxScreen("\(Binary.url.path) top --tcp 0.5 --no-daemon -p \(pinger.pid) -p \(refused.pid)")
        func first(_ lines: [String]) -> String? {
            guard let header = lines.firstIndex(where: { $0.contains("PID COMM") }), header + 1 < lines.count else { return nil }
            return lines[header + 1].split(separator: " ").first.map(String.init)
        }
        _ = try screen.await("both processes") { lines in
            lines.contains { $0.hasPrefix("sort: retransmissions") } && lines.filter { $0.contains("python3") }.count == 2
        }
        try screen.keys("l")
        var lines = try screen.await("the pinger first by RTT") { $0.contains { $0.hasPrefix("sort: rtt") } && first($0) == pinger.pid }
        #expect(first(lines) == pinger.pid)
        try screen.keys("e")
        lines = try screen.await("the refused one first by errors") { $0.contains { $0.hasPrefix("sort: errors") } && first($0) == refused.pid }
        #expect(first(lines) == refused.pid)
        try screen.keys("c")
        lines = try screen.await("the pinger's connections with their RTT") { lines in
            lines.contains { $0.contains("connections: on") } && lines.contains { $0.contains("LOCAL") && $0.contains("RTT") }
                && lines.contains { $0.contains("127.0.0.1:") && $0.contains("ESTABLISHED") }
        }
        try screen.keys("q")
        _ = try screen.await("netacct ended by q with status 0") { $0.contains("EXIT 0") }
    }
}
