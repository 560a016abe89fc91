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
/// (--sample 1), with 1 in 100 (--sample 100) and every one counted in histograms instead of
/// reported (--sample 1 --hist); where a followed segment's time goes at the two points that
/// report; and the flow's throughput under each.
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
        // Each mode: every segment followed, 1 in 100, and every one counted in histograms (--hist: no report).
        let modes: [(name: String, sample: UInt32, histograms: Bool, ring: UInt32)] = [
            ("--sample 1", 1, false, LatencyEngine.defaultRingBytes), ("--sample 100", 100, false, LatencyEngine.defaultRingBytes),
            ("--sample 1 --hist", 1, true, 0), ("--sample 1, a 256 KiB ring", 1, false, 256 << 10),
        ]
        var followed: [String: [String: [Double]]] = [:]
        var rates: [String: [Double]] = [:], shown: [String: Int] = [:], notFollowed: [String: UInt64] = [:], lostReports: [String: UInt64] = [:]
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
            for mode in modes {
                var filter = LatencyFilter()
                filter.sample = mode.sample
                let inbound = try inside(receiver) { try LatencyEngine(direction: .in, filter: filter, histograms: mode.histograms, namespace: inode(receiver), ringBytes: max(mode.ring, 4096)) }
                let outbound = try inside(sender) { try LatencyEngine(direction: .out, filter: filter, histograms: mode.histograms, namespace: inode(sender), ringBytes: max(mode.ring, 4096)) }
                var reports = 0
                rates[mode.name, default: []].append(flow {
                    reports += (try? inbound.poll(milliseconds: 0).count) ?? 0
                    reports += (try? outbound.poll(milliseconds: 0).count) ?? 0
                })
                reports += try inbound.poll(milliseconds: 0).count + outbound.poll(milliseconds: 0).count
                shown[mode.name, default: 0] += reports

                for engine in [inbound, outbound] {
                    let losses = try engine.losses()
                    notFollowed[mode.name, default: 0] += losses.socketFull + losses.tableFull
                    lostReports[mode.name, default: 0] += losses.lostReports
                }
                let statistics = try inbound.programStatistics().merging(try outbound.programStatistics()) { first, _ in first }
                for hook in hooks {
                    guard let program = statistics[hook.program] else { continue }
                    followed[mode.name, default: [:]][hook.hook, default: []].append(nanosecondsPerEvent([program]))
                }
            }
        }
        print("")
        print("| hook | empty program | " + modes.map { "\($0.name) | above empty" }.joined(separator: " | ") + " |")
        print("|---|---|" + modes.map { _ in "---|---|" }.joined())
        for hook in hooks {
            let base = median(floors[hook.hook] ?? [])
            let figures = modes.map { median(followed[$0.name]?[hook.hook] ?? []) }
            print("| \(hook.hook) | \(format(base)) | " + figures.map { "**\(format($0))** | \(format($0 - base))" }.joined(separator: " | ") + " |")
        }
        print("")
        for mode in modes where mode.sample == 1 {
            print("Rounds (ns/run, \(mode.name)): " + hooks.map { hook in "\(hook.hook.split(separator: " ")[1]) \((followed[mode.name]?[hook.hook] ?? []).map(format).joined(separator: "/"))" }.joined(separator: "; "))
        }
        for mode in modes {
            print("\(mode.name): \(shown[mode.name] ?? 0) segments reported over \(rounds) rounds (in and out), \(notFollowed[mode.name] ?? 0) sampled but not followed (a socket's queue of \(NETACCT_LATENCY_SOCKET_SLOTS) full), \(lostReports[mode.name] ?? 0) reports lost (the ring buffer full; the benchmark reads it every 20 ms).")
        }
        print("Throughput (MB/s per round): " + (["empty programs"] + modes.map(\.name)).map { "\($0) \((rates[$0] ?? []).map { String(format: "%.0f", $0) }.joined(separator: " "))" }.joined(separator: "; "))

        // Where a followed segment's time goes at the two points that report (the read for in,
        // the driver for out), and at tcp_probe and LOCAL_OUT: each program cut after each step
        // (bpf/tests/latency_*_parts.bpf.c), in place of the program, with the other points,
        // every segment followed; the in and out cuts of a step in the same flow, every step in
        // each round.
        typealias Step = (name: String, inCut: String, outCut: String)
        let tables: [(title: String, inHook: Int, outHook: Int, inProgram: String, outProgram: String, steps: [Step])] = [
            ("the reporting points", 4, 8, InProgram.copied.rawValue, OutProgram.transmitted.rawValue, [
                ("the queue looked up, the packet read, its segments ended (nothing timed)", "parts_copy_walk_only", "parts_xmit_walk"),
                ("(the read: + the reader's identity only; out: the same as the step above)", "parts_copy_identity", "parts_xmit_walk"),
                ("+ the clock and the socket's addresses (the read: and the reader's identity)", "parts_copy_clock", "parts_xmit_clock"),
                ("+ a report per segment reserved and submitted, unwritten", "parts_copy_reserve", "parts_xmit_reserve"),
                ("(instead: a record of one cache line, the ring's header included)", "parts_copy_reserve_line", "parts_xmit_reserve_line"),
                ("the whole program (the report written; bpf_loop)", InProgram.copied.rawValue, OutProgram.transmitted.rawValue),
            ]),
            ("tcp_probe (in) and LOCAL_OUT (out)", 3, 6, InProgram.tcpReceived.rawValue, OutProgram.ipSending.rawValue, [
                ("the queue looked up (a hash, by the connection), its segments taken (nothing timed)", "parts_tcp_walk", "parts_ip_walk"),
                ("+ the clock (out: the whole program)", "parts_tcp_clock", OutProgram.ipSending.rawValue),
                ("+ the socket's storage, created (in; nothing handed on to it)", "parts_tcp_storage", OutProgram.ipSending.rawValue),
                ("the whole program (the segments handed on to the socket's queue)", InProgram.tcpReceived.rawValue, OutProgram.ipSending.rawValue),
            ]),
        ]
        let inPrograms = BPFTestPrograms.BPFObjects.LatencyInParts.Program.allCases.map(\.rawValue)
        let outPrograms = BPFTestPrograms.BPFObjects.LatencyOutParts.Program.allCases.map(\.rawValue)
        var cuts: [String: [Double]] = [:]
        var cutLosses: UInt64 = 0
        for _ in 0..<rounds {
            for (table, which) in tables.enumerated() {
                for (index, step) in which.steps.enumerated() {
                    let inbound = try LatencyParts(image: BPFTestPrograms.BPFObjects.latencyInParts, programs: inPrograms, cut: step.inCut, replacing: which.inProgram,
                                                   netfilter: [(InProgram.ipReceived.rawValue, .preRouting), (InProgram.ipDelivered.rawValue, .localIn)],
                                                   namespace: receiver, inode: inode(receiver))
                    let outbound = try LatencyParts(image: BPFTestPrograms.BPFObjects.latencyOutParts, programs: outPrograms, cut: step.outCut, replacing: which.outProgram,
                                                    netfilter: [(OutProgram.ipSending.rawValue, .localOut)], namespace: sender, inode: inode(sender))
                    _ = flow()
                    cuts["\(table) \(index) in", default: []].append(nanosecondsPerEvent([try inbound.statistics()]))
                    cuts["\(table) \(index) out", default: []].append(nanosecondsPerEvent([try outbound.statistics()]))
                    cutLosses += try inbound.lost() + outbound.lost()
                }
            }
        }
        for (table, which) in tables.enumerated() {
            let (inHook, outHook) = (hooks[which.inHook].hook, hooks[which.outHook].hook)
            print("")
            print("Where a followed segment's time goes at \(which.title) (--sample 1; each cut in place of the program; ns/run above the empty program of this run):")
            print("")
            print("| step | \(inHook) | rounds | \(outHook) | rounds |")
            print("|---|---|---|---|---|")
            let (inFloor, outFloor) = (median(floors[inHook] ?? []), median(floors[outHook] ?? []))
            for (index, step) in which.steps.enumerated() {
                let (inRounds, outRounds) = (cuts["\(table) \(index) in"] ?? [], cuts["\(table) \(index) out"] ?? [])
                print("| \(step.name) | \(format(median(inRounds) - inFloor)) | \(inRounds.map(format).joined(separator: " ")) | \(format(median(outRounds) - outFloor)) | \(outRounds.map(format).joined(separator: " ")) |")
            }
        }
        print("Reports the cuts could not reserve (a full ring buffer would make a cut look cheaper): \(cutLosses).")
        withExtendedLifetime(session) {}
    } catch {
        fail("\(error)")
    }
}

/// One direction's latency programs from a parts object (its program file included whole), loaded
/// as `LatencyEngine` loads them with every segment followed in one namespace, one program
/// (`replacing`: a tracing program, or an IP point's netfilter program) replaced by a cut of it;
/// nothing reads its ring buffer (a round's reports fit).
private struct LatencyParts {
    let object: BPFObject
    let links: [Link]
    let cut: String

    init(image: BPFObjectImage, programs programNames: [String], cut: String, replacing original: String,
         netfilter: [(program: String, hook: NetfilterHook)], namespace: String, inode: UInt32) throws {
        let object = try BPFObject(image: image)
        try object.setReadOnlyGlobal("netns_inum", to: inode)
        let loaded = programNames.filter { $0 == cut || !($0.hasPrefix("parts_") || $0 == original) }
        for program in programNames { try object.program(program).autoload = loaded.contains(program) }
        let points = netfilter.map { (program: $0.program == original ? cut : $0.program, hook: $0.hook) }
        for point in points { try object.program(point.program).makeNetfilterProgram() }
        try object.load()
        var links = try loaded.filter { name in !points.contains { $0.program == name } }.map { try object.program($0).attach() }
        links += try NetworkNamespace.within("/run/netns/\(namespace)") {
            // As the engine: before every other function at the hook, and LOCAL_IN after them all.
            try points.map { try object.program($0.program).attachNetfilter(.ipv4, $0.hook, priority: $0.hook == .localIn ? Int32.max - 1 : Int32.min + 1) }
        }
        (self.object, self.links, self.cut) = (object, links, cut)
    }

    func statistics() throws -> ProgramStatistics { try object.program(cut).statistics() }

    /// Reports not reserved: the ring buffer was full.
    func lost() throws -> UInt64 {
        try PerCPUMap<UInt32, UInt64>(object, name: "counters").lookupSummed(UInt32(NETACCT_LATENCY_LOST.rawValue)) ?? 0
    }
}
