import BPF
import BPFTestPrograms
import CTestSupport
import Connections
import Foundation
import Glibc
import NetacctKit

/// `netacct-bench connections <netacct binary> [seconds] [rate] [rounds]`: what `netacct
/// connections -a` costs under a storm of loopback TCP connections (connect, accept, close
/// both ends), in two parts:
/// - BPF ns per run of each program, with the kernel's run-time statistics, beside empty
///   programs on the same two hooks in the same round; the storm runs as fast as it goes.
/// - The user-space side: `netacct connections -a` (JSON, then the table) writing to
///   /dev/null while the storm is paced at `rate` connections per second: its CPU, the events
///   it showed and the events the kernel lost (from its summary).
func runConnectionsBenchmark(_ arguments: [String]) {
    guard let binary = arguments.first else { fail("usage: netacct-bench connections <netacct binary> [seconds] [rate] [rounds]") }
    let seconds = arguments.dropFirst().first.flatMap { Double($0) } ?? 5
    let rate = arguments.dropFirst(2).first.flatMap { Double($0) } ?? 10_000
    let rounds = arguments.dropFirst(3).first.flatMap { Int($0) } ?? 3
    let threads = 2
    do {
        let session = try StatisticsSession()
        print("netacct-bench connections: kernel \(KernelProbe.kernelRelease), \(ProcessInfo.processInfo.activeProcessorCount) CPUs, \(threads) storm threads")
        print("")
        print("| hook | floor (empty program) ns/run | netacct ns/run | above floor | rounds (netacct) |")
        print("|---|---|---|---|---|")
        var floors: [[Double]] = [[], []], costs: [[Double]] = [[], []], rates: [Double] = []
        var connectCosts: [[Double]] = [[], []]
        var received = 0, lost: UInt64 = 0, made = 0
        for _ in 0..<rounds {
            let floor = try BPFObject(image: BPFObjects.floor)
            try floor.load()
            let programs = [try floor.program(BPFObjects.Floor.Program.floorStateChange), try floor.program(BPFObjects.Floor.Program.floorAccept4)]
            let links = try programs.map { try $0.attach() }
            _ = test_connection_storm(Int32(threads), seconds, 0)
            for (index, program) in programs.enumerated() { floors[index].append(nanosecondsPerEvent([try program.statistics()])) }
            withExtendedLifetime(links) {}

            var filter = ConnectionFilter()
            filter.failed = true
            filter.closes = true
            let engine = try ConnectionsEngine(filter: filter)
            // The storm on its own threads; this one drains the ring buffer meanwhile.
            let result = StormResult()
            let storm = Thread { result.made = test_connection_storm(Int32(threads), seconds, 0) }
            var done = false
            let start = Date()
            storm.start()
            while !done {
                received += try engine.poll(milliseconds: 50).count
                done = Date().timeIntervalSince(start) > seconds + 0.5 && storm.isFinished
            }
            received += try engine.drain().count
            made = result.made
            rates.append(Double(made) / seconds)
            lost += try engine.lostEvents()
            let statistics = try engine.programStatistics()
            costs[0].append(nanosecondsPerEvent(statistics[.stateChange].map { [$0] } ?? []))
            costs[1].append(nanosecondsPerEvent(statistics[.accept4Exit].map { [$0] } ?? []))
            connectCosts[0].append(nanosecondsPerEvent(statistics[.connectEnter].map { [$0] } ?? []))
            connectCosts[1].append(nanosecondsPerEvent(statistics[.connectExit].map { [$0] } ?? []))
        }
        for (index, hook) in ["sock:inet_sock_set_state (every TCP state change)", "syscalls:sys_exit_accept4"].enumerated() {
            let floor = median(floors[index]), cost = median(costs[index])
            print("| \(hook) | \(format(floor)) | **\(format(cost))** | \(format(cost - floor)) | \(costs[index].map(format).joined(separator: " ")) |")
        }
        for (index, hook) in ["syscalls:sys_enter_connect (with --failed)", "syscalls:sys_exit_connect (with --failed)"].enumerated() {
            print("| \(hook) | | **\(format(median(connectCosts[index])))** | | \(connectCosts[index].map(format).joined(separator: " ")) |")
        }
        print("")
        print("Storm as fast as it goes: \(rates.map { String(format: "%.0f", $0) }.joined(separator: ", ")) connections/s per round; \(received) events received in-process, \(lost) lost.")
        withExtendedLifetime(session) {}
    } catch {
        fail("\(error)")
    }

    print("")
    print("| netacct connections -a, storm paced at \(Int(rate))/s for \(Int(seconds)) s | connections/s made | events shown | events/s | lost | CPU (% of one core) |")
    print("|---|---|---|---|---|---|")
    for mode in [["--json"], []] {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = ["connections", "-a", "-v"] + mode
        process.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
        let err = Pipe()
        process.standardError = err
        do { try process.run() } catch { fail("\(binary): \(error)") }
        var log = Data()
        while !String(decoding: log, as: UTF8.self).contains("programs attached") {
            let chunk = err.fileHandleForReading.availableData
            if chunk.isEmpty { fail("netacct connections ended: \(String(decoding: log, as: UTF8.self).suffix(300))") }
            log.append(chunk)
        }
        let before = cpuTicks(process.processIdentifier)
        let start = Date()
        let made = test_connection_storm(Int32(threads), seconds, rate)
        let elapsed = Date().timeIntervalSince(start)
        usleep(300_000)
        let cpu = Double(cpuTicks(process.processIdentifier) - before) / Double(sysconf(Int32(_SC_CLK_TCK)))
        kill(process.processIdentifier, SIGINT)
        let rest = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        // "netacct connections: N events shown, L lost"
        guard let summary = rest.split(separator: "\n").last(where: { $0.hasPrefix("netacct connections:") }) else { fail("no summary: \(rest.suffix(300))") }
        let numbers = summary.split(whereSeparator: { !$0.isNumber }).compactMap { Int($0) }
        let shown = numbers.first ?? 0, lostEvents = numbers.dropFirst().first ?? 0
        print("| \(mode.isEmpty ? "table" : "JSON") | \(String(format: "%.0f", Double(made) / elapsed)) | \(shown) | \(String(format: "%.0f", Double(shown) / elapsed)) | \(lostEvents) | **\(String(format: "%.2f", cpu / elapsed * 100))%** |")
    }
}

/// What the storm's thread hands back, read only once that thread has finished.
final class StormResult: @unchecked Sendable {
    var made = 0
}
