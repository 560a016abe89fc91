import Foundation
import Glibc
import Accounting
import DaemonProtocol
import Testing

/// Request-response TCP flows from the veth pair's sender to its receiver, for real: each
/// request is one segment (TCP_NODELAY, smaller than the MSS, the next sent only once the
/// answer came), so the test knows how many segments each flow has.
struct LatencyFlows {
    let pair: VethPair
    init() throws { pair = try VethPair() }
    var sender: String { pair.sender }
    var receiver: String { pair.receiver }
    static let natAddress = "10.199.0.5"

    /// A server in the receiver on `port`: it reads `requests` requests of `size` bytes and
    /// answers each with one byte. Returns once it listens.
    func server(port: Int, requests: Int, size: Int) throws -> DropMaker.Helper {
        let helper = try DropMaker.Helper(namespace: receiver, """
            import socket
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(('\(VethPair.receiverAddress)', \(port)))
            s.listen()
            print('listening', flush=True)
            c, _ = s.accept()
            c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for _ in range(\(requests)):
                got = 0
                while got < \(size):
                    data = c.recv(\(size) - got)
                    if not data: raise SystemExit(1)
                    got += len(data)
                c.sendall(b'k')
            print('done', flush=True)
            c.recv(1)
            """)
        _ = helper.lines.next()
        return helper
    }

    /// The client's side, from the sender's local `clientPort` (0: any); returns when answered.
    static func clientScript(port: Int, requests: Int, size: Int, clientPort: Int = 0) -> String {
        """
        import socket
        c = socket.socket()
        c.bind(('', \(clientPort)))
        c.connect(('\(VethPair.receiverAddress)', \(port)))
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for _ in range(\(requests)):
            c.sendall(b'x' * \(size))
            if c.recv(1) != b'k': raise SystemExit(1)
        c.close()
        """
    }

    func client(port: Int, requests: Int, size: Int, clientPort: Int = 0) throws {
        let script = Self.clientScript(port: port, requests: requests, size: size, clientPort: clientPort)
        try VethPair.sh("ip netns exec \(sender) /usr/bin/python3 -c \"\(script)\"")
    }

    /// Several clients at once, each a process of its own; returns when all are answered.
    func clients(_ flows: [(port: Int, requests: Int, clientPort: Int)], size: Int) throws {
        let running = try flows.map { try DropMaker.Helper(namespace: sender, Self.clientScript(port: $0.port, requests: $0.requests, size: size, clientPort: $0.clientPort)) }
        for client in running {
            client.process.waitUntilExit()
            #expect(client.process.terminationStatus == 0)
        }
    }
}

/// `netacct latency in|out --json -v …` in one of the pair's namespaces.
struct LatencyRun {
    let run: ToolRun
    init(_ direction: String, namespace: String, _ arguments: [String]) throws {
        run = try ToolRun("latency", [direction] + arguments, namespace: namespace, ready: "latency programs attached")
    }
    func finish(timeout: Double = 1) throws -> (status: Int32, objects: [[String: Any]], err: String) {
        try run.finish(timeout: timeout)
    }
}

@Suite(.serialized, .enabled(if: isRoot, "makes network namespaces and loads BPF programs: needs root"))
struct LatencyCommandTests {
    static let inStages = ["mac_us", "ip_us", "tcp_us"], outStages = ["tcp_us", "ip_us", "qdisc_us"]

    /// Every stage present, none negative, and the stages add up to the total (to the
    /// nanosecond: the kernel measures nanoseconds and the JSON has three decimals of µs).
    static func expectComplete(_ segment: [String: Any], _ names: [String]) {
        let stages = segment["stages"] as? [String: Any] ?? [:]
        #expect(Set(stages.keys) == Set(names))
        let values = names.compactMap { stages[$0] as? Double }
        #expect(values.count == names.count, "every stage passed: \(stages)")
        #expect(values.allSatisfy { $0 >= 0 })
        let total = segment["total_us"] as? Double ?? -1
        #expect(abs(values.reduce(0, +) - total) < 0.0005, "\(values) add up to \(total)")
    }

    @Test func eachRequestIsOneSegmentInOnTheReceiverAndOutOnTheSenderWithEveryStage() throws {
        let flows = try LatencyFlows()
        let server = try flows.server(port: 7000, requests: 200, size: 1000)
        let inbound = try LatencyRun("in", namespace: flows.receiver, ["--dport", "7000"])
        let outbound = try LatencyRun("out", namespace: flows.sender, ["--dport", "7000"])
        try flows.client(port: 7000, requests: 200, size: 1000)
        #expect(server.lines.next() == "done")
        let (inStatus, received, inErr) = try inbound.finish()
        let (outStatus, sent, outErr) = try outbound.finish()
        #expect(inStatus == 0 && outStatus == 0)
        #expect(received.count == 200, "a line per request received: \(inErr)")
        #expect(sent.count == 200, "a line per request sent: \(outErr)")
        for segment in received {
            Self.expectComplete(segment, Self.inStages)
            #expect(segment.string("direction") == "in" && segment.int("family") == 4)
            #expect(segment.string("saddr") == VethPair.senderAddress && segment.string("daddr") == VethPair.receiverAddress)
            #expect(segment.int("dport") == 7000)
            #expect(segment.int("pid") == Int(server.pid) && segment.string("comm") == "python3", "the reader")
        }
        for segment in sent {
            Self.expectComplete(segment, Self.outStages)
            #expect(segment.string("direction") == "out" && segment.string("saddr") == VethPair.senderAddress)
            #expect(segment.int("dport") == 7000 && segment.string("comm") == "python3")
            #expect(segment.isNull("nat_addr") && segment.isNull("nat_port"), "no NAT")
        }
        // The same segments, by sequence number, on both sides.
        #expect(Set(received.compactMap { $0.int("seq") }) == Set(sent.compactMap { $0.int("seq") }))
        #expect(Set(received.compactMap { $0.int("seq") }).count == 200)
        #expect(inErr.contains("200 segments shown, 0 lost, 0 not followed (tables full), 0 dropped on the way, 0 left the path before a socket"))
        #expect(inErr.contains("0 still on their way") && outErr.contains("0 still on their way"), "nothing left behind")
    }

    @Test func portFiltersKeepOnlyTheirFlow() throws {
        let flows = try LatencyFlows()
        let first = try flows.server(port: 7001, requests: 120, size: 800)
        let second = try flows.server(port: 7002, requests: 80, size: 800)
        let byDestination = try LatencyRun("in", namespace: flows.receiver, ["--dport", "7001"])
        let bySource = try LatencyRun("in", namespace: flows.receiver, ["-sp", "40002"])
        let outBySource = try LatencyRun("out", namespace: flows.sender, ["--sport", "40002"])
        try flows.clients([(7001, 120, 40001), (7002, 80, 40002)], size: 800)
        #expect(first.lines.next() == "done" && second.lines.next() == "done")
        let toFirst = try successful(byDestination.finish()).output
        let fromSecond = try successful(bySource.finish()).output
        let sentBySecond = try successful(outBySource.finish()).output
        #expect(toFirst.count == 120 && toFirst.allSatisfy { $0.int("dport") == 7001 && $0.int("sport") == 40001 })
        #expect(fromSecond.count == 80 && fromSecond.allSatisfy { $0.int("sport") == 40002 && $0.int("dport") == 7002 })
        #expect(sentBySecond.count == 80 && sentBySecond.allSatisfy { $0.int("sport") == 40002 && $0.int("dport") == 7002 })
    }

    /// -p keeps the segments of the sockets a process reads: the server's, not another's.
    @Test func aPidFilterKeepsTheReadersSegments() throws {
        let flows = try LatencyFlows()
        let server = try flows.server(port: 7008, requests: 50, size: 700)
        let theReader = try LatencyRun("in", namespace: flows.receiver, ["-p", "\(server.pid)"])
        let someoneElse = try LatencyRun("in", namespace: flows.receiver, ["--pid", "1"])
        try flows.client(port: 7008, requests: 50, size: 700)
        #expect(server.lines.next() == "done")
        let read = try successful(theReader.finish()).output
        let none = try successful(someoneElse.finish()).output
        #expect(read.count == 50 && read.allSatisfy { $0.int("pid") == Int(server.pid) })
        #expect(none.isEmpty)
    }

    /// A bulk flow: the receiver reads while segments arrive, so many wait in the socket's
    /// backlog (merged there) or in its receive queue (merged there too): each one is still
    /// ended once, whole, and nothing is left behind.
    @Test func aBulkFlowsSegmentsAreEndedWholeThroughTheBacklogAndMerges() throws {
        let flows = try LatencyFlows()
        let server = try DropMaker.Helper(namespace: flows.receiver, """
            import socket
            s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(('\(VethPair.receiverAddress)', 7009)); s.listen(); print('listening', flush=True)
            c, _ = s.accept(); got = 0
            while True:
                data = c.recv(1 << 16)
                if not data: break
                got += len(data)
            print(got, flush=True)
            """)
        #expect(server.lines.next() == "listening")
        let inbound = try LatencyRun("in", namespace: flows.receiver, ["--dport", "7009"])
        let outbound = try LatencyRun("out", namespace: flows.sender, ["--dport", "7009"])
        try VethPair.sh("""
            ip netns exec \(flows.sender) /usr/bin/python3 -c "
            import socket
            c = socket.create_connection(('\(VethPair.receiverAddress)', 7009)); chunk = b'b' * 65536
            for _ in range(800): c.sendall(chunk)
            c.close()"
            """)
        #expect(server.lines.next() == "\(800 * 65536)")
        let (received, inErr) = try successful(inbound.finish())
        let (sent, outErr) = try successful(outbound.finish())
        // 52 MB in segments of up to 64 KiB: several hundred, fewer when a slow reader lets the
        // kernel merge more, and some not followed when a socket already has 64 waiting.
        #expect(received.count >= 100 && sent.count >= 100, "\(received.count) in, \(sent.count) out: \(inErr) \(outErr)")
        for segment in received { Self.expectComplete(segment, Self.inStages) }
        for segment in sent { Self.expectComplete(segment, Self.outStages) }
        #expect(Set(received.compactMap { $0.int("seq") }).count == received.count, "each segment once")
        #expect(inErr.contains("0 left the path before a socket, 0 still on their way"), "\(inErr)")
        #expect(outErr.contains("0 still on their way"), "\(outErr)")
    }

    /// IPv6 over loopback (no early demux there: the socket is first known to TCP), with -6;
    /// -4 sees none of it.
    @Test func loopbackIPv6SegmentsWithSixAndNoneWithFour() throws {
        let flows = try LatencyFlows()
        try VethPair.sh("ip netns exec \(flows.receiver) sysctl -qw net.ipv6.conf.lo.disable_ipv6=0; ip -n \(flows.receiver) link set lo up")
        let server = try DropMaker.Helper(namespace: flows.receiver, """
            import socket
            s = socket.socket(socket.AF_INET6); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(('::1', 7011)); s.listen(); print('listening', flush=True)
            c, _ = s.accept()
            for _ in range(40):
                if len(c.recv(300)) != 300: raise SystemExit(1)
                c.sendall(b'k')
            print('done', flush=True)
            """)
        #expect(server.lines.next() == "listening")
        let six = try LatencyRun("in", namespace: flows.receiver, ["-6", "--dport", "7011"])
        let sixOut = try LatencyRun("out", namespace: flows.receiver, ["-6", "--dport", "7011"])
        let four = try LatencyRun("in", namespace: flows.receiver, ["-4"])
        try VethPair.sh("""
            ip netns exec \(flows.receiver) /usr/bin/python3 -c "
            import socket
            c = socket.create_connection(('::1', 7011)); c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for _ in range(40):
                c.sendall(b'6' * 300)
                c.recv(1)"
            """)
        #expect(server.lines.next() == "done")
        let (received, err) = try successful(six.finish())
        let sent = try successful(sixOut.finish()).output
        let none = try successful(four.finish()).output
        #expect(received.count == 40, "\(err)")
        #expect(sent.count == 40)
        #expect(none.isEmpty)
        for segment in received {
            #expect(segment.int("family") == 6 && segment.string("saddr") == "::1" && segment.string("daddr") == "::1")
            Self.expectComplete(segment, Self.inStages)
        }
        for segment in sent { Self.expectComplete(segment, Self.outStages) }
    }

    /// 1 in 10 at random: binomial(1000, 0.1) has a mean of 100 and a standard deviation of
    /// 9.5; 60 to 140 is more than four of them either side. Every one reported is whole.
    @Test func sampleTenReportsAboutATenthAndEachOfThemWhole() throws {
        let flows = try LatencyFlows()
        let server = try flows.server(port: 7003, requests: 1000, size: 500)
        let inbound = try LatencyRun("in", namespace: flows.receiver, ["--dport", "7003", "--sample", "10"])
        let outbound = try LatencyRun("out", namespace: flows.sender, ["--dport", "7003", "-s", "10"])
        try flows.client(port: 7003, requests: 1000, size: 500)
        #expect(server.lines.next() == "done")
        let received = try successful(inbound.finish()).output
        let sent = try successful(outbound.finish()).output
        #expect((60...140).contains(received.count), "about 100 of 1000: \(received.count)")
        #expect((60...140).contains(sent.count), "about 100 of 1000: \(sent.count)")
        for segment in received { Self.expectComplete(segment, Self.inStages) }
        for segment in sent { Self.expectComplete(segment, Self.outStages) }
    }

    @Test func histogramsCountEverySegmentOfTheFlowAtEveryStage() throws {
        let flows = try LatencyFlows()
        let server = try flows.server(port: 7004, requests: 300, size: 1000)
        let inbound = try LatencyRun("in", namespace: flows.receiver, ["--dport", "7004", "--hist", "30"])
        let outbound = try LatencyRun("out", namespace: flows.sender, ["--dport", "7004", "--hist", "30"])
        try flows.client(port: 7004, requests: 300, size: 1000)
        #expect(server.lines.next() == "done")
        for (run, names) in [(inbound, ["mac", "ip", "tcp", "total"]), (outbound, ["tcp", "ip", "qdisc", "total"])] {
            let (status, intervals, err) = try run.finish()
            #expect(status == 0)
            #expect(intervals.count == 1, "the interval in progress, shown at the interrupt: \(err)")
            let stages = try #require(intervals.first?["stages"] as? [[String: Any]])
            #expect(stages.compactMap { $0.string("stage") } == names)
            for stage in stages {
                #expect(stage.int("count") == 300, "every segment at \(stage.string("stage") ?? "?")")
                let buckets = stage["buckets"] as? [[String: Any]] ?? []
                #expect(buckets.compactMap { $0.int("count") }.reduce(0, +) == 300)
                let p50 = stage["p50_us"] as? Double ?? -1, p90 = stage["p90_us"] as? Double ?? -1
                let p99 = stage["p99_us"] as? Double ?? -1, maximum = stage["max_us"] as? Double ?? -1
                #expect(0 <= p50 && p50 <= p90 && p90 <= p99 && p99 <= maximum, "\(stage)")
            }
        }
    }

    /// A DROP rule in the receiver's INPUT chain (nftables) after the connection is made: every
    /// request and each retransmission of it is dropped after the MAC and IP points, and the
    /// kernel side lets go of each at kfree_skb.
    @Test func segmentsDroppedByAFirewallRuleLeaveNothingBehind() throws {
        let flows = try LatencyFlows()
        let server = try flows.server(port: 7005, requests: 10, size: 500)
        defer { withExtendedLifetime(server) {} }
        let inbound = try LatencyRun("in", namespace: flows.receiver, ["--dport", "7005"])
        let client = try DropMaker.Helper(namespace: flows.sender, """
            import socket, sys, time
            c = socket.create_connection(('\(VethPair.receiverAddress)', 7005))
            c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            print('connected', flush=True)
            sys.stdin.readline()
            for _ in range(5):
                c.send(b'd' * 500)
                time.sleep(0.05)
            time.sleep(1.5)
            print('sent', flush=True)
            sys.stdin.readline()
            """, input: true)
        #expect(client.lines.next() == "connected")
        try VethPair.sh("""
            ip netns exec \(flows.receiver) nft add table inet netacct_test
            ip netns exec \(flows.receiver) nft add chain inet netacct_test input '{ type filter hook input priority 0; }'
            ip netns exec \(flows.receiver) nft add rule inet netacct_test input tcp dport 7005 drop
            """)
        try client.say("go")
        #expect(client.lines.next() == "sent")
        let (status, segments, err) = try inbound.finish(timeout: 0)
        #expect(status == 0)
        #expect(segments.isEmpty, "none reached the application")
        let dropped = err.firstMatch(of: /(\d+) dropped on the way/).flatMap { Int($0.1) } ?? 0
        #expect(dropped >= 5, "each request at least once: \(err)")
        #expect(err.contains("0 left the path before a socket, 0 still on their way"), "\(err)")
    }

    /// Source NAT in the sender (nftables snat at POSTROUTING): the segment leaves with another
    /// source address, shown after the socket's own (the seed's NAT:PORT).
    @Test func sourceNATShowsTheAddressOnTheWire() throws {
        let flows = try LatencyFlows()
        try VethPair.sh("""
            ip -n \(flows.sender) addr add \(LatencyFlows.natAddress)/32 dev va
            ip -n \(flows.receiver) neigh add \(LatencyFlows.natAddress) lladdr $(ip netns exec \(flows.sender) cat /sys/class/net/va/address) dev vb nud permanent
            ip netns exec \(flows.sender) nft add table ip netacct_test
            ip netns exec \(flows.sender) nft add chain ip netacct_test post '{ type nat hook postrouting priority 100; }'
            ip netns exec \(flows.sender) nft add rule ip netacct_test post oifname va ip saddr \(VethPair.senderAddress) snat to \(LatencyFlows.natAddress)
            """)
        let server = try flows.server(port: 7006, requests: 20, size: 300)
        let outbound = try LatencyRun("out", namespace: flows.sender, ["--dport", "7006"])
        try flows.client(port: 7006, requests: 20, size: 300, clientPort: 40006)
        #expect(server.lines.next() == "done")
        let sent = try successful(outbound.finish()).output
        #expect(sent.count == 20)
        for segment in sent {
            #expect(segment.string("saddr") == VethPair.senderAddress && segment.int("sport") == 40006, "the socket's address")
            #expect(segment.string("nat_addr") == LatencyFlows.natAddress && segment.int("nat_port") == 40006, "the wire's")
            Self.expectComplete(segment, Self.outStages)
        }
    }

    /// 5,000 short connections over the receiver's loopback, one after the other, each a
    /// request and an answer: more than the 4,096 connections the kernel's table of arriving
    /// segments holds. Each connection's entry ends with it (its port is given back before
    /// tcp_destroy_sock, so the socket's key must not come from skc_num): every segment of
    /// every connection is followed, none "not followed (tables full)".
    @Test func closedConnectionsLeaveNothingInTheTable() throws {
        let flows = try LatencyFlows()
        try VethPair.sh("ip -n \(flows.receiver) link set lo up")
        let inbound = try LatencyRun("in", namespace: flows.receiver, [])
        try VethPair.sh("""
            ip netns exec \(flows.receiver) /usr/bin/python3 -c "
            import socket, threading
            n = 5000
            srv = socket.socket(); srv.bind(('127.0.0.1', 7010)); srv.listen(128)
            def serve():
                for _ in range(n):
                    c, _ = srv.accept(); c.recv(100); c.sendall(b'r' * 50); c.close()
            t = threading.Thread(target=serve); t.start()
            for _ in range(n):
                s = socket.create_connection(('127.0.0.1', 7010)); s.sendall(b'q' * 50); s.recv(100); s.close()
            t.join()"
            """)
        let (status, segments, err) = try inbound.finish(timeout: 1)
        #expect(status == 0, "\(err)")
        #expect(segments.count == 10_000, "a request and an answer per connection")
        #expect(err.contains("10000 segments shown, 0 lost, 0 not followed (tables full)"), "\(err)")
    }

    /// Data segments for sockets that never existed (5,000 raw segments from as many source
    /// ports to a closed port: each dropped, NO_SOCKET) leave no entry behind either: a real
    /// flow after them is followed whole.
    @Test func segmentsForNoSocketLeaveNothingInTheTable() throws {
        let flows = try LatencyFlows()
        let inbound = try LatencyRun("in", namespace: flows.receiver, [])
        try VethPair.sh("""
            ip netns exec \(flows.sender) /usr/bin/python3 -c "
            import socket, struct
            def csum(data):
                if len(data) % 2: data += b'\\0'
                s = sum(struct.unpack('!%dH' % (len(data) // 2), data))
                while s >> 16: s = (s & 0xffff) + (s >> 16)
                return ~s & 0xffff
            src, dst = socket.inet_aton('\(VethPair.senderAddress)'), socket.inet_aton('\(VethPair.receiverAddress)')
            s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
            for sport in range(20000, 25000):
                tcp = struct.pack('!HHIIBBHHH', sport, 7011, 1000, 1, 5 << 4, 0x18, 65535, 0, 0) + b'd' * 10
                c = csum(src + dst + struct.pack('!BBH', 0, 6, len(tcp)) + tcp)
                tcp = tcp[:16] + struct.pack('!H', c) + tcp[18:]
                ip = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(tcp), 1, 0, 64, 6, 0, src, dst)
                ip = ip[:10] + struct.pack('!H', csum(ip)) + ip[12:]
                s.sendto(ip + tcp, ('\(VethPair.receiverAddress)', 0))"
            """)
        let server = try flows.server(port: 7012, requests: 50, size: 200)
        try flows.client(port: 7012, requests: 50, size: 200)
        #expect(server.lines.next() == "done")
        let (status, segments, err) = try inbound.finish(timeout: 1)
        #expect(status == 0, "\(err)")
        #expect(segments.filter { $0.int("dport") == 7012 }.count == 50, "the real flow, whole: \(err)")
        #expect(err.contains("0 not followed (tables full), 5000 dropped on the way"), "\(err)")
    }

    @Test func theTableHasTheSeedsColumnsAndADashForNoNAT() throws {
        let flows = try LatencyFlows()
        let server = try flows.server(port: 7007, requests: 3, size: 100)
        let tool = try NetacctProcess(["latency", "out", "--dport", "7007", "--count", "3", "-v"], namespace: flows.sender)
        try tool.awaitErr("latency programs attached")
        try flows.client(port: 7007, requests: 3, size: 100)
        #expect(server.lines.next() == "done")
        tool.expectExit(0)
        let lines = tool.out.split(separator: "\n")
        #expect(lines.count == 4)
        let header = lines.first.map { $0.split(separator: " ").map(String.init) } ?? []
        #expect(header == ["SADDR:SPORT", "->", "NAT:PORT", "->", "DADDR:DPORT", "SEQ", "ACK", "TIME", "TOTAL", "TCP", "IP", "QDISC", "PID", "COMM"])
        for line in lines.dropFirst() {
            let columns = line.split(separator: " ").map(String.init)
            #expect(columns.count == 14 && columns[2] == "-" && columns[4] == "\(VethPair.receiverAddress):7007")
            let numbers = columns[8...11].compactMap(Double.init)
            #expect(numbers.count == 4 && abs(numbers[1...].reduce(0, +) - numbers[0]) < 0.1 * max(1, numbers[0]))
        }
    }

    /// `netacct daemon --latency` in the receiver: its `latency` reply counts, since it started,
    /// the requests coming in and the one-byte answers going out, at every stage.
    @Test func theDaemonServesHistogramsOfBothDirectionsWithLatency() throws {
        let flows = try LatencyFlows()
        let daemon = try DaemonProcess(extra: ["--latency"], namespace: flows.receiver)
        let server = try flows.server(port: 7010, requests: 100, size: 600)
        try flows.client(port: 7010, requests: 100, size: 600)
        #expect(server.lines.next() == "done")
        let api = try DaemonAPI.Connection(path: daemon.api)
        let line = try api.request("latency")
        let object = try #require(try JSONSerialization.jsonObject(with: line) as? [String: Any])
        #expect(object["verb"] as? String == "latency")
        let directions = try DaemonAPI.decode(LatencyReply.self, from: line).directions
        #expect(directions.map(\.direction) == ["in", "out"])
        for (direction, names) in zip(directions, [["mac", "ip", "tcp", "total"], ["tcp", "ip", "qdisc", "total"]]) {
            #expect(direction.stages.map(\.stage) == names)
            #expect(direction.stages.allSatisfy { $0.count == 100 }, "\(direction)")
        }
        // Nothing waits on the daemon's event loop: 1,000 answers, each reading both directions'
        // histograms, take less than the 2 s that a millisecond's sleep per direction would.
        let start = Date()
        for _ in 0..<1000 { _ = try api.request("latency") }
        let elapsed = Date().timeIntervalSince(start)
        #expect(elapsed < 2, "1,000 latency answers took \(elapsed) s")
        daemon.stopExpectingSuccess()
    }

    @Test func badUsageSaysWhatIsWrongWithStatusTwo() throws {
        for (arguments, message) in [
            (["latency", "sideways"], "in|out"),
            (["latency", "in", "--sample", "0"], "--sample"),
            (["latency", "in", "5"], "--hist"),
            (["latency", "out", "--dport", "0"], "port"),
            (["latency", "in", "-4", "-6"], "-4 and -6"),
        ] {
            let result = try Binary.run(arguments)
            #expect(result.status == 2, "\(arguments)")
            #expect(result.err.contains(message), "\(arguments): \(result.err)")
        }
    }

    @Test func withoutPrivilegeItSaysSoAndLoadsNothing() throws {
        let result = try Binary.run(["latency", "in"], prefix: ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all"])
        #expect(result.status == 1)
        #expect(result.err.contains("must run as root"))
    }
}
