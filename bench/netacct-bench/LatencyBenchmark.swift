import BPF
import BPFTestPrograms
import CGlibcExtras
import CNetacct
import NetacctPrograms
import Foundation
import Glibc
import Latency
import NetacctKit

/// `netacct-bench latency [megabytes] [rounds]`: what `netacct latency in` and `out` cost per
/// packet on each of their hooks, under a bulk TCP flow across a veth pair between two network
/// namespaces this makes (the receiver runs `in`'s programs, the sender `out`'s): BPF ns per run
/// beside empty programs on the same hooks, in the same round, with every segment followed
/// (--sample 1) and with 1 in 100 (--sample 100); and the flow's throughput under each.
func runLatencyBenchmark(_ arguments: [String]) {
    let megabytes = arguments.first.flatMap { Int($0) } ?? 1000
    let rounds = arguments.dropFirst().first.flatMap { Int($0) } ?? 3
    let (sender, receiver) = ("nabench-lat-a", "nabench-lat-b")
    let (senderAddress, receiverAddress) = ("10.197.0.1", "10.197.0.2")
    sh("""
        ip netns del \(sender) 2>/dev/null || true; ip netns del \(receiver) 2>/dev/null || true
        ip netns add \(sender); ip netns add \(receiver)
        ip link add va netns \(sender) type veth peer vb netns \(receiver)
        for ns in \(sender) \(receiver); do ip netns exec $ns sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1; done
        ip -n \(sender) addr add \(senderAddress)/24 dev va; ip -n \(receiver) addr add \(receiverAddress)/24 dev vb
        ip -n \(sender) link set va up; ip -n \(receiver) link set vb up
        """)
    defer { sh("ip netns del \(sender); ip netns del \(receiver)") }
    func inode(_ namespace: String) -> UInt32 {
        var info = stat()
        guard stat("/run/netns/\(namespace)", &info) == 0 else { fail("no /run/netns/\(namespace)") }
        return UInt32(truncatingIfNeeded: info.st_ino)
    }
    /// Runs `body` with this thread in `namespace` (netfilter links are made in the caller's).
    func inside<T>(_ namespace: String, _ body: () throws -> T) throws -> T {
        try NetworkNamespace.within("/run/netns/\(namespace)", body)
    }
    /// One bulk flow of `megabytes` from the sender to the receiver; its rate in MB/s. `poll`
    /// runs while it flows.
    func flow(_ poll: () -> Void = {}) -> Double {
        let server = Process()
        server.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
        server.arguments = ["netns", "exec", receiver, "/usr/bin/python3", "-c", """
            import socket
            s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(('\(receiverAddress)', 7200)); s.listen(); print('listening', flush=True)
            c, _ = s.accept()
            while c.recv(1 << 16): pass
            """]
        let ready = Pipe()
        server.standardOutput = ready
        do { try server.run() } catch { fail("server: \(error)") }
        _ = ready.fileHandleForReading.availableData
        let client = Process()
        client.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
        client.arguments = ["netns", "exec", sender, "/usr/bin/python3", "-c", """
            import socket
            c = socket.create_connection(('\(receiverAddress)', 7200)); chunk = b'x' * (1 << 16)
            for _ in range(\(megabytes * 16)): c.sendall(chunk)
            c.close()
            """]
        let start = Date()
        do { try client.run() } catch { fail("client: \(error)") }
        while client.isRunning { poll(); usleep(20_000) }
        server.waitUntilExit()
        return Double(megabytes) / Date().timeIntervalSince(start)
    }

    print("netacct-bench latency: \(rounds) rounds of a \(megabytes) MB TCP flow over a veth pair between two namespaces, kernel \(KernelProbe.kernelRelease), \(ProcessInfo.processInfo.activeProcessorCount) CPUs")
    typealias InProgram = NetacctPrograms.BPFObjects.LatencyIn.Program
    typealias OutProgram = NetacctPrograms.BPFObjects.LatencyOut.Program
    typealias Floor = BPFTestPrograms.BPFObjects.Floor.Program
    typealias Netfilter = BPFTestPrograms.BPFObjects.Netfilter.Program
    // Each hook: its name, its floor program, and netacct's program on it.
    let hooks: [(hook: String, floor: String, program: String)] = [
        ("in: netif_receive_skb (MAC)", Floor.floorReceive.rawValue, InProgram.received.rawValue),
        ("in: netfilter PRE_ROUTING (IP)", Netfilter.acceptAll.rawValue, InProgram.ipReceived.rawValue),
        ("in: netfilter LOCAL_IN (the socket's owner)", Netfilter.acceptAll.rawValue, InProgram.ipDelivered.rawValue),
        ("in: tcp_probe (TCP)", Floor.floorTcpProbe.rawValue, InProgram.tcpReceived.rawValue),
        ("in: skb_copy_datagram_iovec (read)", Floor.floorCopy.rawValue, InProgram.copied.rawValue),
        ("out: tcp_sendmsg_locked (TCP)", Floor.floorSendmsg.rawValue, OutProgram.sendingData.rawValue),
        ("out: netfilter LOCAL_OUT (IP)", Netfilter.acceptAll.rawValue, OutProgram.ipSending.rawValue),
        ("out: net_dev_queue (QDISC)", Floor.floorQueue.rawValue, OutProgram.queued.rawValue),
        ("out: net_dev_start_xmit (driver)", Floor.floorXmit.rawValue, OutProgram.transmitted.rawValue),
    ]
    do {
        let session = try StatisticsSession()
        var floors: [String: [Double]] = [:]
        var followed: [UInt32: [String: [Double]]] = [:]
        var rates: [String: [Double]] = [:], shown: [UInt32: Int] = [:], notFollowed: [UInt32: UInt64] = [:]
        for _ in 0..<rounds {
            // The floor: empty programs on every hook (one netfilter program at both IP points).
            do {
                let floor = try BPFObject(image: BPFTestPrograms.BPFObjects.floor)
                try floor.load()
                let netfilter = try BPFObject(image: BPFTestPrograms.BPFObjects.netfilter)
                for name in Netfilter.allCases { try netfilter.program(name).makeNetfilterProgram() }
                try netfilter.load()
                let accept = try netfilter.program(Netfilter.acceptAll)
                let links = try hooks.compactMap { hook in hook.floor.hasPrefix("floor") ? try floor.program(hook.floor).attach() : nil }
                let ip = [try inside(receiver) { try accept.attachNetfilter(.ipv4, .preRouting, priority: Int32.min + 1) },
                          try inside(sender) { try accept.attachNetfilter(.ipv4, .localOut, priority: Int32.min + 1) }]
                rates["empty programs", default: []].append(flow())
                for hook in hooks {
                    let statistics = try (hook.floor.hasPrefix("floor") ? floor : netfilter).program(hook.floor).statistics()
                    floors[hook.hook, default: []].append(nanosecondsPerEvent([statistics]))
                }
                withExtendedLifetime((links, ip)) {}
            }
            for sample: UInt32 in [1, 100] {
                var filter = LatencyFilter()
                filter.sample = sample
                let inbound = try inside(receiver) { try LatencyEngine(direction: .in, filter: filter, histograms: false, namespace: inode(receiver)) }
                let outbound = try inside(sender) { try LatencyEngine(direction: .out, filter: filter, histograms: false, namespace: inode(sender)) }
                var reports = 0
                rates["--sample \(sample)", default: []].append(flow {
                    reports += (try? inbound.poll(milliseconds: 0).count) ?? 0
                    reports += (try? outbound.poll(milliseconds: 0).count) ?? 0
                })
                reports += try inbound.poll(milliseconds: 0).count + outbound.poll(milliseconds: 0).count
                shown[sample, default: 0] += reports

                for engine in [inbound, outbound] {
                    let losses = try engine.losses()
                    notFollowed[sample, default: 0] += losses.socketFull + losses.tableFull
                }
                let statistics = try inbound.programStatistics().merging(try outbound.programStatistics()) { first, _ in first }
                for hook in hooks {
                    guard let program = statistics[hook.program] else { continue }
                    followed[sample, default: [:]][hook.hook, default: []].append(nanosecondsPerEvent([program]))
                }
            }
        }
        print("")
        print("| hook | empty program | --sample 1 | above empty | --sample 100 | above empty |")
        print("|---|---|---|---|---|---|")
        for hook in hooks {
            let base = median(floors[hook.hook] ?? [])
            let one = median(followed[1]?[hook.hook] ?? []), hundred = median(followed[100]?[hook.hook] ?? [])
            print("| \(hook.hook) | \(format(base)) | **\(format(one))** | \(format(one - base)) | **\(format(hundred))** | \(format(hundred - base)) |")
        }
        print("")
        print("Rounds (ns/run, --sample 1): " + hooks.map { hook in "\(hook.hook.split(separator: " ")[1]) \((followed[1]?[hook.hook] ?? []).map(format).joined(separator: "/"))" }.joined(separator: "; "))
        for sample: UInt32 in [1, 100] {
            print("--sample \(sample): \(shown[sample] ?? 0) segments reported over \(rounds) rounds (in and out), \(notFollowed[sample] ?? 0) sampled but not followed (a socket's queue of \(NETACCT_LATENCY_SOCKET_SLOTS) full).")
        }
        print("Throughput (MB/s per round): " + ["empty programs", "--sample 1", "--sample 100"].map { "\($0) \((rates[$0] ?? []).map { String(format: "%.0f", $0) }.joined(separator: " "))" }.joined(separator: "; "))
        withExtendedLifetime(session) {}
    } catch {
        fail("\(error)")
    }
}
