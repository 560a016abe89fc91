import Foundation
import Glibc
import Testing

// `netacct top --wire`: frames and bytes on the wire, checked to the frame and the byte against
// what the kernel counts itself: the devices' statistics in /sys/class/net, and the namespaces'
// SNMP counters. Each test makes namespaces and veth pairs of its own (names unique to the test,
// deleted at its end), quiet unless the test is about IPv6: no IPv6, no ARP (static neighbours).
// Everything that makes traffic starts after the tool's first line (its programs attached and
// its first sample read: every socket made after that has an owner from its creation), and has
// ended, with the devices' counters read before and after it, before the tool is interrupted
// (SIGINT ends the interval in progress and shows it). The intervals after the first are summed.

/// Frames out and in, and their bytes, link-layer headers included: a device's statistics, or
/// what netacct counted.
struct Frames: Equatable, CustomStringConvertible {
    var txPackets = 0, txBytes = 0, rxPackets = 0, rxBytes = 0

    static let keys = ["tx_packets", "tx_bytes", "rx_packets", "rx_bytes"]

    init(txPackets: Int = 0, txBytes: Int = 0, rxPackets: Int = 0, rxBytes: Int = 0) {
        (self.txPackets, self.txBytes, self.rxPackets, self.rxBytes) = (txPackets, txBytes, rxPackets, rxBytes)
    }

    /// The four counters of a JSON object (an interface, a process, a cgroup, "unattributed").
    init(_ object: [String: Any]) {
        let values = Self.keys.map { object[$0] as? Int ?? -1_000_000 }
        self.init(txPackets: values[0], txBytes: values[1], rxPackets: values[2], rxBytes: values[3])
    }

    static func + (a: Self, b: Self) -> Self {
        Self(txPackets: a.txPackets + b.txPackets, txBytes: a.txBytes + b.txBytes,
             rxPackets: a.rxPackets + b.rxPackets, rxBytes: a.rxBytes + b.rxBytes)
    }

    static func - (a: Self, b: Self) -> Self {
        Self(txPackets: a.txPackets - b.txPackets, txBytes: a.txBytes - b.txBytes,
             rxPackets: a.rxPackets - b.rxPackets, rxBytes: a.rxBytes - b.rxBytes)
    }

    /// The same traffic seen from the other end of a link.
    var reversed: Self { Self(txPackets: rxPackets, txBytes: rxBytes, rxPackets: txPackets, rxBytes: txBytes) }

    var description: String { "tx \(txPackets) frames \(txBytes) B, rx \(rxPackets) frames \(rxBytes) B" }
}

/// One end of a veth pair: its namespace (by name, and by the inode number netacct reports),
/// its device and its address.
struct Port: CustomStringConvertible {
    let namespace: String, device: String, address: String
    let netns: Int, ifindex: Int

    var description: String { "\(device) in \(namespace)" }
}

/// The namespaces and veth pairs of one test, deleted at its end.
final class WireLab {
    nonisolated(unsafe) static var made = 0
    static let lock = NSLock()
    let tag: String
    private var namespaces: [String] = []
    private var links = 0

    init() {
        let serial = Self.lock.withLock {
            Self.made += 1
            return Self.made
        }
        tag = "\(getpid() % 100_000)w\(serial)"
    }

    deinit {
        for namespace in namespaces { _ = try? VethPair.sh("ip netns del \(namespace)") }
    }

    /// A namespace of this test: without IPv6 unless `ipv6` (then with no link-local address,
    /// no DAD and no router solicitation on the devices it gets).
    func namespace(_ name: String, ipv6: Bool = false) throws -> String {
        let namespace = "nw\(tag)\(name)"
        try VethPair.sh("ip netns add \(namespace)")
        namespaces.append(namespace)
        let settings = ipv6
            ? "net.ipv6.conf.default.addr_gen_mode=1 net.ipv6.conf.default.accept_dad=0 net.ipv6.conf.default.router_solicitations=0 net.ipv6.conf.default.accept_ra=0"
            : "net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1"
        try VethPair.sh("ip netns exec \(namespace) sysctl -qw \(settings)")
        return namespace
    }

    /// A veth pair between namespaces `a` and `b` on subnet `subnet` (10.66.<subnet>.0/24 or
    /// fd66:<subnet>::/64), each end with a static neighbour entry for the other; segmentation
    /// offloads off unless `offloads` (then GRO on as well: everything a veth can aggregate).
    func link(_ a: String, _ b: String, subnet: Int, ipv6: Bool = false, offloads: Bool = false) throws -> (Port, Port) {
        links += 1
        let (deviceA, deviceB) = ("w\(tag)l\(links)a", "w\(tag)l\(links)b")
        let (addressA, addressB) = ipv6 ? ("fd66:\(subnet)::1", "fd66:\(subnet)::2") : ("10.66.\(subnet).1", "10.66.\(subnet).2")
        let prefix = ipv6 ? "64 nodad" : "24"
        let features = offloads ? "gro on" : "tso off gso off gro off"
        try VethPair.sh("""
            ip link add \(deviceA) netns \(a) type veth peer name \(deviceB) netns \(b)
            ip netns exec \(a) ethtool -K \(deviceA) \(features) >/dev/null 2>&1
            ip netns exec \(b) ethtool -K \(deviceB) \(features) >/dev/null 2>&1
            ip -n \(a) addr add \(addressA)/\(prefix) dev \(deviceA)
            ip -n \(b) addr add \(addressB)/\(prefix) dev \(deviceB)
            ip -n \(a) link set \(deviceA) arp off; ip -n \(b) link set \(deviceB) arp off
            ip -n \(a) neigh add \(addressB) lladdr $(ip netns exec \(b) cat /sys/class/net/\(deviceB)/address) dev \(deviceA) nud permanent
            ip -n \(b) neigh add \(addressA) lladdr $(ip netns exec \(a) cat /sys/class/net/\(deviceA)/address) dev \(deviceB) nud permanent
            ip -n \(a) link set \(deviceA) up; ip -n \(b) link set \(deviceB) up
            """)
        return (try port(a, deviceA, addressA), try port(b, deviceB, addressB))
    }

    /// Brings up the loopback of `namespace`.
    func loopbackUp(_ namespace: String) throws -> Port {
        try VethPair.sh("ip -n \(namespace) link set lo up")
        return try port(namespace, "lo", "127.0.0.1")
    }

    /// `count` veth pairs from `a` to `b` at once (the interfaces down): their names in `a`.
    func manyLinks(_ a: String, _ b: String, count: Int) throws -> [String] {
        let names = (1...count).map { ("w\(tag)m\($0)", "w\(tag)n\($0)") }
        try VethPair.sh("ip -n \(a) -batch - <<'EOF'\n" + names.map { "link add \($0.0) type veth peer name \($0.1) netns \(b)" }.joined(separator: "\n") + "\nEOF")
        return names.map(\.0)
    }

    /// An interface of `namespace` this lab made.
    func port(_ namespace: String, _ device: String, _ address: String) throws -> Port {
        let netns = Int(try VethPair.sh("stat -L -c %i /run/netns/\(namespace)").trimmingCharacters(in: .whitespacesAndNewlines))
        let ifindex = Int(try VethPair.sh("ip netns exec \(namespace) cat /sys/class/net/\(device)/ifindex").trimmingCharacters(in: .whitespacesAndNewlines))
        return Port(namespace: namespace, device: device, address: address, netns: try #require(netns), ifindex: try #require(ifindex))
    }

    /// The device's own counters (/sys/class/net/<device>/statistics).
    static func statistics(_ port: Port) throws -> Frames {
        let directory = "/sys/class/net/\(port.device)/statistics"
        let values = try VethPair.sh("ip netns exec \(port.namespace) cat " + Frames.keys.map { "\(directory)/\($0)" }.joined(separator: " "))
            .split(separator: "\n").map { Int($0) ?? -1 }
        try #require(values.count == 4, "statistics of \(port)")
        return Frames(txPackets: values[0], txBytes: values[1], rxPackets: values[2], rxBytes: values[3])
    }

    /// A counter of /proc/net/snmp in `namespace` (`Tcp` `RetransSegs`, `Icmp` `OutEchoReps`…),
    /// the kernel's own, as nstat shows it (`nstat -az TcpRetransSegs` reads the same file).
    static func snmp(_ namespace: String, _ group: String, _ name: String) throws -> Int {
        let lines = try VethPair.sh("ip netns exec \(namespace) cat /proc/net/snmp").split(separator: "\n").filter { $0.hasPrefix("\(group):") }
        try #require(lines.count == 2, "\(group) in /proc/net/snmp")
        let names = lines[0].split(separator: " "), values = lines[1].split(separator: " ")
        let index = try #require(names.firstIndex { $0 == name }, "\(group) \(name) in /proc/net/snmp")
        return try #require(Int(values[index]))
    }
}

/// A python3 script in a network namespace: `ip netns exec` execs it, so the PID is the
/// script's. Its standard output is read line by line as it comes, its standard input is a pipe
/// the test writes to (`say`); killed at the end if it still runs. With `cgroup` (a directory),
/// it is put in that cgroup before it starts.
final class Python {
    let process = Process()
    private let input = Pipe()
    private let output = Collector(), errors = Collector()
    private let name: String

    /// What one of its outputs said, read on a thread of its own.
    private final class Collector: @unchecked Sendable {
        private let condition = NSCondition()
        private var lines: [String] = [], text = "", ended = false

        func read(_ handle: FileHandle) {
            let reader = LineReader(handle)
            while let line = reader.next() {
                condition.withLock {
                    lines.append(line)
                    text += line + "\n"
                    condition.broadcast()
                }
            }
            condition.withLock {
                ended = true
                condition.broadcast()
            }
        }

        func next(before deadline: Date) -> String? {
            condition.withLock {
                while lines.isEmpty && !ended && condition.wait(until: deadline) {}
                return lines.isEmpty ? nil : lines.removeFirst()
            }
        }

        var all: String { condition.withLock { text } }
    }

    init(_ name: String, in namespace: String, _ source: String, _ arguments: [Any] = [], cgroup: String? = nil) throws {
        self.name = name
        let command = ["netns", "exec", namespace, "/usr/bin/python3", "-c", source] + arguments.map { "\($0)" }
        if let cgroup {
            process.executableURL = URL(fileURLWithPath: "/bin/sh")
            process.arguments = ["-c", #"echo $$ > "$0/cgroup.procs" && exec /usr/sbin/ip "$@""#, cgroup] + command
        } else {
            process.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
            process.arguments = command
        }
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = input
        try process.run()
        for (pipe, collector) in [(out, output), (err, errors)] {
            let handle = pipe.fileHandleForReading
            Thread.detachNewThread { collector.read(handle) }
        }
    }

    deinit {
        // Never kill(0, …): that is the whole group.
        guard process.processIdentifier > 0, process.isRunning else { return }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    var pid: Int { Int(process.processIdentifier) }

    /// The next line it prints, which must come within `seconds`.
    func line(_ what: String, within seconds: Double = 20) throws -> String {
        guard let line = output.next(before: Date().addingTimeInterval(seconds)) else {
            throw DaemonTestError("the \(name) script printed no \(what) in \(Int(seconds)) s: \(errors.all.suffix(3000))")
        }
        return line
    }

    /// A line to its standard input.
    func say(_ line: String = "go") throws {
        try input.fileHandleForWriting.write(contentsOf: Data((line + "\n").utf8))
    }

    /// Waits for it to end, which it must within `seconds`, with status 0.
    func finish(within seconds: Double = 30) throws {
        let deadline = Date().addingTimeInterval(seconds)
        while process.isRunning && Date() < deadline { usleep(10_000) }
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            throw DaemonTestError("the \(name) script was still running \(Int(seconds)) s later (killed): \(errors.all.suffix(3000))")
        }
        process.waitUntilExit()
        guard process.terminationReason == .exit && process.terminationStatus == 0 else {
            usleep(100_000) // what it said last
            throw DaemonTestError("the \(name) script ended with status \(shellStatus(process)): \(errors.all.suffix(3000))")
        }
    }
}

/// What `netacct top --wire --json` showed after its first line, summed over its intervals.
struct WireReport {
    let lines: [[String: Any]]

    var processRows: [[String: Any]] { lines.flatMap { $0["processes"] as? [[String: Any]] ?? [] } }
    var cgroupRows: [[String: Any]] { lines.flatMap { $0["cgroups"] as? [[String: Any]] ?? [] } }

    private static func on(_ port: Port) -> ([String: Any]) -> Bool {
        { $0["netns"] as? Int == port.netns && $0["ifindex"] as? Int == port.ifindex }
    }

    /// The interface's totals: every frame, attributed or not.
    func interface(_ port: Port) -> Frames {
        lines.flatMap { $0["interfaces"] as? [[String: Any]] ?? [] }.filter(Self.on(port)).reduce(Frames()) { $0 + Frames($1) }
    }

    /// What no process owned on the interface.
    func unattributed(_ port: Port) -> Frames {
        lines.flatMap { $0["interfaces"] as? [[String: Any]] ?? [] }.filter(Self.on(port))
            .reduce(Frames()) { $0 + Frames($1["unattributed"] as? [String: Any] ?? [:]) }
    }

    /// Every interface entry of the rows of process `pid` (or of every process).
    private func entries(_ pid: Int?) -> [[String: Any]] {
        processRows.filter { pid == nil || $0["pid"] as? Int == pid }.flatMap { $0["interfaces"] as? [[String: Any]] ?? [] }
    }

    /// Process `pid`'s frames on `port`, or everywhere.
    func process(_ pid: Int, on port: Port? = nil) -> Frames {
        let kept: ([String: Any]) -> Bool = port.map(Self.on) ?? { _ in true }
        return entries(pid).filter(kept).reduce(Frames()) { $0 + Frames($1) }
    }

    /// Process `pid`'s frames: its rows' totals.
    func processTotal(_ pid: Int) -> Frames {
        processRows.filter { $0["pid"] as? Int == pid }.reduce(Frames()) { $0 + Frames($1) }
    }

    /// Every process's frames on `port`.
    func attributed(_ port: Port) -> Frames {
        entries(nil).filter(Self.on(port)).reduce(Frames()) { $0 + Frames($1) }
    }

    /// The interfaces process `pid` has frames on, as (netns, ifindex, name).
    func interfaces(of pid: Int) -> Set<String> {
        Set(entries(pid).map { "\($0["netns"] as? Int ?? -1)/\($0["ifindex"] as? Int ?? -1)/\($0["name"] as? String ?? "?")" })
    }

    /// A counter of process `pid`'s rows summed (`retransmitted_segments`…).
    func sum(_ key: String, of pid: Int) -> Int {
        processRows.filter { $0["pid"] as? Int == pid }.reduce(0) { $0 + ($1[key] as? Int ?? -1_000_000) }
    }

    /// The cgroup's frames (`--by cgroup`), by its path below the cgroup2 mount.
    func cgroup(_ path: String) -> Frames {
        cgroupRows.filter { $0["cgroup"] as? String == path }.reduce(Frames()) { $0 + Frames($1) }
    }

    /// Whatever could not be counted, in every interval: none.
    var losses: [[String: Any]] { lines.compactMap { $0["losses"] as? [String: Any] }.filter { $0.values.contains { $0 as? Int != 0 } } }
}

/// `netacct top --wire --json` while a test makes traffic: the interval is short, so that the
/// first line (the programs attached and the first sample read) comes soon; the traffic comes
/// after it and ends before SIGINT ends the tool.
final class WireRun {
    let tool: NetacctProcess

    init(_ arguments: [String] = []) throws {
        tool = try NetacctProcess(["top", "--wire", "--json", "0.5"] + arguments)
        let first = try tool.line("its first interval")
        _ = try #require(try JSONSerialization.jsonObject(with: Data(first.utf8)) as? [String: Any], "\(first)")
    }

    /// Ends the interval in progress and the tool (which must exit with status 0); the intervals
    /// after the first.
    func finish(sourceLocation: SourceLocation = #_sourceLocation) throws -> WireReport {
        tool.signal(SIGINT)
        var lines: [[String: Any]] = []
        while let line = tool.nextLine(within: 30, sourceLocation: sourceLocation) {
            lines.append(try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], "\(line)"))
        }
        tool.expectExit(0, within: 30, sourceLocation: sourceLocation)
        let report = WireReport(lines: lines)
        #expect(!lines.isEmpty, "the interval SIGINT ended is shown", sourceLocation: sourceLocation)
        #expect(report.losses.isEmpty, "nothing lost: \(report.losses)", sourceLocation: sourceLocation)
        return report
    }
}

@Suite(.serialized, .enabled(if: isRoot, "makes network namespaces and loads BPF programs: needs root"))
struct WireTests {
    /// Ethernet + IPv4 + UDP, Ethernet + IPv6 + UDP; Ethernet + IPv4 + TCP with timestamps (on
    /// every segment after the SYN, whose options take 8 bytes more).
    static let udp4 = 14 + 20 + 8, udp6 = 14 + 40 + 8, tcp4 = 14 + 20 + 32

    /// Runs `traffic` under `top --wire --json` (one tool per argument list, all at once) and
    /// returns what each showed, with the change of each port's own counters over the traffic.
    /// The counters are read once the tools are counting and again once the traffic is over and
    /// the last frames have been taken in (a frame a veth has counted may still wait in the
    /// receiver's backlog for a moment).
    static func measure(_ ports: [Port], tools: [[String]], sourceLocation: SourceLocation = #_sourceLocation,
                        _ traffic: () throws -> Void) throws -> (reports: [WireReport], deltas: [Frames]) {
        let runs = try tools.map { try WireRun($0) }
        let before = try ports.map(WireLab.statistics)
        try traffic()
        usleep(300_000)
        let after = try ports.map(WireLab.statistics)
        let reports = try runs.map { try $0.finish(sourceLocation: sourceLocation) }
        return (reports, zip(after, before).map { $0 - $1 })
    }

    /// The same as `measure` with one tool.
    static func measure(_ ports: [Port], sourceLocation: SourceLocation = #_sourceLocation,
                        _ traffic: () throws -> Void) throws -> (report: WireReport, deltas: [Frames]) {
        let (reports, deltas) = try measure(ports, tools: [[]], sourceLocation: sourceLocation, traffic)
        return (reports[0], deltas)
    }

    // MARK: Scripts

    /// A TCP server on (address, port): echoes what it receives (50 bytes at a time) or, with
    /// `sink`, only receives; closes when its client has closed; prints the bytes it received.
    static let server = """
        import socket, sys
        address, port, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
        s = socket.socket(socket.AF_INET6 if ':' in address else socket.AF_INET)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((address, port)); s.listen(1)
        print('listening', flush=True)
        c, _ = s.accept()
        c.settimeout(20)
        got = 0
        while True:
            d = c.recv(50 if mode == 'echo' else 65536)
            if not d: break
            got += len(d)
            if mode == 'echo': c.sendall(d)
        c.close()
        print(got, flush=True)
        """

    /// A TCP client of (address, port): `requests` request/responses of 50 bytes, or `bytes`
    /// sent in bulk. It ends with shutdown(SHUT_WR) and waits for the server's FIN before
    /// close(), so that its socket (not a TIME_WAIT one) acknowledges that FIN: a socket closed
    /// first would be orphaned in FIN_WAIT2 and become a TIME_WAIT socket, whose ACK the kernel
    /// sends from a socket of its own. It prints its TCP_INFO's tcpi_total_retrans and
    /// tcpi_bytes_retrans (offsets 100 and 208 of struct tcp_info).
    static let client = """
        import socket, struct, sys
        address, port, mode, n = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
        c = socket.create_connection((address, port), timeout=20)
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if mode == 'echo':
            for _ in range(n):
                c.sendall(b'x' * 50)
                got = 0
                while got < 50:
                    d = c.recv(50 - got)
                    if not d: sys.exit('the server closed early')
                    got += len(d)
        else:
            c.sendall(b'b' * n)
        c.shutdown(socket.SHUT_WR)
        while c.recv(100): pass
        info = c.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 232)
        print(struct.unpack_from('I', info, 100)[0], struct.unpack_from('Q', info, 208)[0], flush=True)
        c.close()
        """

    /// A UDP socket bound to (address, port) (the port the same at both ends) that, on a line
    /// on its standard input, sends `count` datagrams of `size` bytes to the peer's address, then
    /// receives `expected` datagrams (`count` by default).
    static let udpPeer = """
        import socket, sys
        me, port, peer, count, size = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
        expected = int(sys.argv[6]) if len(sys.argv) > 6 else count
        s = socket.socket(socket.AF_INET6 if ':' in me else socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        s.bind((me, port)); s.settimeout(20)
        print('bound', flush=True)
        sys.stdin.readline()
        for _ in range(count): s.sendto(b'u' * size, (peer, port))
        for _ in range(expected): s.recv(65536)
        """

    /// `./udpPeer` with nothing to send: receives `count` datagrams on (address, port).
    static func sink(in namespace: String, _ address: String, port: Int, count: Int) throws -> Python {
        let sink = try Python("sink", in: namespace, udpPeer, [address, port, address, 0, 0, count])
        #expect(try sink.line("readiness") == "bound")
        try sink.say()
        return sink
    }

    /// A TCP exchange: a server in `server`'s namespace, a client in `client`'s; their PIDs and
    /// what the client's TCP_INFO said of its retransmissions (segments, bytes).
    static func tcp(client: Port, server: Port, port: Int, echo requests: Int? = nil, bulk bytes: Int? = nil)
        throws -> (client: Int, server: Int, retransmitted: [Int]) {
        let mode = requests == nil ? "sink" : "echo"
        let serving = try Python("server", in: server.namespace, Self.server, [server.address, port, mode])
        #expect(try serving.line("readiness") == "listening")
        let connecting = try Python("client", in: client.namespace, Self.client, [server.address, port, mode, requests ?? bytes ?? 0])
        let retransmitted = try connecting.line("its retransmissions").split(separator: " ").map { Int($0) ?? -1 }
        try connecting.finish()
        #expect(try serving.line("its byte count") == String(requests.map { $0 * 50 } ?? bytes ?? 0))
        try serving.finish()
        return (connecting.pid, serving.pid, retransmitted)
    }

    // MARK: TCP

    /// The issue's case: 2,000 request/responses of 50 bytes, segmentation off. Each process's
    /// frames on its veth are that veth's own counts, to the frame, both ways: handshake, data,
    /// pure ACKs and FINs (the client's ACK of the server's FIN from its own socket, see
    /// `client`; the server's request socket's SYN-ACK for the listener's owner).
    @Test func tcpRequestResponseIsAllAttributedToTheTwoProcesses() throws {
        let lab = WireLab()
        let (a, b) = (try lab.namespace("a"), try lab.namespace("b"))
        let (client, server) = try lab.link(a, b, subnet: 1)
        var pids = (client: 0, server: 0)
        let (report, deltas) = try Self.measure([client, server]) {
            let run = try Self.tcp(client: client, server: server, port: 5001, echo: 2000)
            pids = (run.client, run.server)
        }
        // At least the 2,000 requests and the handshake; delayed ACKs make the rest vary.
        #expect(deltas[0].txPackets >= 2003 && deltas[0].txBytes >= 2000 * (Self.tcp4 + 50), "\(deltas[0])")
        #expect(deltas[1] == deltas[0].reversed, "a veth's two ends count the same frames")
        #expect(report.process(pids.client, on: client) == deltas[0])
        #expect(report.process(pids.server, on: server) == deltas[1])
        #expect(report.processTotal(pids.client) == deltas[0] && report.processTotal(pids.server) == deltas[1], "nothing elsewhere")
        #expect(report.interface(client) == deltas[0] && report.interface(server) == deltas[1])
        #expect(report.unattributed(client) == Frames() && report.unattributed(server) == Frames())
        #expect(report.sum("retransmitted_segments", of: pids.client) == 0 && report.sum("retransmitted_segments", of: pids.server) == 0)
    }

    /// A TIME_WAIT socket's frames are the kernel's: the client closes first, after the server
    /// has acknowledged its FIN (TCP_INFO says FIN_WAIT2), so that its socket, orphaned, becomes
    /// a TIME_WAIT socket at once (tcp_close: tcp_fin_time is not above TCP_TIMEWAIT_LEN); the
    /// server closes only then. The server's FIN reaches the TIME_WAIT socket, which no socket
    /// filter sees (tcp_v4_rcv goes to do_time_wait first), and the TIME_WAIT socket acknowledges
    /// it through the namespace's control socket, which has no owner: one unattributed frame of
    /// 14 + 20 + 32 bytes each way on the client's veth. The server's socket (LAST_ACK) takes
    /// the ACK in: the server's.
    @Test func aTimeWaitSocketsFINAndACKAreUnattributed() throws {
        let lab = WireLab()
        let (a, b) = (try lab.namespace("a"), try lab.namespace("b"))
        let (client, server) = try lab.link(a, b, subnet: 1)
        var pids = (client: 0, server: 0)
        let (report, deltas) = try Self.measure([client, server]) {
            let serving = try Python("server", in: b, """
                import socket, sys
                s = socket.socket(); s.bind((sys.argv[1], 5002)); s.listen(1)
                print('listening', flush=True)
                c, _ = s.accept(); c.settimeout(20)
                while c.recv(100): pass
                print('eof', flush=True)
                sys.stdin.readline()
                c.close()
                """, [server.address])
            #expect(try serving.line("readiness") == "listening")
            let closing = try Python("client", in: a, """
                import socket, struct, sys, time
                c = socket.create_connection((sys.argv[1], 5002), timeout=20)
                c.sendall(b'h' * 100)
                c.shutdown(socket.SHUT_WR)
                deadline = time.monotonic() + 20
                while c.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0] != 5:  # TCP_FIN_WAIT2
                    if time.monotonic() > deadline: sys.exit('never in FIN_WAIT2')
                    time.sleep(0.005)
                c.close()
                """, [server.address])
            try closing.finish()
            #expect(try serving.line("the client's FIN") == "eof")
            try serving.say()
            try serving.finish()
            pids = (closing.pid, serving.pid)
        }
        #expect(deltas[1] == deltas[0].reversed)
        #expect(report.interface(client) == deltas[0])
        #expect(report.interface(server) == deltas[1])
        let timeWait = Frames(txPackets: 1, txBytes: Self.tcp4, rxPackets: 1, rxBytes: Self.tcp4)
        #expect(report.unattributed(client) == timeWait, "the TIME_WAIT socket's FIN and ACK")
        #expect(report.process(pids.client, on: client) + timeWait == deltas[0])
        #expect(report.process(pids.server, on: server) == deltas[1])
        #expect(report.unattributed(server) == Frames())
    }

    /// 4 MB one way, segmentation off: every frame attributed, and the receiver, which never
    /// sends data, has its pure ACKs (and its FIN) counted: its frames out are its veth's.
    @Test func bulkTCPWithTheReceiversPureACKs() throws {
        let lab = WireLab()
        let (a, b) = (try lab.namespace("a"), try lab.namespace("b"))
        let (sender, receiver) = try lab.link(a, b, subnet: 1)
        let bytes = 4_000_000
        var pids = (client: 0, server: 0)
        let (report, deltas) = try Self.measure([sender, receiver]) {
            let run = try Self.tcp(client: sender, server: receiver, port: 5003, bulk: bytes)
            pids = (run.client, run.server)
        }
        // 1,448 bytes of payload a segment (MSS 1,460 less 12 of timestamps).
        let dataSegments = (bytes + 1447) / 1448
        #expect(deltas[0].txPackets >= dataSegments + 3 && deltas[0].txBytes >= bytes + (dataSegments + 3) * Self.tcp4, "\(deltas[0])")
        #expect(deltas[1] == deltas[0].reversed)
        #expect(report.process(pids.client, on: sender) == deltas[0])
        #expect(report.process(pids.server, on: receiver) == deltas[1])
        // Its SYN-ACK, FIN and pure ACKs, every one (how many depends on how the receiver's
        // segments were batched, and their sizes on SACK blocks when a segment comes twice: the
        // veth's own count is the measure).
        #expect(report.processTotal(pids.server) == deltas[1], "its pure ACKs: \(deltas[1])")
        #expect(report.interface(sender) == deltas[0] && report.interface(receiver) == deltas[1])
        #expect(report.unattributed(sender) == Frames() && report.unattributed(receiver) == Frames())
    }

    /// Segmentation and GRO offloads on: the sender's TCP hands the veth packets of up to 64 KB,
    /// which the veth counts as one packet each with one set of headers. netacct counts the
    /// segments they stand for, each with its headers: the sender's segments are the receiver's,
    /// and their bytes are the payload (what was sent again included: a tail loss probe, when an
    /// ACK is late on a busy machine, sends a whole GSO packet again) + 66 bytes of headers a
    /// segment + 8 (the SYN's options). The veth's bytes plus 66 for each segment it counted as
    /// part of a bigger packet are the same bytes.
    @Test func withSegmentationOffloadsSegmentsAreCountedAsOnTheWire() throws {
        let lab = WireLab()
        let (a, b) = (try lab.namespace("a"), try lab.namespace("b"))
        let (sender, receiver) = try lab.link(a, b, subnet: 1, offloads: true)
        let bytes = 4_000_000
        var pids = (client: 0, server: 0), resent: [Int] = []
        let (report, deltas) = try Self.measure([sender, receiver]) {
            let run = try Self.tcp(client: sender, server: receiver, port: 5004, bulk: bytes)
            pids = (run.client, run.server)
            resent = run.retransmitted
        }
        let out = report.process(pids.client, on: sender), taken = report.process(pids.server, on: receiver)
        #expect(deltas[1] == deltas[0].reversed)
        #expect(out.txPackets == taken.rxPackets && out.txBytes == taken.rxBytes, "the segments sent are the segments received")
        #expect([report.sum("retransmitted_segments", of: pids.client), report.sum("retransmitted_bytes", of: pids.client)] == resent,
                "what its TCP_INFO says was sent again")
        #expect(out.txBytes == bytes + resent[1] + Self.tcp4 * out.txPackets + 8, "\(out), \(resent) sent again")
        #expect(out.txPackets > deltas[0].txPackets, "the veth saw GSO packets: \(deltas[0].txPackets) for \(out.txPackets) segments")
        #expect(deltas[0].txBytes + (out.txPackets - deltas[0].txPackets) * Self.tcp4 == out.txBytes)
        // The receiver's ACKs are single segments: the veth's own count.
        #expect(out.rxPackets == deltas[0].rxPackets && out.rxBytes == deltas[0].rxBytes)
        #expect(taken.txPackets == deltas[1].txPackets && taken.txBytes == deltas[1].txBytes)
        #expect(report.interface(sender) == out && report.interface(receiver) == taken, "the interfaces' totals count segments too")
        #expect(report.unattributed(sender) == Frames() && report.unattributed(receiver) == Frames())
    }

    /// An nft rule in the receiver drops ~1/8 of the data segments for the test's port (netem is
    /// not in this kernel): the sender's retransmissions are the sender namespace's RetransSegs
    /// (what `nstat -az TcpRetransSegs` shows), and its TCP_INFO's, segments and payload bytes.
    /// The dropped frames reached the veth but no socket: unattributed on the receiver's side,
    /// exactly what the rule's counter counted (its bytes are IP lengths: + 14 a frame; with
    /// offloads a dropped GSO packet is several segments, + 66 for each after the first).
    @Test(arguments: [false, true])
    func retransmissionsAreTheNamespacesRetransSegs(offloads: Bool) throws {
        let lab = WireLab()
        let (a, b) = (try lab.namespace("a"), try lab.namespace("b"))
        let (sender, receiver) = try lab.link(a, b, subnet: 1, offloads: offloads)
        try VethPair.sh("""
            ip netns exec \(b) nft add table inet wt
            ip netns exec \(b) nft add chain inet wt in '{ type filter hook input priority 0; }'
            ip netns exec \(b) nft add rule inet wt in tcp dport 5005 meta length gt 100 numgen random mod 8 == 0 counter drop
            """)
        func dropped() throws -> [Int] {
            let rule = try VethPair.sh("ip netns exec \(b) nft list chain inet wt in").split(separator: "\n").first { $0.contains("counter") } ?? ""
            let words = rule.split(separator: " ")
            return ["packets", "bytes"].map { name in words.firstIndex { $0 == name }.flatMap { Int(words[$0 + 1]) } ?? -1 }
        }
        let retransSegs = try WireLab.snmp(a, "Tcp", "RetransSegs")
        var clients: [(pid: Int, retransmitted: [Int])] = []
        var servers: [Int] = []
        let (report, deltas) = try Self.measure([sender, receiver]) {
            // Until the rule has dropped something (at 1 in 8, nearly always at once).
            for _ in 0..<5 {
                if try dropped()[0] > 0 { break }
                let run = try Self.tcp(client: sender, server: receiver, port: 5005, bulk: 2_000_000)
                clients.append((run.client, run.retransmitted))
                servers.append(run.server)
            }
        }
        let (drops, resent) = (try dropped(), try WireLab.snmp(a, "Tcp", "RetransSegs") - retransSegs)
        try #require(drops[0] > 0 && resent > 0, "the rule dropped \(drops[0]) packets, \(resent) segments were sent again")
        #expect(clients.reduce(0) { $0 + report.sum("retransmitted_segments", of: $1.pid) } == resent)
        for client in clients {
            #expect([report.sum("retransmitted_segments", of: client.pid), report.sum("retransmitted_bytes", of: client.pid)] == client.retransmitted,
                    "netacct's count of the client's retransmissions is its TCP_INFO's")
            #expect(report.process(client.pid) == report.process(client.pid, on: sender))
        }
        for server in servers { #expect(report.sum("retransmitted_segments", of: server) == 0) }
        let unattributed = report.unattributed(receiver)
        #expect(Frames(txPackets: unattributed.txPackets, txBytes: unattributed.txBytes) == Frames(), "the receiver's own frames are its process's")
        if offloads {
            #expect(unattributed.rxPackets >= drops[0])
            #expect(unattributed.rxBytes == drops[1] + 14 * drops[0] + Self.tcp4 * (unattributed.rxPackets - drops[0]), "\(unattributed), \(drops)")
            let out = clients.reduce(Frames()) { $0 + report.process($1.pid, on: sender) }
            #expect(deltas[0].txBytes + (out.txPackets - deltas[0].txPackets) * Self.tcp4 == out.txBytes)
        } else {
            #expect(unattributed.rxPackets == drops[0] && unattributed.rxBytes == drops[1] + 14 * drops[0], "\(unattributed), \(drops)")
            #expect(report.interface(sender) == deltas[0] && report.interface(receiver) == deltas[1])
            #expect(report.attributed(sender) == deltas[0] && report.unattributed(sender) == Frames())
            #expect(report.attributed(receiver) + unattributed == deltas[1])
        }
    }

    // MARK: UDP

    /// 40 datagrams of 300 bytes each way: each process sent and received exactly those, 342
    /// bytes on the wire each, and they are the veth's counts.
    @Test func udpBothWaysIsExactArithmetic() throws {
        let lab = WireLab()
        let (a, b) = (try lab.namespace("a"), try lab.namespace("b"))
        let (left, right) = try lab.link(a, b, subnet: 1)
        let (count, size) = (40, 300)
        var pids: [Int] = []
        let (report, deltas) = try Self.measure([left, right]) {
            let peers = [try Python("peer a", in: a, Self.udpPeer, [left.address, 6000, right.address, count, size]),
                         try Python("peer b", in: b, Self.udpPeer, [right.address, 6000, left.address, count, size])]
            for peer in peers { #expect(try peer.line("readiness") == "bound") }
            for peer in peers { try peer.say() }
            for peer in peers { try peer.finish() }
            pids = peers.map(\.pid)
        }
        let each = Frames(txPackets: count, txBytes: count * (Self.udp4 + size), rxPackets: count, rxBytes: count * (Self.udp4 + size))
        #expect(report.process(pids[0], on: left) == each && report.processTotal(pids[0]) == each)
        #expect(report.process(pids[1], on: right) == each && report.processTotal(pids[1]) == each)
        #expect(deltas == [each, each])
        #expect(report.interface(left) == each && report.interface(right) == each)
        #expect(report.unattributed(left) == Frames() && report.unattributed(right) == Frames())
    }

    /// IPv6, with what it sends by itself (MLD reports of the solicited-node groups) over before
    /// the test measures: UDP both ways, 62 bytes of headers a datagram, and a TCP
    /// request/response; what the processes own and what is unattributed add up to the veth's
    /// counts exactly.
    @Test func ipv6UDPAndTCPAddUpToTheVethsCounts() throws {
        let lab = WireLab()
        let (a, b) = (try lab.namespace("a", ipv6: true), try lab.namespace("b", ipv6: true))
        let (left, right) = try lab.link(a, b, subnet: 1, ipv6: true)
        usleep(2_000_000)
        let (count, size) = (30, 500)
        var udp: [Int] = [], tcp = (client: 0, server: 0)
        let (report, deltas) = try Self.measure([left, right]) {
            let peers = [try Python("peer a", in: a, Self.udpPeer, [left.address, 6000, right.address, count, size]),
                         try Python("peer b", in: b, Self.udpPeer, [right.address, 6000, left.address, count, size])]
            for peer in peers { #expect(try peer.line("readiness") == "bound") }
            for peer in peers { try peer.say() }
            for peer in peers { try peer.finish() }
            udp = peers.map(\.pid)
            let run = try Self.tcp(client: left, server: right, port: 5006, echo: 300)
            tcp = (run.client, run.server)
        }
        let each = Frames(txPackets: count, txBytes: count * (Self.udp6 + size), rxPackets: count, rxBytes: count * (Self.udp6 + size))
        #expect(report.processTotal(udp[0]) == each && report.process(udp[0], on: left) == each)
        #expect(report.processTotal(udp[1]) == each && report.process(udp[1], on: right) == each)
        let client = report.process(tcp.client, on: left), server = report.process(tcp.server, on: right)
        #expect(client.txPackets >= 303 && server.txPackets >= 302, "the requests and responses, the handshake: \(client), \(server)")
        #expect(client + each + report.unattributed(left) == deltas[0], "\(client) + \(each) + \(report.unattributed(left)) vs \(deltas[0])")
        #expect(server + each + report.unattributed(right) == deltas[1], "\(server) + \(each) + \(report.unattributed(right)) vs \(deltas[1])")
        #expect(report.interface(left) == deltas[0] && report.interface(right) == deltas[1])
    }

    // MARK: Unattributed

    /// ICMP echo: the requests are the pinging process's (a raw socket, as ping's), and so are
    /// the replies it takes in; the other namespace's kernel takes the requests in and answers
    /// them itself (the ICMP control socket has no owner): all unattributed there, 5 frames of
    /// 14 + 20 + 8 + 56 bytes each way.
    @Test func echoRepliesAreTheKernelsUnattributed() throws {
        let lab = WireLab()
        let (a, b) = (try lab.namespace("a"), try lab.namespace("b"))
        let (pinging, answering) = try lab.link(a, b, subnet: 1)
        let replies = try WireLab.snmp(b, "Icmp", "OutEchoReps")
        var pid = 0
        let (report, deltas) = try Self.measure([pinging, answering]) {
            let ping = try Python("ping", in: a, """
                import os, socket, struct, sys
                def checksum(data):
                    s = sum(struct.unpack('!%dH' % (len(data) // 2), data))
                    while s >> 16: s = (s & 0xffff) + (s >> 16)
                    return ~s & 0xffff
                s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP); s.settimeout(10)
                ident = os.getpid() & 0xffff
                for seq in range(1, 6):
                    body = struct.pack('!HH', ident, seq) + b'p' * 56
                    s.sendto(struct.pack('!BBH', 8, 0, checksum(b'\\x08\\x00\\x00\\x00' + body)) + body, (sys.argv[1], 0))
                    while True:
                        reply = s.recv(2000)
                        start = (reply[0] & 15) * 4
                        if reply[start] == 0 and struct.unpack_from('!HH', reply, start + 4) == (ident, seq): break
                """, [answering.address])
            try ping.finish()
            pid = ping.pid
        }
        let five = Frames(txPackets: 5, txBytes: 5 * 98, rxPackets: 5, rxBytes: 5 * 98)
        #expect(try WireLab.snmp(b, "Icmp", "OutEchoReps") - replies == 5)
        #expect(deltas == [five, five])
        #expect(report.process(pid, on: pinging) == five && report.unattributed(pinging) == Frames())
        #expect(report.interface(answering) == five && report.unattributed(answering) == five)
        #expect(report.attributed(answering) == Frames())
    }

    /// A datagram to a closed port and a SYN to a closed port: the other namespace's ICMP port
    /// unreachable (14 + 20 + 8 + the datagram's 20 + 8 + 100) and RST (14 + 20 + 20) are the
    /// kernel's, unattributed, and so are the frames that reached no socket. The ICMP errors
    /// reach the sender's UDP socket as errors, not through its receive path: unattributed on
    /// its side too; the RST reaches the connecting socket: the sender's.
    @Test func portUnreachableAndRSTAreUnattributed() throws {
        let lab = WireLab()
        let (a, b) = (try lab.namespace("a"), try lab.namespace("b"))
        let (sending, closed) = try lab.link(a, b, subnet: 1)
        let (unreachables, resets) = (try WireLab.snmp(b, "Icmp", "OutDestUnreachs"), try WireLab.snmp(b, "Tcp", "OutRsts"))
        var pid = 0
        let (report, deltas) = try Self.measure([sending, closed]) {
            let sender = try Python("sender", in: a, """
                import socket, sys
                u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                for _ in range(3): u.sendto(b'c' * 100, (sys.argv[1], 7))
                t = socket.socket(); t.settimeout(10)
                try:
                    t.connect((sys.argv[1], 81))
                    sys.exit('connected to a closed port')
                except ConnectionRefusedError:
                    pass
                """, [closed.address])
            try sender.finish()
            pid = sender.pid
        }
        let (unreachable, rst, datagram, syn) = (Self.udp4 + 128, 14 + 20 + 20, Self.udp4 + 100, Self.tcp4 + 8)
        #expect(try WireLab.snmp(b, "Icmp", "OutDestUnreachs") - unreachables == 3)
        #expect(try WireLab.snmp(b, "Tcp", "OutRsts") - resets == 1)
        let kernels = Frames(txPackets: 4, txBytes: 3 * unreachable + rst, rxPackets: 4, rxBytes: 3 * datagram + syn)
        #expect(deltas[1] == kernels && deltas[0] == kernels.reversed)
        #expect(report.interface(closed) == kernels && report.unattributed(closed) == kernels)
        #expect(report.process(pid, on: sending) == Frames(txPackets: 4, txBytes: 3 * datagram + syn, rxPackets: 1, rxBytes: rst))
        #expect(report.unattributed(sending) == Frames(rxPackets: 3, rxBytes: 3 * unreachable))
    }

    /// Forwarded frames have no socket: a router namespace between two others, UDP both ways
    /// through it. Its two interfaces' frames are all unattributed, and are their counts; the
    /// ends' processes own theirs.
    @Test func forwardedFramesAreUnattributedOnTheRouter() throws {
        let lab = WireLab()
        let (a, router, c) = (try lab.namespace("a"), try lab.namespace("r"), try lab.namespace("c"))
        let (left, routerLeft) = try lab.link(a, router, subnet: 1)
        let (routerRight, right) = try lab.link(router, c, subnet: 2)
        try VethPair.sh("""
            ip netns exec \(router) sysctl -qw net.ipv4.ip_forward=1
            ip -n \(a) route add default via \(routerLeft.address)
            ip -n \(c) route add default via \(routerRight.address)
            """)
        let (count, size) = (25, 200)
        var pids: [Int] = []
        let ports = [left, routerLeft, routerRight, right]
        let (report, deltas) = try Self.measure(ports) {
            let peers = [try Python("peer a", in: a, Self.udpPeer, [left.address, 6000, right.address, count, size]),
                         try Python("peer c", in: c, Self.udpPeer, [right.address, 6000, left.address, count, size])]
            for peer in peers { #expect(try peer.line("readiness") == "bound") }
            for peer in peers { try peer.say() }
            for peer in peers { try peer.finish() }
            pids = peers.map(\.pid)
        }
        let each = Frames(txPackets: count, txBytes: count * (Self.udp4 + size), rxPackets: count, rxBytes: count * (Self.udp4 + size))
        #expect(deltas == [each, each, each, each])
        for (port, delta) in zip(ports, deltas) { #expect(report.interface(port) == delta, "\(port)") }
        #expect(report.unattributed(routerLeft) == each && report.unattributed(routerRight) == each)
        #expect(report.attributed(routerLeft) == Frames() && report.attributed(routerRight) == Frames())
        #expect(report.process(pids[0], on: left) == each && report.process(pids[1], on: right) == each)
        #expect(report.unattributed(left) == Frames() && report.unattributed(right) == Frames())
    }

    /// Interface totals live in a per-CPU array, a slot per interface (a hash of its namespace
    /// and ifindex); an interface whose slot another one holds on a CPU goes to a per-CPU hash
    /// there. A hash entry is made by one CPU, and only that CPU's copy names the interface: the
    /// other CPUs' copies start zeroed, and their frames were once dropped from the totals.
    /// 257 veth pairs make ifindex 2 and 258 of one namespace share a slot; each sends 5
    /// datagrams from CPU 0, then 5 from CPU 1, ifindex 2 first (so that ifindex 258 is in the
    /// hash on both CPUs): every frame of both is in their totals.
    @Test func anInterfaceInThePerCPUHashHasEveryCPUsFrames() throws {
        try #require(ProcessInfo.processInfo.activeProcessorCount >= 2, "two CPUs")
        let lab = WireLab()
        let (a, b) = (try lab.namespace("a"), try lab.namespace("b"))
        let devices = try lab.manyLinks(a, b, count: 257)
        let (first, last) = (devices[0], devices[256])
        try VethPair.sh("""
            ip -n \(a) addr add 10.66.1.1/24 dev \(first); ip -n \(a) addr add 10.66.2.1/24 dev \(last)
            ip -n \(a) link set \(first) arp off; ip -n \(a) link set \(last) arp off
            ip -n \(b) link set w\(lab.tag)n1 up; ip -n \(b) link set w\(lab.tag)n257 up
            ip -n \(a) link set \(first) up; ip -n \(a) link set \(last) up
            """)
        let ports = [try lab.port(a, first, "10.66.1.1"), try lab.port(a, last, "10.66.2.1")]
        try #require(ports.map(\.ifindex) == [2, 258], "ifindex \(ports.map(\.ifindex))")
        var pids: [[Int]] = []
        let (report, deltas) = try Self.measure(ports) {
            for destination in ["10.66.1.2", "10.66.2.2"] {
                var senders: [Int] = []
                for cpu in [0, 1] {
                    // (No ARP on these ends: the frames go to their own address and the peer
                    // drops them, which is all this needs: frames out.)
                    let sender = try Python("sender", in: a, """
                        import os, socket, sys
                        os.sched_setaffinity(0, {int(sys.argv[2])})
                        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                        for _ in range(5): s.sendto(b'h' * 100, (sys.argv[1], 9))
                        """, [destination, cpu])
                    try sender.finish()
                    senders.append(sender.pid)
                }
                pids.append(senders)
            }
        }
        let ten = Frames(txPackets: 10, txBytes: 10 * (Self.udp4 + 100)), five = Frames(txPackets: 5, txBytes: 5 * (Self.udp4 + 100))
        #expect(deltas == [ten, ten])
        #expect(report.interface(ports[0]) == ten)
        #expect(report.interface(ports[1]) == ten, "ifindex 258, in the hash on both CPUs")
        #expect(report.unattributed(ports[0]) == Frames() && report.unattributed(ports[1]) == Frames())
        for (port, senders) in zip(ports, pids) {
            for pid in senders { #expect(report.process(pid, on: port) == five) }
        }
    }

    // MARK: Owners

    /// The owner rule: a socket's frames are its owner's, the process that created it until
    /// another makes a call on it; the last process to send or receive on a socket through a call
    /// owns its frames (a socket handed to a child moves to the child at its first call, however
    /// long its parent has been gone). A process sends 6 datagrams on a connected UDP socket,
    /// forks and exits; once it is gone, a datagram comes in for the socket before the child has
    /// made a call on it: still the parent's, shown exited. Then the child sends 4 and receives
    /// that datagram: its 4 frames out are the child's, and nothing else is.
    /// The PIDs a launcher prints ("parent N", "child N", in either order) once it has reaped the
    /// parent: gone, its /proc entry too.
    static func forkedPIDs(_ launched: Python) throws -> (parent: Int, child: Int) {
        var said: [String: Int] = [:]
        for _ in 0..<2 {
            let words = try launched.line("the parent's and the child's PIDs").split(separator: " ")
            if words.count == 2 { said[String(words[0])] = Int(words[1]) }
        }
        let pids = (parent: try #require(said["parent"]), child: try #require(said["child"]))
        #expect(!FileManager.default.fileExists(atPath: "/proc/\(pids.parent)"), "the parent has exited and been reaped")
        return pids
    }

    @Test func aForkedChildOwnsTheSocketFromItsFirstCall() throws {
        let lab = WireLab()
        let (a, b) = (try lab.namespace("a"), try lab.namespace("b"))
        let (left, right) = try lab.link(a, b, subnet: 1)
        let (parentSends, childSends, size) = (6, 4, 100)
        var pids = (parent: 0, child: 0)
        // The launcher stays until the end: the child reads its standard input (a pipe of the
        // launcher's Process) and must still run when the tool ends.
        var launcher: Python?
        defer { if pids.child > 0 { kill(Int32(pids.child), SIGKILL) } }
        let (report, deltas) = try Self.measure([left, right]) {
            let peer = try Python("peer", in: b, """
                import socket, sys
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(20)
                s.bind((sys.argv[1], 6000))
                print('bound', flush=True)
                for _ in range(\(parentSends)): _, sender = s.recvfrom(2000)
                print('got', flush=True)
                sys.stdin.readline()
                s.sendto(b'r' * \(size), sender)
                for _ in range(\(childSends)): s.recv(2000)
                """, [right.address])
            #expect(try peer.line("readiness") == "bound")
            // The parent is a child of the launcher, which reaps it: gone, not a zombie (a
            // zombie still has its /proc entry, and counts as running). Foundation does not reap
            // a process it started while that process's child holds its pipes.
            launcher = try Python("launcher", in: a, """
                import os, select, socket, sys, time
                parent = os.fork()
                if parent:
                    os.waitpid(parent, 0)
                    print('parent', parent, flush=True)
                    time.sleep(60)
                    os._exit(0)
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                s.connect((sys.argv[1], 6000))
                for _ in range(\(parentSends)): s.send(b'p' * \(size))
                child = os.fork()
                if child:
                    print('child', child, flush=True)
                    os._exit(0)
                sys.stdin.readline()
                # Readable: the datagram is in the queue, counted when the socket took it in
                # (select is no call of the owner rule: neither a send nor a receive).
                if not select.select([s], [], [], 20)[0]: sys.exit('nothing came')
                for _ in range(\(childSends)): s.send(b'c' * \(size))
                s.recv(2000)
                print('done', flush=True)
                sys.stdin.readline()
                """, [right.address])
            let launched = try #require(launcher)
            pids = try Self.forkedPIDs(launched)
            #expect(try peer.line("the parent's datagrams") == "got")
            try peer.say()
            try launched.say()
            #expect(try launched.line("the child's end") == "done")
            try peer.finish()
        }
        if pids.child > 0 { kill(Int32(pids.child), SIGKILL) }
        launcher = nil
        let datagram = Self.udp4 + size
        let parentRows = report.processRows.filter { $0["pid"] as? Int == pids.parent }
        let childRows = report.processRows.filter { $0["pid"] as? Int == pids.child }
        #expect(report.process(pids.parent, on: left) == Frames(txPackets: parentSends, txBytes: parentSends * datagram, rxPackets: 1, rxBytes: datagram))
        #expect(report.process(pids.child, on: left) == Frames(txPackets: childSends, txBytes: childSends * datagram))
        #expect(parentRows.last?["exited"] as? Bool == true, "the row of the datagram that came after its exit: \(parentRows)")
        #expect(childRows.allSatisfy { $0["exited"] as? Bool == false && $0["comm"] as? String == "python3" })
        #expect(parentRows.allSatisfy { $0["comm"] as? String == "python3" })
        #expect(report.unattributed(left) == Frames() && report.interface(left) == deltas[0])
    }

    /// Whether this kernel has the tcp_sendmsg_locked tracepoint (Linux >= 6.16), where a TCP
    /// send's caller becomes the socket's owner before any of the send's frames go out.
    static let tcpSendStart: Bool = {
        guard let btf = FileManager.default.contents(atPath: "/sys/kernel/btf/vmlinux") else { return false }
        return btf.range(of: Data("btf_trace_tcp_sendmsg_locked".utf8)) != nil
    }()

    /// The owner rule with TCP: the parent connects and sends 5 segments of 100 bytes
    /// (TCP_NODELAY: one each), waits until they are acknowledged, forks and exits; the child
    /// sends 3 more, then closes (its FIN, and its ACK of the server's FIN, from its socket).
    /// Every frame out is the parent's or the child's, to the frame: the parent's are the SYN
    /// (8 bytes of options more), its ACK and its 5 segments; the child's its 3, the FIN and the
    /// last ACK. Where tcp_sendmsg_locked is missing (Linux < 6.16), the owner changes as the
    /// child's first send ends, after its segment went out: that segment is the parent's.
    @Test func aForkedChildOwnsATCPSocketFromItsFirstSend() throws {
        let lab = WireLab()
        let (a, b) = (try lab.namespace("a"), try lab.namespace("b"))
        let (left, right) = try lab.link(a, b, subnet: 1)
        let (parentSends, childSends, size) = (5, 3, 100)
        var pids = (parent: 0, child: 0)
        var launcher: Python?
        defer { if pids.child > 0 { kill(Int32(pids.child), SIGKILL) } }
        let (report, deltas) = try Self.measure([left, right]) {
            let server = try Python("server", in: b, Self.server, [right.address, 5007, "sink"])
            #expect(try server.line("readiness") == "listening")
            launcher = try Python("launcher", in: a, """
                import os, socket, struct, sys, time
                def acknowledged(c):
                    deadline = time.monotonic() + 20
                    while struct.unpack_from('I', c.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104), 24)[0]:  # tcpi_unacked
                        if time.monotonic() > deadline: sys.exit('never acknowledged')
                        time.sleep(0.005)
                parent = os.fork()
                if parent:
                    os.waitpid(parent, 0)
                    print('parent', parent, flush=True)
                    time.sleep(60)
                    os._exit(0)
                c = socket.create_connection((sys.argv[1], 5007), timeout=20)
                c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                for _ in range(\(parentSends)): c.send(b'p' * \(size))
                acknowledged(c)
                child = os.fork()
                if child:
                    print('child', child, flush=True)
                    os._exit(0)
                sys.stdin.readline()
                for _ in range(\(childSends)): c.send(b'c' * \(size))
                acknowledged(c)
                c.shutdown(socket.SHUT_WR)
                while c.recv(100): pass
                print('done', flush=True)
                sys.stdin.readline()
                """, [right.address])
            let launched = try #require(launcher)
            pids = try Self.forkedPIDs(launched)
            try launched.say()
            #expect(try launched.line("the child's end") == "done")
            #expect(try server.line("its byte count") == String((parentSends + childSends) * size))
            try server.finish()
        }
        if pids.child > 0 { kill(Int32(pids.child), SIGKILL) }
        launcher = nil
        let segment = Self.tcp4 + size
        var parent = Frames(txPackets: 2 + parentSends, txBytes: Self.tcp4 + 8 + Self.tcp4 + parentSends * segment)
        var child = Frames(txPackets: childSends + 2, txBytes: childSends * segment + 2 * Self.tcp4)
        if !Self.tcpSendStart {
            parent = parent + Frames(txPackets: 1, txBytes: segment)
            child = child - Frames(txPackets: 1, txBytes: segment)
        }
        let sent = (report.process(pids.parent, on: left), report.process(pids.child, on: left))
        #expect(Frames(txPackets: sent.0.txPackets, txBytes: sent.0.txBytes) == parent)
        #expect(Frames(txPackets: sent.1.txPackets, txBytes: sent.1.txBytes) == child)
        #expect(sent.0 + sent.1 == deltas[0], "all of the veth's frames, out and in, are theirs")
        #expect(report.unattributed(left) == Frames() && report.interface(left) == deltas[0])
        #expect(report.processRows.filter { $0["pid"] as? Int == pids.child }.allSatisfy { $0["exited"] as? Bool == false })
    }

    /// One process sends to a process of its namespace over loopback and to the other namespace
    /// over the veth: its entries keep the two apart; the receiver on loopback has the loopback
    /// frames in. Loopback's own counters leave out the 14-byte Ethernet header loopback_xmit
    /// has pulled (eth_type_trans) before counting, and so does netacct there: lo's totals are
    /// its own counters exactly. `--interface <veth>`, run at the same time,
    /// shows the veth only: the process with its veth frames alone.
    @Test func loopbackAndVethAreKeptApartAndInterfaceSelectsOne() throws {
        let lab = WireLab()
        let (a, b) = (try lab.namespace("a"), try lab.namespace("b"))
        let (left, right) = try lab.link(a, b, subnet: 1)
        let lo = try lab.loopbackUp(a)
        let (overLoopback, overVeth, size) = (7, 5, 120)
        var pids = (sender: 0, local: 0, remote: 0)
        let (reports, deltas) = try Self.measure([left, right, lo], tools: [[], ["--interface", left.device]]) {
            let local = try Self.sink(in: a, "127.0.0.1", port: 6001, count: overLoopback)
            let remote = try Self.sink(in: b, right.address, port: 6001, count: overVeth)
            let sender = try Python("sender", in: a, """
                import socket, sys
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                for _ in range(\(overLoopback)): s.sendto(b'l' * \(size), ('127.0.0.1', 6001))
                for _ in range(\(overVeth)): s.sendto(b'v' * \(size), (sys.argv[1], 6001))
                """, [right.address])
            try sender.finish()
            try local.finish()
            try remote.finish()
            pids = (sender.pid, local.pid, remote.pid)
        }
        let (all, veth) = (reports[0], reports[1])
        let datagram = Self.udp4 + size
        let onLo = Frames(txPackets: overLoopback, txBytes: overLoopback * (datagram - 14))
        let onVeth = Frames(txPackets: overVeth, txBytes: overVeth * datagram)
        #expect(all.process(pids.sender, on: lo) == onLo && all.process(pids.sender, on: left) == onVeth)
        #expect(all.processTotal(pids.sender) == onLo + onVeth)
        #expect(all.process(pids.local, on: lo) == onLo.reversed && all.processTotal(pids.local) == onLo.reversed)
        #expect(all.process(pids.remote, on: right) == onVeth.reversed)
        #expect(all.interface(lo) == onLo + onLo.reversed && all.unattributed(lo) == Frames())
        #expect(deltas[2] == onLo + onLo.reversed, "lo's own counters: \(deltas[2])")
        #expect(all.interface(left) == deltas[0] && deltas[0] == onVeth && all.unattributed(left) == Frames())
        // --interface: the veth alone, wherever the process sent.
        #expect(veth.processTotal(pids.sender) == onVeth && veth.process(pids.sender, on: left) == onVeth)
        #expect(veth.interfaces(of: pids.sender) == ["\(left.netns)/\(left.ifindex)/\(left.device)"])
        #expect(veth.processTotal(pids.local) == Frames(), "no frame on the veth")
        let listed = Set(veth.lines.flatMap { $0["interfaces"] as? [[String: Any]] ?? [] }.map { $0["name"] as? String ?? "?" })
        #expect(listed == [left.device], "only the interface asked for: \(listed)")
        #expect(veth.interface(left) == deltas[0])
    }

    /// `--by cgroup`: a process put in a cgroup of its own before it makes its socket; the
    /// cgroup's row is the process's frames (a by-process run at the same time), and the veth's.
    @Test func byCgroupIsTheCgroupsProcesses() throws {
        let lab = WireLab()
        let (a, b) = (try lab.namespace("a"), try lab.namespace("b"))
        let (left, right) = try lab.link(a, b, subnet: 1)
        let mount = try VethPair.sh("findmnt -t cgroup2 -no TARGET").split(separator: "\n").first.map(String.init)
        let root = try #require(mount, "a cgroup2 file system is mounted")
        let path = "/netacct-wire-\(getpid())-\(UUID().uuidString.prefix(6))"
        try #require(mkdir(root + path, 0o755) == 0, "mkdir \(root + path)")
        defer { rmdir(root + path) }
        let (count, size) = (9, 250)
        var pid = 0
        let (reports, deltas) = try Self.measure([left, right], tools: [["--by", "cgroup"], []]) {
            let sink = try Self.sink(in: b, right.address, port: 6002, count: count)
            let sender = try Python("sender", in: a, """
                import socket, sys
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                for _ in range(\(count)): s.sendto(b'g' * \(size), (sys.argv[1], 6002))
                """, [right.address], cgroup: root + path)
            try sender.finish()
            try sink.finish()
            pid = sender.pid
        }
        let (byCgroup, byProcess) = (reports[0], reports[1])
        let sent = Frames(txPackets: count, txBytes: count * (Self.udp4 + size))
        #expect(byCgroup.lines.allSatisfy { $0["processes"] == nil && $0["cgroups"] is [Any] })
        #expect(byCgroup.cgroup(path) == sent, "\(byCgroup.cgroupRows.map { $0["cgroup"] ?? "?" })")
        #expect(byProcess.processTotal(pid) == sent && deltas[0] == sent)
        #expect(byCgroup.interface(left) == deltas[0] && byCgroup.unattributed(left) == Frames())
    }
}

/// What `top` refuses before it loads anything.
struct WireUsageTests {
    @Test(arguments: [
        (["--interface", "eth0"], "--interface chooses the interfaces of --wire: use them together."),
        (["-i", "eth0"], "--interface chooses the interfaces of --wire: use them together."),
        (["--wire", "--threads"], "--wire counts frames per process and cgroup: it goes with neither --threads"),
        (["--wire", "--connections"], "--wire counts frames per process and cgroup: it goes with neither --threads"),
        (["--wire", "--interface", ""], "--interface needs"),
    ])
    func badUsageIsAClearErrorWithStatus2(_ arguments: [String], _ message: String) throws {
        // An interval and a count: a command that wrongly accepted them would still end.
        let result = try Binary.run(["top"] + arguments + ["0.1", "1"])
        #expect(result.status == 2, "\(result.err)")
        #expect(result.out.isEmpty)
        #expect(result.err.contains(message), "\(result.err)")
    }
}
