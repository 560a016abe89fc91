import Accounting
import BPF
import BPFTestPrograms
import Foundation
import Glibc
import NetacctKit

/// `netacct-bench wire [datagrams] [megabytes] [rounds]`: what the wire programs cost per frame on
/// each hook and per call on the owner hooks, with the kernel's run-time statistics, beside empty
/// programs on the same hooks, under two loads over a veth pair between two namespaces (segmentation
/// off, so that every frame is a segment): a small-packet load (64-byte UDP datagrams both ways)
/// and a bulk TCP transfer. First the rate: rounds alternate each load with no program and under
/// the wire programs, no statistics kept, the senders timing themselves. Then each round runs each
/// load under the empty programs (the floor) and under the wire programs, statistics kept.
func runWireBenchmark(_ arguments: [String]) {
    let datagrams = arguments.first.flatMap { Int($0) } ?? 200_000
    let megabytes = arguments.dropFirst().first.flatMap { Int($0) } ?? 200
    let rounds = arguments.dropFirst(2).first.flatMap { Int($0) } ?? 5
    let (a, b) = ("nacct-wire-a", "nacct-wire-b")
    _ = sh("""
        ip netns del \(a) 2>/dev/null || true; ip netns del \(b) 2>/dev/null || true
        ip netns add \(a); ip netns add \(b)
        ip link add va netns \(a) type veth peer vb netns \(b)
        ip -n \(a) addr add 10.197.0.1/24 dev va; ip -n \(b) addr add 10.197.0.2/24 dev vb
        ip -n \(a) link set va up; ip -n \(b) link set vb up; ip -n \(a) link set lo up; ip -n \(b) link set lo up
        ip netns exec \(a) ethtool -K va tso off gso off gro off >/dev/null
        ip netns exec \(b) ethtool -K vb tso off gso off gro off >/dev/null
        """)
    defer { _ = sh("ip netns del \(a); ip netns del \(b)") }

    /// 64-byte datagrams both ways at once; the senders' seconds, summed.
    func smallPackets() -> Double {
        let sender = { (namespace: String, from: String, to: String) in
            """
            ip netns exec \(namespace) python3 -c "
            import socket, time
            r = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); r.bind(('\(from)', 9999))
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            start = time.perf_counter()
            for _ in range(\(datagrams / 2)): s.sendto(b'z' * 64, ('\(to)', 9999))
            print(time.perf_counter() - start)" &
            """
        }
        let out = sh(sender(a, "10.197.0.1", "10.197.0.2") + sender(b, "10.197.0.2", "10.197.0.1") + "wait")
        return out.split(separator: "\n").compactMap { Double($0) }.reduce(0, +)
    }

    /// `megabytes` over one TCP connection from a to b; the transfer's seconds.
    func bulk() -> Double {
        let out = sh("""
            ip netns exec \(b) python3 -c "
            import socket
            l = socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); l.bind(('10.197.0.2', 5201)); l.listen(1)
            c, _ = l.accept()
            while c.recv(1 << 16): pass" &
            sleep 0.3
            ip netns exec \(a) python3 -c "
            import socket, time
            c = socket.create_connection(('10.197.0.2', 5201)); block = b'b' * (1 << 16)
            start = time.perf_counter()
            for _ in range(\(megabytes * 16)): c.sendall(block)
            c.shutdown(socket.SHUT_WR); c.recv(1)
            print(time.perf_counter() - start)"
            wait
            """)
        return Double(out.split(separator: "\n").last ?? "") ?? .nan
    }

    typealias Program = WireEngine.Names.Program
    let hooks: [(name: String, floor: String, wire: Program)] = [
        ("net_dev_start_xmit (every frame out)", "floor_xmit", .countTx),
        ("netif_receive_skb (every frame in)", "floor_receive", .countRx),
        ("cgroup_skb/ingress (every frame a socket takes)", "floor_ingress", .countDelivered),
        ("sock_send_length (each send call: the owner)", "floor_send", .ownSend),
        ("sock_recv_length (each receive call: the owner)", "floor_recv", .ownRecv),
        ("tcp_sendmsg_locked (each TCP send as it starts: the owner; Linux >= 6.16)", "floor_sendmsg", .ownTcpSend),
    ]
    guard let cgroupRoot = CgroupNames.mountPoint() else { fail("no cgroup2 file system") }
    do {
        // The rate first, with no statistics kept (their clock reads would be counted against
        // the programs): each round runs a load with no program, then under the wire programs.
        var rates: [String: (without: [Double], with: [Double])] = [:]
        for (loadName, load) in [("small", smallPackets), ("bulk", bulk)] as [(String, () -> Double)] {
            for _ in 0..<rounds {
                rates[loadName, default: ([], [])].without.append(load())
                let engine = try WireEngine()
                rates[loadName, default: ([], [])].with.append(load())
                withExtendedLifetime(engine) {}
            }
        }
        let session = try StatisticsSession()
        print("netacct-bench wire: \(rounds) rounds; \(datagrams) 64-byte datagrams, \(megabytes) MB of TCP; kernel \(KernelProbe.kernelRelease), \(ProcessInfo.processInfo.activeProcessorCount) CPUs")
        for (key, loadName, load) in [("small", "small packets (64-byte UDP both ways)", smallPackets),
                                      ("bulk", "bulk TCP (1448-byte segments and their ACKs)", bulk)] as [(String, String, () -> Double)] {
            var floors = [[Double]](repeating: [], count: hooks.count), costs = floors
            var runs = [[UInt64]](repeating: [], count: hooks.count)
            let (bare, with) = rates[key] ?? ([], [])
            for _ in 0..<rounds {
                let object = try BPFObject(image: BPFObjects.floor)
                try object.load()
                let programs = try hooks.map { try object.program($0.floor) }
                let links = try programs.map { $0.name == "floor_ingress" ? try $0.attachCgroup(cgroupRoot) : try $0.attach() }
                _ = load()
                for (index, program) in programs.enumerated() { floors[index].append(nanosecondsPerEvent([try program.statistics()])) }
                withExtendedLifetime(links) {}

                let engine = try WireEngine()
                _ = load()
                let statistics = try engine.programStatistics()
                for (index, hook) in hooks.enumerated() {
                    costs[index].append(nanosecondsPerEvent(statistics[hook.wire].map { [$0] } ?? []))
                    runs[index].append(statistics[hook.wire]?.runCount ?? 0)
                }
            }
            print("")
            print("Load: \(loadName). Rate with the wire programs / without (alternated rounds, no statistics kept): \(format(median(bare) / median(with) * 100))% (seconds without \(bare.map(format).joined(separator: " ")); with \(with.map(format).joined(separator: " ")))")
            print("")
            print("| hook | floor (empty program) ns/run | wire ns/run | above floor | rounds (wire) |")
            print("|---|---|---|---|---|")
            for (index, hook) in hooks.enumerated() {
                let floor = median(floors[index]), cost = median(costs[index])
                print("| \(hook.name) | \(format(floor)) | **\(format(cost))** | \(format(cost - floor)) | \(costs[index].map(format).joined(separator: " ")) (runs: \(runs[index].map(String.init).joined(separator: " "))) |")
            }
        }
        // Where a frame's time goes on the transmit hook: the same code cut after each step
        // (bpf/tests/wire_parts.bpf.c), each alone on the hook with the owner programs, under
        // the small-packet load.
        let steps: [(String, String)] = [("empty program (floor)", "floor_xmit"), ("the interface's totals", "parts_totals"),
                                         ("+ the owner from socket storage", "parts_owner"),
                                         ("+ the owner's counters: its cell, cached in the socket's storage (count_tx whole)", "count_tx")]
        var parts = [[Double]](repeating: [], count: steps.count)
        for _ in 0..<rounds {
            for (index, step) in steps.enumerated() {
                let object = try BPFObject(image: index == 0 ? BPFObjects.floor : BPFObjects.wireParts)
                if index > 0 {
                    let owners = ["own_created", "follow_listener", "own_send", "own_recv"]
                    for name in ["count_tx", "count_rx", "count_delivered", "count_retransmit", "count_retransmit_sent",
                                 "count_synack_retransmit", "own_tcp_send", "release_socket", "parts_totals", "parts_owner"] + owners {
                        try object.program(name).autoload = owners.contains(name) || name == step.1
                    }
                }
                try object.load()
                var links: [Link] = []
                if index > 0 {
                    links.append(try object.program("own_created").attachCgroup(cgroupRoot))
                    for name in ["follow_listener", "own_send", "own_recv"] { links.append(try object.program(name).attach()) }
                }
                let program = try object.program(step.1)
                links.append(try program.attach())
                _ = smallPackets()
                parts[index].append(nanosecondsPerEvent([try program.statistics()]))
                withExtendedLifetime(links) {}
            }
        }
        print("")
        print("Where a frame's time goes on net_dev_start_xmit (small packets; each step alone on the hook):")
        print("")
        print("| program | ns/run | above floor | rounds |")
        print("|---|---|---|---|")
        for (index, step) in steps.enumerated() {
            print("| \(step.0) | \(format(median(parts[index]))) | \(format(median(parts[index]) - median(parts[0]))) | \(parts[index].map(format).joined(separator: " ")) |")
        }
        withExtendedLifetime(session) {}
    } catch {
        fail("\(error)")
    }
}
