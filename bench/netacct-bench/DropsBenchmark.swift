import BPF
import BPFTestPrograms
import CTestSupport
import Drops
import Foundation
import Glibc
import NetacctKit

/// `netacct-bench drops <netacct binary> [datagrams] [rounds]`: what `netacct drops` costs per
/// dropped packet, under a flood of UDP datagrams on loopback to a socket that never reads
/// (each one a SOCKET_RCVBUFF drop): BPF ns per run of the program on skb:kfree_skb beside an
/// empty program on the same hook, in line mode, with the reason filtered out, and in summary
/// mode; then the `netacct drops` command itself under the same flood: its CPU, and in line
/// mode the drops it showed and lost.
func runDropsBenchmark(_ arguments: [String]) {
    guard let binary = arguments.first else { fail("usage: netacct-bench drops <netacct binary> [datagrams] [rounds]") }
    let datagrams = arguments.dropFirst().first.flatMap { Int($0) } ?? 500_000
    let rounds = arguments.dropFirst(2).first.flatMap { Int($0) } ?? 3

    // A receiver that never reads, with the smallest buffer: almost every datagram is a drop.
    let (receiver, address) = boundLoopbackSocket(SOCK_DGRAM)
    var one: Int32 = 1
    setsockopt(receiver, SOL_SOCKET, SO_RCVBUF, &one, socklen_t(MemoryLayout<Int32>.size))
    let sender = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
    var target = address
    _ = withUnsafePointer(to: &target) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(sender, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
    /// Sends the datagrams; returns the rate (datagrams/s).
    @Sendable func flood() -> Double {
        let start = Date()
        for _ in 0..<(datagrams / 16) { _ = test_sendmmsg(sender, 64, 16) }
        return Double(datagrams) / Date().timeIntervalSince(start)
    }

    print("netacct-bench drops: \(rounds) rounds of \(datagrams) datagrams to a socket that never reads, kernel \(KernelProbe.kernelRelease), \(ProcessInfo.processInfo.activeProcessorCount) CPUs")
    print("")
    print("| program on skb:kfree_skb | ns/run (median) | above the empty program | rounds | drops/s |")
    print("|---|---|---|---|---|")
    do {
        let session = try StatisticsSession()
        var floor: [Double] = [], clockFloor: [Double] = [], line: [Double] = [], filtered: [Double] = [], summary: [Double] = []
        var rates: [Double] = [], received = 0, lost: UInt64 = 0
        var sendFloors: [Double] = [], sends: [Double] = []
        for _ in 0..<rounds {
            let object = try BPFObject(image: BPFObjects.floor)
            try object.load()
            let program = try object.program(BPFObjects.Floor.Program.floorKfreeSkb)
            let sendFloor = try object.program(BPFObjects.Floor.Program.floorSend)
            let links = [try program.attach(), try sendFloor.attach()]
            rates.append(flood())
            floor.append(nanosecondsPerEvent([try program.statistics()]))
            sendFloors.append(nanosecondsPerEvent([try sendFloor.statistics()]))
            withExtendedLifetime(links) {}
            do {
                let clock = try object.program(BPFObjects.Floor.Program.floorKfreeSkbClock)
                let link = try clock.attach()
                _ = flood()
                clockFloor.append(nanosecondsPerEvent([try clock.statistics()]))
                withExtendedLifetime(link) {}
            }

            do {
                let engine = try DropsEngine(filter: DropFilter(), summary: false)
                let done = StormResult()
                let thread = Thread { _ = flood(); done.made = 1 }
                thread.start()
                while done.made == 0 { received += try engine.poll(milliseconds: 50).count }
                received += try engine.poll(milliseconds: 0).count
                lost += try engine.lostEvents()
                line.append(nanosecondsPerEvent([try engine.programStatistics()]))
                sends.append(nanosecondsPerEvent(try engine.ownerProgramStatistics()[.ownerSend].map { [$0] } ?? []))
            }
            do {
                var filter = DropFilter()
                filter.reasons = ["NO_SOCKET"]
                let engine = try DropsEngine(filter: filter, summary: false)
                _ = flood()
                filtered.append(nanosecondsPerEvent([try engine.programStatistics()]))
            }
            do {
                let engine = try DropsEngine(filter: DropFilter(), summary: true)
                _ = flood()
                summary.append(nanosecondsPerEvent([try engine.programStatistics()]))
            }
        }
        let base = median(floor)
        for (name, values) in [("empty program (the floor)", floor), ("empty program and one clock read (bpf_ktime_get_ns)", clockFloor),
                               ("netacct drops, a line per drop", line),
                               ("netacct drops --reason NO_SOCKET (this reason filtered out)", filtered),
                               ("netacct drops --summary", summary)] {
            let cost = median(values)
            print("| \(name) | **\(format(cost))** | \(values == floor ? "" : format(cost - base)) | \(values.map(format).joined(separator: " ")) | \(values == floor ? rates.map { String(format: "%.0f", $0) }.joined(separator: " ") : "") |")
        }
        print("| a line per drop above the empty program that reads the clock | **\(format(median(line) - median(clockFloor)))** | | | |")
        print("| sock:sock_send_length, empty program | **\(format(median(sendFloors)))** | | \(sendFloors.map(format).joined(separator: " ")) | |")
        print("| sock:sock_send_length, netacct drops' owner program (a UDP send: owner known, a lookup) | **\(format(median(sends)))** | \(format(median(sends) - median(sendFloors))) | \(sends.map(format).joined(separator: " ")) | |")
        print("")
        print("In-process line mode: \(received) events received, \(lost) lost (counted by the kernel).")
        withExtendedLifetime(session) {}
    } catch {
        fail("\(error)")
    }

    print("")
    print("| netacct drops, \(datagrams) drops | drops/s | shown | lost (its summary) | CPU (% of one core) |")
    print("|---|---|---|---|---|")
    for mode in [["--json"], ["--summary"]] {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = ["drops", "-v"] + mode
        process.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
        let err = Pipe()
        process.standardError = err
        do { try process.run() } catch { fail("\(binary): \(error)") }
        var log = Data()
        while !String(decoding: log, as: UTF8.self).contains("program attached") {
            let chunk = err.fileHandleForReading.availableData
            if chunk.isEmpty { fail("netacct drops ended: \(String(decoding: log, as: UTF8.self).suffix(300))") }
            log.append(chunk)
        }
        let before = cpuTicks(process.processIdentifier)
        let start = Date()
        let rate = flood()
        usleep(300_000)
        let elapsed = Date().timeIntervalSince(start)
        let cpu = Double(cpuTicks(process.processIdentifier) - before) / Double(sysconf(Int32(_SC_CLK_TCK)))
        kill(process.processIdentifier, SIGINT)
        let rest = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        var shown = "-", lostText = "-"
        if let summaryLine = rest.split(separator: "\n").last(where: { $0.hasPrefix("netacct drops:") }) {
            let numbers = summaryLine.split(whereSeparator: { !$0.isNumber }).compactMap { Int($0) }
            shown = numbers.first.map(String.init) ?? "-"
            lostText = numbers.dropFirst().first.map(String.init) ?? "-"
        }
        print("| \(mode[0]) | \(String(format: "%.0f", rate)) | \(shown) | \(lostText) | **\(String(format: "%.2f", cpu / elapsed * 100))%** |")
    }
}
