import CTestSupport
import Foundation
import Glibc
import Accounting
import NetacctKit
import NetacctServers
import ProtocolClients

/// See main.swift: `netacct-bench daemon <netacct binary> [processes] [seconds]`.
func runDaemonBenchmark(_ arguments: [String]) {
    guard let binary = arguments.first else { fail("usage: netacct-bench daemon <netacct binary> [processes] [seconds]") }
    let processes = arguments.count > 1 ? Int(arguments[1]) ?? 10_000 : 10_000
    let seconds = arguments.count > 2 ? Int(arguments[2]) ?? 60 : 60

    // A UDP port for the children's one datagram each.
    let (receiver, address) = boundLoopbackSocket(SOCK_DGRAM)
    defer { close(receiver) }
    let port = address.sin_port.bigEndian

    let daemon = BenchDaemon(binary: binary)
    defer { daemon.stop() }
    guard let client = try? NetatopClient(path: daemon.socketPath) else { fail("cannot connect to the daemon") }

    var pids = [pid_t](repeating: 0, count: processes)
    let started = Int(test_spawn_senders(Int32(processes), port, 100, &pids))
    defer {
        for pid in pids.prefix(started) { kill(pid, SIGKILL) }
        for pid in pids.prefix(started) { waitpid(pid, nil, 0) }
    }
    sleep(2)
    do {
        let known = try client.sample().count
        print("netacct-bench daemon: \(started) live processes started, \(known) in the daemon's reply, kernel \(KernelProbe.kernelRelease)")
        var latencies: [Double] = [], atopLatencies: [Double] = []
        for _ in 0..<30 {
            var start = Date()
            client.request()
            _ = try client.replyInBulk()
            latencies.append(Date().timeIntervalSince(start) * 1000)
            start = Date()
            _ = try client.sample()
            atopLatencies.append(Date().timeIntervalSince(start) * 1000)
        }
        atopLatencies.sort()
        let before = cpuTicks(daemon.pid)
        let wall = Date()
        for _ in 0..<seconds {
            sleep(1)
            _ = try client.sample()
        }
        let cpuSeconds = Double(cpuTicks(daemon.pid) - before) / Double(sysconf(Int32(_SC_CLK_TCK)))
        let elapsed = Date().timeIntervalSince(wall)
        let memory = memoryKiB(daemon.pid)
        let anonymous = anonymousKiB(daemon.pid)
        latencies.sort()
        print("")
        print("| figure | value | goal |")
        print("|---|---|---|")
        print("| time to answer one atop request, read in bulk (median of 30) | \(String(format: "%.2f", latencies[15])) ms (min \(String(format: "%.2f", latencies[0])), max \(String(format: "%.2f", latencies[29]))) | <= 5 ms |")
        print("| the same, read 96 bytes per recv as atop does (median of 30) | \(String(format: "%.2f", atopLatencies[15])) ms (min \(String(format: "%.2f", atopLatencies[0])), max \(String(format: "%.2f", atopLatencies[29]))) | |")
        print("| daemon CPU, one request per second for \(seconds) s | \(String(format: "%.2f", cpuSeconds / elapsed * 100))% of one core | <= 0.5% |")
        print("| daemon resident memory between requests (VmRSS) | \(memory.rss) KiB = \(megabytes(memory.rss)) | <= 20 MB |")
        print("| its peak since start (VmHWM: loading, kernel BTF) | \(memory.peak) KiB = \(megabytes(memory.peak)) | |")
        print("| of which heap and stacks (RssAnon) / code and data (rest) | \(anonymous) KiB / \(memory.rss - anonymous) KiB | |")
    } catch {
        fail("\(error)")
    }
}

/// utime + stime of a process, in clock ticks.
func cpuTicks(_ pid: Int32) -> Int {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
          let close = stat.lastIndex(of: ")") else { return 0 }
    let fields = stat[stat.index(after: close)...].split(separator: " ")
    // After "pid (comm)": state is field 3, utime 14, stime 15 (1-based in proc(5)).
    return (Int(fields[11]) ?? 0) + (Int(fields[12]) ?? 0)
}

func memoryKiB(_ pid: Int32) -> (rss: Int, peak: Int) {
    guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return (0, 0) }
    func field(_ name: String) -> Int {
        status.split(separator: "\n").first { $0.hasPrefix(name) }
            .flatMap { Int($0.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") } ?? 0
    }
    return (field("VmRSS:"), field("VmHWM:"))
}

func anonymousKiB(_ pid: Int32) -> Int {
    guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return 0 }
    return status.split(separator: "\n").first { $0.hasPrefix("RssAnon:") }
        .flatMap { Int($0.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") } ?? 0
}
