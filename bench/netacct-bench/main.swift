import BPF
import BPFTestPrograms
import Foundation
import Glibc
import Accounting
import NetacctKit

// netacct-bench events [events-per-round] [rounds] [--peer NETATOP-BPF-CHECKOUT]
//
// Measures what the accounting programs cost per socket event, with the kernel's own
// run-time statistics (BPF_ENABLE_STATS: run_time_ns / run_cnt), under a loopback load
// this process generates (and a private nginx under wrk, when both are installed). Each round
// runs the same load under empty programs on the same tracepoints (the floor), under netacct's
// programs, per-socket counting and the syscall engine, and with --peer under bytedance's
// netatop-bpf built from that checkout beside its own floor (Peer.swift). Medians over rounds.
//
// netacct-bench daemon <netacct binary> [processes] [seconds]
//
// Starts `netacct daemon` on private sockets with that many live processes that have sent
// traffic, then measures the time to answer one atop request, the daemon's CPU while atop
// asks once a second, and its resident memory (DaemonBenchmark.swift).
//
// netacct-bench nic [frames] [rounds]
//
// BPF ns per frame of the nic programs on each hook, beside empty programs on the same hooks,
// under a UDP flood over a veth pair between two namespaces it makes (NICBenchmark.swift).
//
// netacct-bench namespaces <netacct binary> [frames] [rounds] [seconds]
//
// Every network namespace with 50 on the host: nic's per-frame cost counting one namespace and
// counting all, beside empty programs; the CPU of `nic -A`, `drops -A` and `latency in -A`
// quiet and with a namespace made and removed every second (NamespacesBenchmark.swift).

// netacct-bench history <netacct binary> [processes] [active] [seconds] [interval] [rounds]
//
// The daemon with and without --history, in alternate rounds, while a share of thousands of
// live processes send each interval: CPU, memory, the file's growth; then a synthetic day
// at full resolution and the time of `netacct history --since 1h` and `--at` on it
// (HistoryBenchmark.swift).

// netacct-bench wire [datagrams] [megabytes] [rounds]
//
// BPF ns per frame and per call of the wire programs on each hook, beside empty programs on the
// same hooks, under small UDP packets and bulk TCP over a veth pair, and the packet rate with and
// without (WireBenchmark.swift).
//
// netacct-bench tcp [exchanges] [megabytes] [connections] [rounds]
//
// BPF ns per event of the TCP health programs on each hook, beside empty programs on the same
// hooks, under a ping-pong, bulk TCP, lossy bulk TCP and a connection churn over a veth pair,
// and the ping-pong's and the transfer's rate with and without (TCPHealthBenchmark.swift).
//
// netacct-bench hostile <netacct binary> [processes] [exits]
//
// The daemon's memory while clients misbehave and while processes exit with no client
// connected (HostileBenchmark.swift).

// netacct-bench connections <netacct binary> [seconds] [rate] [rounds]
//
// BPF ns per TCP state change and per accept of `netacct connections -a`, beside empty programs
// on the same hooks, under a loopback connection storm; then the command's own CPU and lost
// events with the storm paced at `rate` connections/s (ConnectionsBenchmark.swift).

// netacct-bench drops <netacct binary> [datagrams] [rounds]
//
// BPF ns per dropped packet of `netacct drops` (line mode, a reason filtered out, --summary)
// beside an empty program on skb:kfree_skb, under a UDP flood to a socket that never reads;
// then the command's CPU and, in line mode, its lost events (DropsBenchmark.swift).

// netacct-bench latency [megabytes] [rounds]
//
// BPF ns per packet on each hook of `netacct latency in` and `out`, beside empty programs on the
// same hooks, under a bulk TCP flow over a veth pair between two namespaces, with every segment
// followed (reported; counted with --hist; reported through a 256 KiB ring) and with 1 in 100;
// then the two reporting programs cut after each step (bpf/tests/latency_*_parts.bpf.c)
// (LatencyBenchmark.swift).

// netacct-bench accounting-parts [events] [rounds]
//
// Where a counted call's time goes: the accounting programs cut after each step, and variants,
// beside the empty programs, under the ping-pong, UDP and nginx under wrk
// (AccountingPartsBenchmark.swift).

// netacct-bench metrics <netacct binary> [processes] [seconds] [scrape-interval]
//
// `netacct daemon --listen` with that many live processes: the time of one /metrics scrape, an
// atop request beside it, the daemon's CPU at one scrape per 15 s and one atop request per
// second, and its memory with HTTP on (MetricsBenchmark.swift).

let arguments = CommandLine.arguments
/// The benchmarks with a file of their own, by name; `events` (or none) is this file's.
let benchmarks: [String: ([String]) -> Void] = [
    "latency": runLatencyBenchmark, "drops": runDropsBenchmark, "connections": runConnectionsBenchmark,
    "ingest": runIngestBenchmark, "nic": runNICBenchmark, "hostile": runHostileBenchmark, "daemon": runDaemonBenchmark,
    "metrics": runMetricsBenchmark, "wire": runWireBenchmark, "tcp": runTCPHealthBenchmark,
    "namespaces": runNamespacesBenchmark, "history": runHistoryBenchmark, "accounting-parts": runAccountingPartsBenchmark,
]
if arguments.count > 1, let benchmark = benchmarks[arguments[1]] {
    benchmark(Array(arguments.dropFirst(2)))
    exit(0)
}
/// `--peer DIR`: a checkout of bytedance/netatop-bpf, measured beside netacct in the same rounds.
let peerFolder = arguments.firstIndex(of: "--peer").map { at -> String in
    guard at + 1 < arguments.count else { fail("--peer needs a folder (a checkout of bytedance/netatop-bpf)") }
    return arguments[at + 1]
}
let numbers = arguments.dropFirst(arguments.count > 1 && arguments[1] == "events" ? 2 : 1).prefix { !$0.hasPrefix("--") }
let eventsPerRound = numbers.first.flatMap { Int($0) } ?? 400_000
let rounds = numbers.dropFirst().first.flatMap { Int($0) } ?? 7

/// Runs a shell script (`sh -e`); its standard output, trimmed. A failure ends the benchmark.
@discardableResult
func sh(_ script: String) -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/bin/sh")
    process.arguments = ["-ec", script]
    let out = Pipe()
    process.standardOutput = out
    do { try process.run() } catch { fail("sh: \(error)") }
    let data = out.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else { fail("sh failed: \(script.prefix(80))…") }
    return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
}

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("netacct-bench: \(message)\n".utf8))
    exit(1)
}

/// A socket bound to an ephemeral port on 127.0.0.1, and that address.
func boundLoopbackSocket(_ type: __socket_type) -> (Int32, sockaddr_in) {
    let fd = socket(AF_INET, Int32(type.rawValue), 0)
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            _ = bind(fd, $0, length)
            _ = getsockname(fd, $0, &length)
        }
    }
    return (fd, address)
}

func connectLoopback(_ fd: Int32, to address: sockaddr_in) {
    var address = address
    withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { _ = connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
}

/// A loopback UDP pair on one thread: each iteration is one send and one receive event.
func udpLoad(events: Int) {
    let (receiver, address) = boundLoopbackSocket(SOCK_DGRAM)
    let sender = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
    defer { close(receiver); close(sender) }
    connectLoopback(sender, to: address)
    var buffer = [UInt8](repeating: 7, count: 256)
    for _ in 0..<(events / 2) {
        _ = send(sender, &buffer, 100, 0)
        _ = recv(receiver, &buffer, 256, 0)
    }
}

/// A loopback TCP connection used by one thread: each iteration sends 100 bytes on one end and
/// receives them on the other (no wake-up of another thread between the events).
func tcpOneThreadLoad(events: Int) {
    let (listener, address) = boundLoopbackSocket(SOCK_STREAM)
    listen(listener, 1)
    let client = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    connectLoopback(client, to: address)
    let server = accept(listener, nil, nil)
    defer { close(client); close(server); close(listener) }
    var buffer = [UInt8](repeating: 7, count: 256)
    for _ in 0..<(events / 2) {
        _ = send(client, &buffer, 100, 0)
        _ = recv(server, &buffer, 100, Int32(MSG_WAITALL))
    }
}

/// A loopback TCP request/response exchange between two threads (64-byte messages).
func tcpLoad(events: Int) {
    let (listener, address) = boundLoopbackSocket(SOCK_STREAM)
    listen(listener, 1)
    let exchanges = events / 4
    let server = Thread {
        let connection = accept(listener, nil, nil)
        var buffer = [UInt8](repeating: 0, count: 64)
        for _ in 0..<exchanges {
            _ = recv(connection, &buffer, 64, Int32(MSG_WAITALL))
            _ = send(connection, &buffer, 64, 0)
        }
        close(connection)
    }
    server.start()
    let client = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    connectLoopback(client, to: address)
    var buffer = [UInt8](repeating: 1, count: 64)
    for _ in 0..<exchanges {
        _ = send(client, &buffer, 64, 0)
        _ = recv(client, &buffer, 64, Int32(MSG_WAITALL))
    }
    close(client)
    close(listener)
    usleep(20_000)
}

func nanosecondsPerEvent(_ statistics: [ProgramStatistics]) -> Double {
    let time = statistics.reduce(0) { $0 + $1.runTimeNanoseconds }
    let runs = statistics.reduce(0) { $0 + $1.runCount }
    return runs == 0 ? .nan : Double(time) / Double(runs)
}

/// Loads `object` (its other programs' autoload already set), attaches its programs `names`, runs
/// `load` with `events` events and returns what those programs cost per run together.
func cost(of object: BPFObject, programs names: [String], under load: (Int) -> Void, events: Int = eventsPerRound) throws -> Double {
    try object.load()
    let programs = try names.map { try object.program($0) }
    let links = try programs.map { try $0.attach() }
    load(events)
    let cost = nanosecondsPerEvent(try programs.map { try $0.statistics() })
    withExtendedLifetime(links) {}
    return cost
}

/// Empty programs on the hooks of one engine: the sock tracepoints, or the syscall exits the loads make.
func floorCost(_ load: (Int) -> Void, kind: AccountingEngine.Kind = .sock) throws -> Double {
    let names = kind == .sock ? ["floor_send", "floor_recv"] : ["floor_sendto", "floor_recvfrom"]
    return try cost(of: BPFObject(image: BPFObjects.floor), programs: names, under: load)
}

/// netacct's traffic-path programs under `load`: plain accounting, or counting per socket too
/// (`top --connections`).
func netacctCost(_ load: (Int) -> Void, perSocket: Bool = false, kind: AccountingEngine.Kind = .sock) throws -> (Double, exit: ProgramStatistics?) {
    let engine = try AccountingEngine(options: .init(perSocket: perSocket, kind: kind))
    load(eventsPerRound)
    let statistics = try engine.programStatistics()
    _ = try engine.snapshot()
    return (nanosecondsPerEvent(engine.trafficPrograms.compactMap { statistics[$0] }), statistics[.recordExit])
}

func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    return sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
}

func format(_ value: Double) -> String { String(format: "%.1f", value) }

do {
    let session = try StatisticsSession()
    try KernelProbe.requireTracefs()  // the classic tracepoints (syscall floor, netatop-bpf) attach through it
    let peer = peerFolder.map { NetatopPeer(checkout: $0) }
    let nginx = PrivateNginx()
    defer { nginx?.stop() }
    print("netacct-bench: \(rounds) rounds of \(eventsPerRound) socket events per load, kernel \(KernelProbe.kernelRelease), \(ProcessInfo.processInfo.activeProcessorCount) CPUs")
    if nginx == nil { print("(the HTTP load is left out: it needs nginx and wrk)") }
    print("")
    print("| load | floor (empty programs) ns/event | netacct ns/event | netacct above floor | with per-socket counting ns/event | per-socket counting adds | rounds (netacct; per-socket) |")
    print("|---|---|---|---|---|---|---|")
    var engines: [String] = [], peers: [String] = []
    var loads: [(String, (Int) -> Void)] = [("UDP send+recv, 1 thread", udpLoad), ("TCP send+recv, 1 thread", tcpOneThreadLoad),
                                           ("TCP ping-pong, 2 threads", tcpLoad)]
    if let nginx { loads.append(("HTTP, nginx under wrk (50-byte page)", nginx.load)) }
    for (name, load) in loads {
        /// The syscall engine's floor attaches the calls the benchmark's own loads make; nginx makes others.
        let syscalls = name.hasPrefix("HTTP") == false
        var floors: [Double] = [], costs: [Double] = [], perSocket: [Double] = []
        var syscallFloors: [Double] = [], syscallCosts: [Double] = []
        var peerFloors: [Double] = [], peerCosts: [Double] = []
        for _ in 0..<rounds {
            floors.append(try floorCost(load))
            costs.append(try netacctCost(load).0)
            perSocket.append(try netacctCost(load, perSocket: true).0)
            if syscalls {
                syscallFloors.append(try floorCost(load, kind: .syscalls))
                syscallCosts.append(try netacctCost(load, kind: .syscalls).0)
            }
            if let peer {
                peerFloors.append(try NetatopPeer.floorCostPerEvent(under: load))
                peerCosts.append(try peer.costPerEvent(under: load))
            }
        }
        let floor = median(floors), cost = median(costs), socketCost = median(perSocket)
        print("| \(name) | \(format(floor)) | **\(format(cost))** | \(format(cost - floor)) | **\(format(socketCost))** | \(format(socketCost - cost)) | \(costs.map(format).joined(separator: " ")); \(perSocket.map(format).joined(separator: " ")) |")
        if syscalls {
            let syscallFloor = median(syscallFloors), syscallCost = median(syscallCosts)
            engines.append("| \(name) | \(format(floor)) | **\(format(cost))** | \(format(syscallFloor)) | **\(format(syscallCost))** | **\(String(format: "%.2f", syscallCost / cost))x** | \(syscallCosts.map(format).joined(separator: " ")) |")
        }
        if peer != nil {
            let peerFloor = median(peerFloors), peerCost = median(peerCosts)
            peers.append("| \(name) | \(format(floor)) | **\(format(cost))** | \(format(cost - floor)) | \(format(peerFloor)) | **\(format(peerCost))** | \(format(peerCost - peerFloor)) | **\(String(format: "%.2f", (cost - floor) / (peerCost - peerFloor)))x** | \(peerFloors.map(format).joined(separator: " ")); \(peerCosts.map(format).joined(separator: " ")) |")
        }
    }
    print("")
    print("The syscall engine (older kernels) beside the sock engine, per call, in the same run:")
    print("")
    print("| load | floor, sock tracepoints | sock engine ns/call | floor, syscall exits | syscall engine ns/call | syscall / sock | rounds (syscall engine) |")
    print("|---|---|---|---|---|---|---|")
    for line in engines { print(line) }
    if let peer, let peerFolder {
        print("")
        print("netacct beside netatop-bpf (\(peerFolder), \(peer.revision)) in the same rounds; netatop-bpf's floor is empty classic tracepoint programs, the kind it attaches:")
        print("")
        print("| load | floor, tp_btf | netacct | netacct above | floor, classic tracepoints | netatop-bpf | netatop-bpf above | netacct's excess / netatop-bpf's | rounds (floor; netatop-bpf) |")
        print("|---|---|---|---|---|---|---|---|---|")
        for line in peers { print(line) }
    }
    withExtendedLifetime(session) {}
} catch {
    fail("\(error)")
}
