import Foundation
import Glibc
import Testing

/// Causes drops in the veth pair's receiver, for real: from the sender, datagrams to a closed
/// port or to a socket that never reads, raw TCP segments; in the receiver, a TCP server.
struct DropMaker {
    let pair: VethPair
    var sender: String { pair.sender }
    var receiver: String { pair.receiver }
    static let raw = """
        import socket, struct, sys
        def csum(data):
            if len(data) % 2: data += b'\\0'
            s = sum(struct.unpack('!%dH' % (len(data) // 2), data))
            while s >> 16: s = (s & 0xffff) + (s >> 16)
            return ~s & 0xffff
        src, dst, sport, dport, seq, good, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6] == 'good', int(sys.argv[7])
        tcp = struct.pack('!HHIIBBHHH', sport, dport, seq, 0, 5 << 4, 0x10, 65535, 0, 0)
        c = csum(socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack('!BBH', 0, 6, len(tcp)) + tcp)
        tcp = tcp[:16] + struct.pack('!H', c if good else c ^ 0x5a5a) + tcp[18:]
        ip = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(tcp), 1, 0, 64, 6, 0, socket.inet_aton(src), socket.inet_aton(dst))
        ip = ip[:10] + struct.pack('!H', csum(ip)) + ip[12:]
        s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
        for _ in range(count): s.sendto(ip + tcp, (dst, 0))
        """

    init() throws {
        pair = try VethPair()
        // Loopback in the receiver, with IPv6 on it, for the family filters.
        try VethPair.sh("ip netns exec \(pair.receiver) sysctl -qw net.ipv6.conf.lo.disable_ipv6=0; ip -n \(pair.receiver) link set lo up")
    }

    /// `count` datagrams from the sender to the receiver's `port`, from source port 33333.
    func datagrams(_ count: Int, to port: Int, bytes: Int = 100) throws {
        try VethPair.sh("""
            ip netns exec \(sender) /usr/bin/python3 -c "
            import socket
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('', 33333))
            for _ in range(\(count)): s.sendto(b'u' * \(bytes), ('\(VethPair.receiverAddress)', \(port)))"
            """)
    }

    /// Datagrams sent inside the receiver over its loopback, to a closed port, IPv4 or IPv6.
    func loopbackDatagrams(_ count: Int, ipv6: Bool, to port: Int) throws {
        try VethPair.sh("""
            ip netns exec \(receiver) /usr/bin/python3 -c "
            import socket
            s = socket.socket(socket.\(ipv6 ? "AF_INET6" : "AF_INET"), socket.SOCK_DGRAM)
            for _ in range(\(count)): s.sendto(b'l', ('\(ipv6 ? "::1" : "127.0.0.1")', \(port)))"
            """)
    }

    /// TCP segments from the sender with this tuple and sequence number, checksum good or bad.
    func segments(_ count: Int, sport: Int, dport: Int, seq: UInt32 = 12345, goodChecksum: Bool) throws {
        try VethPair.sh("""
            ip netns exec \(sender) /usr/bin/python3 -c "\(Self.raw)" \(VethPair.senderAddress) \(VethPair.receiverAddress) \(sport) \(dport) \(seq) \(goodChecksum ? "good" : "bad") \(count)
            """)
    }

    /// A process in `namespace` (and in the cgroup at `cgroup`, a directory) that runs `script`
    /// and prints a line when ready; killed at the end.
    final class Helper {
        let process = Process()
        let lines: LineReader
        /// With `input`, the script's standard input is a pipe the test writes to (`say`).
        private let input: Pipe?
        init(namespace: String, _ script: String, input: Bool = false, cgroup: String? = nil) throws {
            let command = ["netns", "exec", namespace, "/usr/bin/python3", "-c", script]
            process.executableURL = URL(fileURLWithPath: cgroup == nil ? "/usr/sbin/ip" : "/bin/sh")
            process.arguments = cgroup.map { [#"-c"#, #"echo $$ > "$0/cgroup.procs" && exec /usr/sbin/ip "$@""#, $0] + command } ?? command
            let out = Pipe()
            process.standardOutput = out
            self.input = input ? Pipe() : nil
            if let pipe = self.input { process.standardInput = pipe }
            try process.run()
            lines = LineReader(out.fileHandleForReading)
        }
        var pid: Int32 { process.processIdentifier }
        /// A line to the script's standard input.
        func say(_ line: String) throws {
            try input?.fileHandleForWriting.write(contentsOf: Data((line + "\n").utf8))
        }
        deinit {
            // Never kill(0, …): that is the whole group; nor a process already reaped.
            guard process.processIdentifier > 0, process.isRunning else { return }
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }

    /// A UDP socket on the receiver's `port` with the smallest receive buffer, never read (by a
    /// process `named` so, in the cgroup at `cgroup`, a directory, if given).
    func deafReceiver(port: Int, named name: String? = nil, cgroup: String? = nil) throws -> Helper {
        let helper = try Helper(namespace: receiver, """
            import ctypes, socket, time
            \(name.map { "ctypes.CDLL(None).prctl(15, b'\($0)', 0, 0, 0)" } ?? "")
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1)
            s.bind(('\(VethPair.receiverAddress)', \(port)))
            print('bound', flush=True)
            time.sleep(60)
            """, cgroup: cgroup)
        _ = helper.lines.next()
        return helper
    }

    /// The receiver's SNMP counter (`Udp` `NoPorts`, `Tcp` `InCsumErrors`…).
    func snmp(_ group: String, _ name: String) throws -> Int {
        let lines = try VethPair.sh("ip netns exec \(receiver) cat /proc/net/snmp").split(separator: "\n").filter { $0.hasPrefix("\(group):") }
        guard lines.count == 2 else { return -1 }
        let names = lines[0].split(separator: " "), values = lines[1].split(separator: " ")
        guard let index = names.firstIndex(where: { $0 == name }) else { return -1 }
        return Int(values[index]) ?? -1
    }
}

@Suite(.serialized, .enabled(if: isRoot, "makes network namespaces and loads BPF programs: needs root"))
struct DropsCommandTests {
    static let keys: Set<String> = ["time", "pid", "comm", "family", "protocol", "saddr", "sport", "daddr", "dport", "reason", "state", "ifname"]

    @Test func aDatagramToAPortNobodyListensOnIsNoSocketWithNoOwner() throws {
        let maker = try DropMaker()
        let before = try maker.snmp("Udp", "NoPorts")
        let run = try DropsRun(namespace: maker.receiver, ["--count", "5"])
        try maker.datagrams(5, to: 7)
        let (status, drops, _) = try run.finish(timeout: 2)
        #expect(status == 0)
        #expect(drops.count == 5)
        #expect(try maker.snmp("Udp", "NoPorts") - before == 5, "the kernel's own counter agrees")
        for drop in drops {
            #expect(Set(drop.keys) == Self.keys)
            #expect(drop.string("reason") == "NO_SOCKET" && drop.string("protocol") == "udp")
            #expect(drop.isNull("pid") && drop.isNull("comm") && drop.isNull("state"), "no socket: no owner")
            #expect(drop.string("saddr") == VethPair.senderAddress && drop.int("sport") == 33333)
            #expect(drop.string("daddr") == VethPair.receiverAddress && drop.int("dport") == 7)
            #expect(drop.int("family") == 4 && drop.string("ifname") == "vb")
        }
    }

    @Test func aFullReceiveBufferIsSocketRcvbuffOfTheReceivingProcess() throws {
        let maker = try DropMaker()
        let deaf = try maker.deafReceiver(port: 9100)
        let before = try maker.snmp("Udp", "RcvbufErrors")
        let run = try DropsRun(namespace: maker.receiver, ["--udp"])
        try maker.datagrams(40, to: 9100, bytes: 1000)
        let (status, drops, _) = try run.finish()
        let dropped = try maker.snmp("Udp", "RcvbufErrors") - before
        #expect(status == 0)
        #expect(dropped > 0 && drops.count == dropped, "a line per drop the kernel counted: \(drops.count) vs \(dropped)")
        for drop in drops {
            #expect(drop.string("reason") == "SOCKET_RCVBUFF")
            #expect(drop.int("pid") == Int(deaf.pid), "the socket's owner, not whoever ran the softirq")
            #expect(drop.string("comm") == "python3")
            #expect(drop.int("dport") == 9100)
        }
    }

    /// The owner is the process that bound the socket, recorded by the kernel at bind: it has
    /// exited, and a child it forked holds the socket, which is all /proc could tell.
    @Test func aSocketsOwnerIsTheProcessThatBoundItEvenAfterItHasExited() throws {
        let maker = try DropMaker()
        let run = try DropsRun(namespace: maker.receiver, ["--udp"])
        let binder = try DropMaker.Helper(namespace: maker.receiver, """
            import os, socket, time
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1)
            s.bind(('\(VethPair.receiverAddress)', 9100))
            child = os.fork()
            if child == 0:
                os.dup2(os.open('/dev/null', os.O_WRONLY), 1)  # the test reads the binder's output to its end
                time.sleep(60)
                os._exit(0)
            print(child, flush=True)
            """)
        let child = try #require(binder.lines.next().flatMap { Int32($0) })
        defer { kill(child, SIGKILL) }
        // Exited: a zombie or gone (its child keeps Foundation's pipes open, so no waitUntilExit).
        func exited(_ pid: Int32) -> Bool {
            guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { return true }
            return stat[stat.index(close, offsetBy: 2)] == "Z"
        }
        let deadline = Date().addingTimeInterval(5)
        while !exited(binder.pid) && Date() < deadline { usleep(10_000) }
        try #require(exited(binder.pid), "the binder has exited")
        try #require(kill(child, 0) == 0, "its child still holds the socket")
        try maker.datagrams(30, to: 9100, bytes: 1000)
        let drops = try successful(run.finish(timeout: 0.5)).output.filter { $0.int("dport") == 9100 }
        #expect(!drops.isEmpty)
        #expect(drops.allSatisfy { $0.string("reason") == "SOCKET_RCVBUFF" && $0.int("pid") == Int(binder.pid) && $0.string("comm") == "python3" },
                "the binder \(binder.pid), not its child \(child): \(drops.map { $0.int("pid") ?? -1 })")
    }

    @Test func aTCPSegmentWithABadChecksumIsTCPCsum() throws {
        let maker = try DropMaker()
        let before = try maker.snmp("Tcp", "InCsumErrors")
        let run = try DropsRun(namespace: maker.receiver, ["--count", "3"])
        try maker.segments(3, sport: 40000, dport: 80, goodChecksum: false)
        let (status, drops, _) = try run.finish(timeout: 2)
        #expect(status == 0)
        #expect(drops.count == 3)
        #expect(try maker.snmp("Tcp", "InCsumErrors") - before == 3)
        for drop in drops {
            #expect(drop.string("reason") == "TCP_CSUM" && drop.string("protocol") == "tcp")
            #expect(drop.int("sport") == 40000 && drop.int("dport") == 80)
        }
    }

    @Test func aSegmentOutsideTheWindowIsASequenceDropOfTheEstablishedSocketsOwner() throws {
        let maker = try DropMaker()
        let server = try DropMaker.Helper(namespace: maker.receiver, """
            import socket, time
            s = socket.socket(); s.bind(('\(VethPair.receiverAddress)', 8080)); s.listen()
            print('listening', flush=True)
            a, peer = s.accept(); print(peer[1], flush=True)
            time.sleep(60)
            """)
        _ = server.lines.next()
        let client = try DropMaker.Helper(namespace: maker.sender, """
            import socket, time
            c = socket.create_connection(('\(VethPair.receiverAddress)', 8080)); print(c.getsockname()[1], flush=True)
            time.sleep(60)
            """)
        let clientPort = try #require(client.lines.next().flatMap { Int($0) })
        _ = server.lines.next()
        let run = try DropsRun(namespace: maker.receiver, ["--tcp", "--count", "2"])
        try maker.segments(2, sport: clientPort, dport: 8080, seq: 123_456_789, goodChecksum: true)
        let (status, drops, _) = try run.finish(timeout: 2)
        #expect(status == 0)
        #expect(drops.count == 2)
        for drop in drops {
            #expect(["TCP_INVALID_SEQUENCE", "TCP_OLD_SEQUENCE"].contains(drop.string("reason") ?? ""))
            #expect(drop.string("state") == "ESTABLISHED")
            #expect(drop.int("pid") == Int(server.pid) && drop.string("comm") == "python3")
            #expect(drop.int("sport") == clientPort && drop.int("dport") == 8080)
        }
    }

    /// The same drops under each filter: 4 NO_SOCKET over the veth, 2 over IPv4 loopback, 3 over
    /// IPv6 loopback, 2 TCP_CSUM, and some SOCKET_RCVBUFF of a process.
    @Test(arguments: ["-p", "--udp", "--reason", "-4", "-6"])
    func eachFilterKeepsWhatItShould(_ filter: String) throws {
        let maker = try DropMaker()
        let deaf = try maker.deafReceiver(port: 9100)
        var arguments: [String] = []
        switch filter {
        case "-p": arguments = ["-p", String(deaf.pid)]
        case "--reason": arguments = ["--reason", "NO_SOCKET"]
        default: arguments = [filter]
        }
        let run = try DropsRun(namespace: maker.receiver, arguments)
        try maker.datagrams(4, to: 7)
        try maker.loopbackDatagrams(2, ipv6: false, to: 7)
        try maker.loopbackDatagrams(3, ipv6: true, to: 7)
        try maker.segments(2, sport: 40000, dport: 80, goodChecksum: false)
        try maker.datagrams(20, to: 9100, bytes: 1000)
        let drops = try successful(run.finish()).output
        func count(_ reason: String) -> Int { drops.filter { $0.string("reason") == reason }.count }
        switch filter {
        case "-p":
            #expect(count("SOCKET_RCVBUFF") > 0 && drops.count == count("SOCKET_RCVBUFF"))
            #expect(drops.allSatisfy { $0.int("pid") == Int(deaf.pid) })
        case "--udp":
            #expect(count("TCP_CSUM") == 0 && count("NO_SOCKET") == 9 && count("SOCKET_RCVBUFF") > 0)
        case "--reason":
            #expect(drops.count == 9 && count("NO_SOCKET") == 9)
        case "-4":
            #expect(count("NO_SOCKET") == 6 && count("TCP_CSUM") == 2 && drops.allSatisfy { $0.int("family") == 4 })
        case "-6":
            #expect(drops.count == 3 && drops.allSatisfy { $0.int("family") == 6 && $0.string("daddr") == "::1" && $0.string("ifname") == "lo" }, "\(drops)")
        default:
            Issue.record("no expectation for \(filter)")
        }
    }

    @Test func theSummaryCountsEveryDropAndAgreesWithTheKernelsCounters() throws {
        let maker = try DropMaker()
        let deaf = try maker.deafReceiver(port: 9100)
        let (noPorts, rcvbuf, csum) = (try maker.snmp("Udp", "NoPorts"), try maker.snmp("Udp", "RcvbufErrors"), try maker.snmp("Tcp", "InCsumErrors"))
        let run = try DropsRun(namespace: maker.receiver, ["--summary", "0.3"])
        try maker.datagrams(25, to: 7)
        try maker.datagrams(30, to: 9100, bytes: 1000)
        try maker.segments(4, sport: 40000, dport: 80, goodChecksum: false)
        usleep(700_000)
        let (status, intervals, _) = try run.finish(timeout: 0)
        #expect(status == 0)
        var counts: [String: Int] = [:]
        for interval in intervals {
            #expect(interval["interval_s"] is Double)
            for row in interval["drops"] as? [[String: Any]] ?? [] {
                let key = "\(row.string("reason") ?? "?")/\(row.string("protocol") ?? "?")/\(row.int("pid").map(String.init) ?? "-")"
                counts[key, default: 0] += row.int("count") ?? 0
            }
        }
        let rcvbufDrops = try maker.snmp("Udp", "RcvbufErrors") - rcvbuf
        #expect(try maker.snmp("Udp", "NoPorts") - noPorts == 25)
        #expect(try maker.snmp("Tcp", "InCsumErrors") - csum == 4)
        #expect(rcvbufDrops > 0)
        #expect(counts == ["NO_SOCKET/udp/-": 25, "SOCKET_RCVBUFF/udp/\(deaf.pid)": rcvbufDrops, "TCP_CSUM/tcp/-": 4], "\(counts)")
    }

    /// A socket's first drop on two CPUs at once: both find no count for it, both insert one,
    /// and the insert that loses (-EEXIST) still counts for the socket. 500 sockets that never
    /// read, each given a datagram first (a socket whose queue is not empty drops every other
    /// one), then two senders pinned to two CPUs that meet at each port (a spin on shared
    /// memory) and send it 2 datagrams each: on a veth the drop happens in the sending CPU's
    /// softirq, so each port's first drops on both CPUs come together. Every one of them is the
    /// receiver's, and none is left over as an owner-unknown row.
    @Test func dropsThatTwoCPUsCountFirstForTheSameSocketAtOnceAreAllTheSockets() throws {
        let (sockets, firstPort, burst) = (500, 20000, 2)
        let maker = try DropMaker()
        let before = try maker.snmp("Udp", "RcvbufErrors")
        let run = try DropsRun(namespace: maker.receiver, ["--summary", "1"])
        let receiver = try DropMaker.Helper(namespace: maker.receiver, """
            import resource, socket, time
            soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
            resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, \(sockets + 64)), max(hard, \(sockets + 64))))
            kept = []
            for port in range(\(firstPort), \(firstPort + sockets)):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1)
                s.bind(('\(VethPair.receiverAddress)', port))
                kept.append(s)
            print('bound', flush=True)
            time.sleep(60)
            """)
        try #require(receiver.lines.next() == "bound")
        let started = Date()
        // Bounded: each sender gives up after 20 s without the other (status 3); the parent
        // fails unless both went through every port.
        try VethPair.sh("""
            ip netns exec \(maker.sender) /usr/bin/python3 -c "
            import os, socket, sys, time
            from multiprocessing import RawArray
            cpus = sorted(os.sched_getaffinity(0))[:2]
            if len(cpus) < 2: sys.exit('two CPUs needed, have ' + str(cpus))
            destination = '\(VethPair.receiverAddress)'
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            for port in range(\(firstPort), \(firstPort + sockets)): s.sendto(b'f' * 1000, (destination, port))
            arrived = RawArray('q', 2)
            def send(me):
                os.sched_setaffinity(0, {cpus[me]})
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                other, deadline = 1 - me, time.monotonic() + 20
                for i in range(1, \(sockets) + 1):
                    arrived[me] = i
                    spins = 0
                    while arrived[other] < i:
                        spins += 1
                        if spins % 65536 == 0 and time.monotonic() > deadline: os._exit(3)
                    for _ in range(\(burst)): s.sendto(b'd' * 16, (destination, \(firstPort) + i - 1))
                os._exit(0)
            children = []
            for me in (0, 1):
                child = os.fork()
                if child == 0: send(me)
                children.append(child)
            statuses = [os.waitpid(child, 0)[1] for child in children]
            sys.exit(0 if statuses == [0, 0] else 'senders ended with ' + str(statuses))"
            """)
        let load = Date().timeIntervalSince(started)
        usleep(300_000)
        let intervals = try successful(run.finish(timeout: 0)).output
        var counts: [String: Int] = [:]
        for interval in intervals {
            for row in interval["drops"] as? [[String: Any]] ?? [] {
                let key = "\(row.string("reason") ?? "?")/\(row.string("protocol") ?? "?")/\(row.int("pid").map(String.init) ?? "-")"
                counts[key, default: 0] += row.int("count") ?? 0
            }
        }
        let dropped = try maker.snmp("Udp", "RcvbufErrors") - before
        #expect(dropped == sockets * 2 * burst, "every datagram after each socket's first is a drop: \(dropped) in \(load) s")
        #expect(counts == ["SOCKET_RCVBUFF/udp/\(receiver.pid)": dropped],
                "all \(dropped) drops the kernel counted are the receiver's sockets', none owner-unknown: \(counts)")
    }

    @Test func anUnknownReasonIsAnErrorThatListsThisKernelsReasons() throws {
        let result = try Binary.run(["drops", "--reason", "NO_SUCH_REASON"])
        #expect(result.status == 1)
        #expect(result.err.contains("no drop reason NO_SUCH_REASON; its reasons: "))
        #expect(result.err.contains("NO_SOCKET") && result.err.contains("TCP_CSUM"))
    }
}

struct DropsUsageTests {
    @Test(arguments: [
        (["-4", "-6"], "-4 and -6 exclude each other"),
        (["--tcp", "--udp"], "--tcp and --udp exclude each other"),
        (["5"], "An interval is for --summary"),
        (["--summary", "0"], "positive number of seconds"),
        (["--count", "0"], "at least 1"),
    ])
    func badUsageIsAClearErrorWithStatus2(_ arguments: [String], _ message: String) throws {
        let result = try Binary.run(["drops"] + arguments)
        #expect(result.status == 2)
        #expect(result.err.contains(message), "\(result.err)")
    }
}
