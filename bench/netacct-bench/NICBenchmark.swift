import BPF
import BPFTestPrograms
import Foundation
import Glibc
import NIC
import NetacctKit

/// `netacct-bench nic [frames] [rounds]`: what the nic programs cost per frame on each hook,
/// with the kernel's run-time statistics, under a UDP flood both ways over a veth pair between
/// two network namespaces the benchmark makes; each round runs the flood under empty programs
/// on the same two tracepoints (the floor), then under the nic programs counting one end.
func runNICBenchmark(_ arguments: [String]) {
    let frames = arguments.first.flatMap { Int($0) } ?? 200_000
    let rounds = arguments.dropFirst().first.flatMap { Int($0) } ?? 5
    let (a, b) = ("nacct-bench-a", "nacct-bench-b")
    _ = sh("""
        ip netns del \(a) 2>/dev/null || true; ip netns del \(b) 2>/dev/null || true
        ip netns add \(a); ip netns add \(b)
        ip link add va netns \(a) numtxqueues 2 numrxqueues 2 type veth peer vb netns \(b) numtxqueues 2 numrxqueues 2
        ip -n \(a) addr add 10.198.0.1/24 dev va; ip -n \(b) addr add 10.198.0.2/24 dev vb
        ip -n \(a) link set va up; ip -n \(b) link set vb up
        """)
    defer { _ = sh("ip netns del \(a); ip netns del \(b)") }
    guard let ifindex = UInt32(sh("ip netns exec \(a) cat /sys/class/net/va/ifindex")) else { fail("no ifindex") }
    var info = stat()
    guard stat("/run/netns/\(a)", &info) == 0 else { fail("no /run/netns/\(a)") }
    let namespace = UInt32(truncatingIfNeeded: info.st_ino)
    let va = NetworkInterface(name: "va", ifindex: ifindex, txQueues: 2, rxQueues: 2, isUp: true)

    /// `frames` datagrams each way, from both namespaces at once (each end has a listener).
    func flood() {
        let sender = { (namespace: String, from: String, to: String) in
            """
            ip netns exec \(namespace) python3 -c "
            import socket
            r = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); r.bind(('\(from)', 9999))
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            for _ in range(\(frames / 2)): s.sendto(b'z' * 64, ('\(to)', 9999))" &
            """
        }
        _ = sh(sender(a, "10.198.0.1", "10.198.0.2") + sender(b, "10.198.0.2", "10.198.0.1") + "wait")
    }

    do {
        let session = try StatisticsSession()
        print("netacct-bench nic: \(rounds) rounds of \(frames) frames over a veth pair, kernel \(KernelProbe.kernelRelease), \(ProcessInfo.processInfo.activeProcessorCount) CPUs")
        print("")
        print("| hook | floor (empty program) ns/run | nic ns/run | nic above floor | with helper reads (kernels before 6.2) ns/run | rounds (nic; helper reads) |")
        print("|---|---|---|---|---|---|")
        var floors: [[Double]] = [[], []], costs: [[Double]] = [[], []], helperCosts: [[Double]] = [[], []]
        for _ in 0..<rounds {
            for (index, floor) in try nicFloor(flood).enumerated() { floors[index].append(floor) }

            let engine = try NICEngine(interfaces: [va], namespace: namespace)
            flood()
            let statistics = try engine.programStatistics()
            costs[0].append(nanosecondsPerEvent(statistics[NICEngine.Names.Program.countTx].map { [$0] } ?? []))
            costs[1].append(nanosecondsPerEvent(statistics[NICEngine.Names.Program.countRx].map { [$0] } ?? []))

            let helper = try NICEngine(interfaces: [va], namespace: namespace, typedReads: false)
            flood()
            let helperStatistics = try helper.programStatistics()
            helperCosts[0].append(nanosecondsPerEvent(helperStatistics[NICEngine.Names.Program.countTxRead].map { [$0] } ?? []))
            helperCosts[1].append(nanosecondsPerEvent(helperStatistics[NICEngine.Names.Program.countRxRead].map { [$0] } ?? []))
        }
        for (index, hook) in ["net_dev_start_xmit (TX)", "netif_receive_skb (RX)"].enumerated() {
            let floor = median(floors[index]), cost = median(costs[index])
            let helper = median(helperCosts[index])
            print("| \(hook) | \(format(floor)) | **\(format(cost))** | \(format(cost - floor)) | **\(format(helper))** | \(costs[index].map(format).joined(separator: " ")); \(helperCosts[index].map(format).joined(separator: " ")) |")
        }
        withExtendedLifetime(session) {}
    } catch {
        fail("\(error)")
    }
}

/// The floor of nic's two hooks under `load`: ns per run of empty programs on
/// net_dev_start_xmit and netif_receive_skb (TX, RX).
func nicFloor(_ load: () -> Void) throws -> [Double] {
    let object = try BPFObject(image: BPFObjects.floor)
    try object.load()
    let programs = [try object.program(BPFObjects.Floor.Program.floorXmit), try object.program(BPFObjects.Floor.Program.floorReceive)]
    let links = try programs.map { try $0.attach() }
    load()
    defer { withExtendedLifetime(links) {} }
    return try programs.map { nanosecondsPerEvent([try $0.statistics()]) }
}
