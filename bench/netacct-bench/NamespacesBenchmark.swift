import BPF
import BPFTestPrograms
import Foundation
import Glibc
import NIC
import NetacctKit

/// `netacct-bench namespaces <netacct binary> [frames] [rounds] [seconds]`: what covering every
/// network namespace costs, with 50 namespaces on the host.
///
/// 1. In the kernel, per frame: nic's programs counting one namespace's interface (a read-only
///    ifindex scan, a per-CPU array) beside nic counting every device of every namespace (a
///    slot per device queue, found through each CPU's cache), and empty programs on the same
///    two tracepoints, under a UDP flood one way over a veth pair (every frame counted by
///    each); the 50 other namespaces have each counted frames on their loopback first, so
///    their slots are taken.
/// 2. In user space: the CPU time of `netacct nic -A 1`, `netacct drops -A` and `netacct latency
///    in -A` (each following namespaces every second: /proc and /run/netns read, new ones named,
///    latency's netfilter links made in each) over `seconds`, with the 50 namespaces quiet, then
///    with one namespace made and the oldest removed every second.
func runNamespacesBenchmark(_ arguments: [String]) {
    guard let binary = arguments.first else { fail("usage: netacct-bench namespaces <netacct binary> [frames] [rounds] [seconds]") }
    let frames = arguments.dropFirst().first.flatMap { Int($0) } ?? 200_000
    let rounds = arguments.dropFirst(2).first.flatMap { Int($0) } ?? 5
    let seconds = arguments.dropFirst(3).first.flatMap { Double($0) } ?? 60
    let (a, b) = ("nacct-nsb-a", "nacct-nsb-b")
    let prefix = "nacct-nsb-idle"
    var idle = (0..<50).map { "\(prefix)\($0)" }
    _ = sh("""
        for ns in $(ip netns list | awk '{print $1}' | grep '^nacct-nsb-'); do ip netns del $ns; done
        ip netns add \(a); ip netns add \(b)
        ip link add va netns \(a) numtxqueues 2 numrxqueues 2 type veth peer vb netns \(b) numtxqueues 2 numrxqueues 2
        ip -n \(a) addr add 10.197.0.1/24 dev va; ip -n \(b) addr add 10.197.0.2/24 dev vb
        ip -n \(a) link set va up; ip -n \(b) link set vb up
        for ns in \(idle.joined(separator: " ")); do ip netns add $ns; ip -n $ns link set lo up; done
        """)
    defer { _ = sh("for ns in $(ip netns list | awk '{print $1}' | grep '^nacct-nsb-'); do ip netns del $ns; done") }
    guard let ifindex = UInt32(sh("ip netns exec \(a) cat /sys/class/net/va/ifindex")) else { fail("no ifindex") }
    var info = stat()
    guard stat("/run/netns/\(a)", &info) == 0 else { fail("no /run/netns/\(a)") }
    let namespace = UInt32(truncatingIfNeeded: info.st_ino)
    guard stat("/run/netns/\(b)", &info) == 0, let ifindexB = UInt32(sh("ip netns exec \(b) cat /sys/class/net/vb/ifindex")) else { fail("no /run/netns/\(b)") }
    let namespaceB = UInt32(truncatingIfNeeded: info.st_ino)
    let va = NetworkInterface(name: "va", ifindex: ifindex, txQueues: 2, rxQueues: 2, isUp: true)
    let vb = NetworkInterface(name: "vb", ifindex: ifindexB, txQueues: 2, rxQueues: 2, isUp: true)

    /// `frames` datagrams from a to b: every TX frame is va's, every RX frame vb's, so that a
    /// one-namespace engine counts every frame of one hook (a's: TX; b's: RX) as -A does, rather
    /// than leaving the other side's frames at its first compare.
    func flood() {
        _ = sh("""
            ip netns exec \(b) python3 -c "import socket, time; r = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); r.bind(('10.197.0.2', 9999)); time.sleep(600)" & listener=$!
            ip netns exec \(a) python3 -c "
            import socket
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            for _ in range(\(frames)): s.sendto(b'z' * 64, ('10.197.0.2', 9999))"
            kill $listener
            """)
    }
    /// A few frames on each idle namespace's loopback: their entries in every-namespace mode.
    func touchIdle() {
        _ = sh("for ns in \(idle.joined(separator: " ")); do ip netns exec $ns python3 -c \"import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); [s.sendto(b'i', ('127.0.0.1', 9)) for _ in range(3)]\"; done")
    }

    do {
        let session = try StatisticsSession()
        print("netacct-bench namespaces: \(rounds) rounds of \(frames) frames over a veth pair with \(idle.count) other namespaces, kernel \(KernelProbe.kernelRelease), \(ProcessInfo.processInfo.activeProcessorCount) CPUs")
        print("")
        print("| hook | floor (empty program) ns/run | nic, one namespace ns/run | above floor | nic -A, every namespace ns/run | above floor | rounds (one; every) |")
        print("|---|---|---|---|---|---|---|")
        var floors: [[Double]] = [[], []], one: [[Double]] = [[], []], every: [[Double]] = [[], []]
        for _ in 0..<rounds {
            for (index, floor) in try nicFloor(flood).enumerated() { floors[index].append(floor) }

            // One namespace: a's for TX (va's), b's for RX (vb's); then every namespace, both.
            let runs: [(engine: NICEngine, hooks: [Int])] = [
                (try NICEngine(interfaces: [va], namespace: namespace), [0]), (try NICEngine(interfaces: [vb], namespace: namespaceB), [1]),
                (try NICEngine(interfaces: [], namespace: 0), [0, 1]),
            ]
            for (round, run) in runs.enumerated() {
                if round == 2 { touchIdle() }
                let before = try run.engine.programStatistics()
                flood()
                let after = try run.engine.programStatistics()
                for (index, program) in [NICEngine.Names.Program.countTx, .countRx].enumerated() where run.hooks.contains(index) {
                    guard let start = before[program], let end = after[program] else { continue }
                    let cost = Double(end.runTimeNanoseconds - start.runTimeNanoseconds) / Double(max(1, end.runCount - start.runCount))
                    if round < 2 { one[index].append(cost) } else { every[index].append(cost) }
                }
                if round == 2, try run.engine.readDevices().count < idle.count { fail("the idle namespaces' loopbacks were not counted") }
            }
        }
        for (index, hook) in ["net_dev_start_xmit (TX)", "netif_receive_skb (RX)"].enumerated() {
            let floor = median(floors[index]), single = median(one[index]), all = median(every[index])
            print("| \(hook) | \(format(floor)) | **\(format(single))** | \(format(single - floor)) | **\(format(all))** | \(format(all - floor)) | \(one[index].map(format).joined(separator: " ")); \(every[index].map(format).joined(separator: " ")) |")
        }
        withExtendedLifetime(session) {}
    } catch {
        fail("\(error)")
    }

    // User space: each tool's CPU over `seconds`, quiet, then with a namespace made and one
    // removed every second (0: not measured).
    guard seconds > 0 else { return }
    let tools: [(name: String, arguments: [String])] = [("nic -A 1", ["nic", "-A", "1"]), ("drops -A", ["drops", "-A"]),
                                                        ("latency in -A", ["latency", "in", "-A"])]
    print("")
    print("| tool (\(idle.count + 2) namespaces) | CPU, quiet (% of a core) | CPU, one namespace made and one removed per second | the following's cost |")
    print("|---|---|---|---|")
    var made = 0
    for tool in tools {
        var results: [Double] = []
        for churn in [false, true] {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: binary)
            process.arguments = tool.arguments
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            do { try process.run() } catch { fail("\(binary): \(error)") }
            usleep(2_000_000) // loaded and settled
            let start = cpuSeconds(process.processIdentifier), began = Date()
            while Date().timeIntervalSince(began) < seconds {
                let tick = Date()
                if churn {
                    let name = "\(prefix)-new\(made)"
                    made += 1
                    _ = sh("ip netns add \(name); ip -n \(name) link set lo up; ip netns del \(idle.removeFirst())")
                    idle.append(name)
                }
                let rest = 1 - Date().timeIntervalSince(tick)
                if rest > 0 { usleep(UInt32(rest * 1e6)) }
            }
            let used = cpuSeconds(process.processIdentifier) - start
            let elapsed = Date().timeIntervalSince(began)
            kill(process.processIdentifier, SIGINT)
            process.waitUntilExit()
            if process.terminationStatus != 0 { fail("\(tool.name) exited \(process.terminationStatus)") }
            results.append(used / elapsed * 100)
        }
        print("| `netacct \(tool.name)` | \(String(format: "%.2f", results[0])) | \(String(format: "%.2f", results[1])) | **\(String(format: "%.2f", results[1] - results[0]))** |")
    }
}

/// A process's user and system CPU time so far, in seconds (/proc/PID/stat, clock ticks).
func cpuSeconds(_ pid: Int32) -> Double {
    guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
          let end = text.lastIndex(of: ")") else { return .nan }
    let fields = text[text.index(after: end)...].split(separator: " ")
    // After the command: state is field 3, utime 14 and stime 15 (1-based, whole line).
    guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return .nan }
    return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
}
