import Accounting
import BPF
import BPFTestPrograms
import Foundation
import Glibc
import NetacctKit

/// `netacct-bench tcp [exchanges] [megabytes] [connections] [rounds]`: what the TCP health
/// programs cost per event on each hook, with the kernel's run-time statistics, beside empty
/// programs on the same hooks, over a veth pair between two namespaces (segmentation off):
/// a ping-pong of 50-byte requests (every acknowledgement ends a round trip: tcp_probe samples
/// the RTT on each), a bulk transfer (tcp_probe on every data segment and ACK, a sample per
/// round trip), the same through a rule dropping 1 segment in 50 at random (retransmissions),
/// and a churn of short connections and refused connects (state changes, resets, closes). The
/// rate of the ping-pong and the bulk transfer with the programs and without, alternated, no
/// statistics kept, first.
func runTCPHealthBenchmark(_ arguments: [String]) {
    let exchanges = arguments.first.flatMap { Int($0) } ?? 20_000
    let megabytes = arguments.dropFirst().first.flatMap { Int($0) } ?? 200
    let connections = arguments.dropFirst(2).first.flatMap { Int($0) } ?? 2_000
    let rounds = arguments.dropFirst(3).first.flatMap { Int($0) } ?? 5
    let (a, b) = ("nacct-tcp-a", "nacct-tcp-b")
    _ = sh("""
        ip netns del \(a) 2>/dev/null || true; ip netns del \(b) 2>/dev/null || true
        ip netns add \(a); ip netns add \(b)
        ip link add va netns \(a) type veth peer vb netns \(b)
        ip -n \(a) addr add 10.198.0.1/24 dev va; ip -n \(b) addr add 10.198.0.2/24 dev vb
        ip -n \(a) link set va up; ip -n \(b) link set vb up; ip -n \(a) link set lo up; ip -n \(b) link set lo up
        ip netns exec \(a) ethtool -K va tso off gso off gro off >/dev/null
        ip netns exec \(b) ethtool -K vb tso off gso off gro off >/dev/null
        ip netns exec \(a) sysctl -qw net.ipv4.ip_local_port_range='1024 65000' net.ipv4.tcp_tw_reuse=1
        ip netns exec \(b) nft add table inet bench
        ip netns exec \(b) nft add chain inet bench in '{ type filter hook input priority 0; }'
        """)
    defer { _ = sh("ip netns del \(a); ip netns del \(b)") }
    let server = """
        ip netns exec \(b) python3 -c "
        import socket
        l = socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); l.bind(('10.198.0.2', 5301)); l.listen(128)
        while True:
            c, _ = l.accept()
            while True:
                d = c.recv(1 << 16)
                if not d: break
                if len(d) <= 50: c.sendall(d)
            c.close()" &
        trap "kill $! 2>/dev/null" EXIT

        """
    /// A client's first lines: a connection to the server, retried until it listens.
    let connect = """
        import socket, time
        def connect():
            for _ in range(100):
                try: return socket.create_connection(('10.198.0.2', 5301))
                except ConnectionRefusedError: time.sleep(0.05)
            raise SystemExit('the server never listened')
        """

    /// `exchanges` request/responses of 50 bytes; the client's seconds.
    func pingPong() -> Double {
        let out = sh(server + """
            ip netns exec \(a) python3 -c "
            \(connect)
            c = connect(); c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            start = time.perf_counter()
            for _ in range(\(exchanges)):
                c.sendall(b'x' * 50); c.recv(50)
            print(time.perf_counter() - start)"
            """)
        return Double(out.split(separator: "\n").last ?? "") ?? .nan
    }

    /// `megabytes` over one connection (through the loss rule when `lossy`); the transfer's seconds.
    func bulk(lossy: Bool) -> Double {
        if lossy { _ = sh("ip netns exec \(b) nft add rule inet bench in tcp dport 5301 meta length gt 100 numgen random mod 50 == 0 drop") }
        defer { if lossy { _ = sh("ip netns exec \(b) nft flush chain inet bench in") } }
        let out = sh(server + """
            ip netns exec \(a) python3 -c "
            \(connect)
            c = connect(); block = b'b' * (1 << 16)
            start = time.perf_counter()
            for _ in range(\(megabytes * 16)): c.sendall(block)
            c.shutdown(socket.SHUT_WR); c.recv(1)
            print(time.perf_counter() - start)"
            """)
        return Double(out.split(separator: "\n").last ?? "") ?? .nan
    }

    /// `connections` short connections (connect, 50 bytes each way, close) and a refused connect
    /// for every fourth; the client's seconds.
    func churn() -> Double {
        let out = sh(server + """
            ip netns exec \(a) python3 -c "
            \(connect)
            connect().close()
            start = time.perf_counter()
            for i in range(\(connections)):
                c = connect(); c.sendall(b'x' * 50); c.recv(50); c.close()
                if i % 4 == 0:
                    try: socket.create_connection(('10.198.0.2', 5302))
                    except OSError: pass
            print(time.perf_counter() - start)"
            """)
        return Double(out.split(separator: "\n").last ?? "") ?? .nan
    }

    typealias Program = TCPHealthEngine.Names.Program
    let hooks: [(name: String, floor: String, program: Program)] = [
        ("tcp_probe (every segment an established connection receives)", "floor_tcp_probe", .watchSegment),
        ("tcp_retransmit_skb (each segment sent again)", "floor_retransmit", .countRetransmitErr),
        ("tcp_send_reset (each reset sent)", "floor_send_reset", .countResetSent),
        ("tcp_receive_reset (each reset received)", "floor_receive_reset", .countResetReceived),
        ("inet_sock_set_state (each state change)", "floor_state_change", .followState),
        ("tcp_destroy_sock (each full socket's end: its final record)", "floor_destroy_sock", .reportClosed),
    ]
    do {
        var rates: [String: (without: [Double], with: [Double])] = [:]
        for (key, load) in [("ping-pong", pingPong), ("bulk", { bulk(lossy: false) })] as [(String, () -> Double)] {
            for _ in 0..<rounds {
                rates[key, default: ([], [])].without.append(load())
                let engine = try TCPHealthEngine()
                rates[key, default: ([], [])].with.append(load())
                withExtendedLifetime(engine) {}
            }
        }
        let session = try StatisticsSession()
        print("netacct-bench tcp: \(rounds) rounds; \(exchanges) exchanges, \(megabytes) MB of TCP, \(connections) connections; kernel \(KernelProbe.kernelRelease), \(ProcessInfo.processInfo.activeProcessorCount) CPUs")
        for (key, loadName, load) in [("ping-pong", "ping-pong (50-byte requests and responses: every ACK ends a round trip)", pingPong),
                                      ("bulk", "bulk TCP (1448-byte segments and their ACKs)", { bulk(lossy: false) }),
                                      ("lossy", "bulk TCP through 1 in 50 segments dropped (retransmissions)", { bulk(lossy: true) }),
                                      ("churn", "short connections and refused connects (state changes, resets, closes)", churn)]
            as [(String, String, () -> Double)] {
            var floors = [[Double]](repeating: [], count: hooks.count), costs = floors
            var runs = [[UInt64]](repeating: [], count: hooks.count)
            for _ in 0..<rounds {
                let object = try BPFObject(image: BPFObjects.floor)
                try object.load()
                let programs = try hooks.map { try object.program($0.floor) }
                let links = try programs.map { try $0.attach() }
                _ = load()
                for (index, program) in programs.enumerated() { floors[index].append(nanosecondsPerEvent([try program.statistics()])) }
                withExtendedLifetime(links) {}

                let engine = try TCPHealthEngine()
                _ = load()
                let statistics = try engine.programStatistics()
                for (index, hook) in hooks.enumerated() {
                    costs[index].append(nanosecondsPerEvent(statistics[hook.program].map { [$0] } ?? []))
                    runs[index].append(statistics[hook.program]?.runCount ?? 0)
                }
            }
            print("")
            if let (bare, with) = rates[key] {
                print("Load: \(loadName). Rate with the TCP health programs / without (alternated rounds, no statistics kept): \(format(median(bare) / median(with) * 100))% (seconds without \(bare.map(format).joined(separator: " ")); with \(with.map(format).joined(separator: " ")))")
            } else {
                print("Load: \(loadName).")
            }
            print("")
            print("| hook | floor (empty program) ns/run | tcp health ns/run | above floor | rounds (tcp health) |")
            print("|---|---|---|---|---|")
            for (index, hook) in hooks.enumerated() where runs[index].contains(where: { $0 > 0 }) {
                let floor = median(floors[index]), cost = median(costs[index])
                print("| \(hook.name) | \(format(floor)) | **\(format(cost))** | \(format(cost - floor)) | \(costs[index].map(format).joined(separator: " ")) (runs: \(runs[index].map(String.init).joined(separator: " "))) |")
            }
        }
        // Where a close's time goes: its 320-byte final record written into the ring buffer,
        // memory nobody has touched since the last sample; the same churn with smaller rings, read
        // once after it as a sample would. The churn's ~4,500 closes fill ~1.4 MB: a smaller ring
        // fills up, and a reserve that fails is cheap, so each size's lost records are shown.
        let ringSizes = [UInt32(8 << 20), UInt32(2 << 20), UInt32(256 << 10)]
        var closes: [UInt32: [Double]] = [:], closesLost: [UInt32: UInt64] = [:]
        for _ in 0..<rounds {
            for bytes in ringSizes {
                let engine = try TCPHealthEngine(options: .init(closedRingBytes: bytes))
                _ = churn()
                closes[bytes, default: []].append(nanosecondsPerEvent((try engine.programStatistics())[.reportClosed].map { [$0] } ?? []))
                closesLost[bytes, default: 0] += try engine.sample().losses.closedLost
            }
        }
        print("")
        print("tcp_destroy_sock under the churn by the size of the closed sockets' ring buffer:")
        print("")
        print("| ring buffer | ns/run | rounds | final records lost (the ring full), all rounds |")
        print("|---|---|---|---|")
        for bytes in ringSizes {
            print("| \(bytes >> 10) KiB | \(format(median(closes[bytes] ?? []))) | \((closes[bytes] ?? []).map(format).joined(separator: " ")) | \(closesLost[bytes] ?? 0) |")
        }
        // Where the time goes on the two hooks that miss their goal: each program cut after each
        // step (bpf/tests/tcp_health_parts.bpf.c), alone on its hook with the owner programs,
        // under the churn (every connection's few ACKs end round trips; every connection closes).
        let steps: [(String, String)] = [
            ("tcp_probe: empty program (floor)", "floor_tcp_probe"),
            ("tcp_probe: the common path (the segment's ACK and window, three socket fields)", "parts_gate"),
            ("tcp_probe: + the socket's storage where a round trip ends", "parts_lookup"),
            ("tcp_probe: + the sample (watch_segment whole)", "watch_segment"),
            ("tcp_destroy_sock: empty program (floor)", "floor_destroy_sock"),
            ("tcp_destroy_sock: the socket's storage", "parts_closed_lookup"),
            ("tcp_destroy_sock: + a record reserved and submitted, empty", "parts_closed_reserve"),
            ("tcp_destroy_sock: + the record written (report_closed whole)", "report_closed"),
        ]
        var parts = [[Double]](repeating: [], count: steps.count)
        guard let cgroupRoot = CgroupNames.mountPoint() else { fail("no cgroup2 file system") }
        for _ in 0..<rounds {
            for (index, step) in steps.enumerated() {
                let floor = step.1.hasPrefix("floor")
                let object = try BPFObject(image: floor ? BPFObjects.floor : BPFObjects.tcpHealthParts)
                let owners = ["own_created", "follow_state"]
                if !floor {
                    for name in Program.allCases.map(\.rawValue) + ["parts_gate", "parts_lookup", "parts_closed_lookup", "parts_closed_reserve"] {
                        try object.program(name).autoload = owners.contains(name) || name == step.1
                    }
                }
                try object.load()
                var links: [Link] = []
                if !floor {
                    links.append(try object.program("own_created").attachCgroup(cgroupRoot))
                    links.append(try object.program("follow_state").attach())
                }
                let program = try object.program(step.1)
                links.append(try program.attach())
                _ = churn()
                parts[index].append(nanosecondsPerEvent([try program.statistics()]))
                withExtendedLifetime(links) {}
            }
        }
        print("")
        print("Where the time goes (the churn; each step alone on its hook with the owner programs):")
        print("")
        print("| program | ns/run | above its floor | rounds |")
        print("|---|---|---|---|")
        for (index, step) in steps.enumerated() {
            let floor = median(parts[index < 4 ? 0 : 4])
            print("| \(step.0) | \(format(median(parts[index]))) | \(format(median(parts[index]) - floor)) | \(parts[index].map(format).joined(separator: " ")) |")
        }
        withExtendedLifetime(session) {}
    } catch {
        fail("\(error)")
    }
}
