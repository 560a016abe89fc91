import CTestSupport
import DaemonProtocol
import Foundation
import Glibc
import History
import NetacctKit

/// See main.swift: `netacct-bench history <netacct binary> [processes] [active] [seconds] [interval] [rounds]`.
func runHistoryBenchmark(_ arguments: [String]) {
    guard let binary = arguments.first else { fail("usage: netacct-bench history <netacct binary> [processes] [active] [seconds] [interval] [rounds]") }
    func number(_ index: Int, _ otherwise: Int) -> Int { arguments.count > index ? Int(arguments[index]) ?? otherwise : otherwise }
    let (processes, active, seconds, interval, rounds) = (number(1, 10_000), number(2, 500), number(3, 60), number(4, 10), number(5, 2))

    // Recording: the same daemon with and without --history, in alternate rounds, while every
    // interval `active` of the live processes (a different share each time) send a datagram.
    let (receiver, address) = boundLoopbackSocket(SOCK_DGRAM)
    defer { close(receiver) }
    var pids = [pid_t](repeating: 0, count: processes)
    let started = Int(test_spawn_signalled_senders(Int32(processes), address.sin_port.bigEndian, 100, &pids))
    defer {
        for pid in pids.prefix(started) { kill(pid, SIGKILL) }
        for pid in pids.prefix(started) { waitpid(pid, nil, 0) }
    }
    var next = 0
    func stir() {
        for _ in 0..<active {
            kill(pids[next % started], SIGUSR1)
            next += 1
        }
    }
    struct Run { var cpu: Double; var rss: Int; var file: Int64; var intervals: Int }
    var without: [Run] = [], with: [Run] = []
    for round in 0..<(2 * rounds) {
        let recording = round % 2 == 1
        let file = NSTemporaryDirectory() + "netacct-bench-history-\(getpid())-\(round)/history.db"
        let daemon = BenchDaemon(binary: binary, arguments: recording ? ["--history", "--history-file", file, "--history-interval", String(interval)] : [])
        sleep(2)
        let before = cpuTicks(daemon.pid)
        let wall = Date()
        for second in 0..<seconds {
            if second % interval == 0 { stir() }
            sleep(1)
        }
        let cpu = Double(cpuTicks(daemon.pid) - before) / Double(sysconf(Int32(_SC_CLK_TCK))) / Date().timeIntervalSince(wall)
        let rss = daemon.memory.rss
        daemon.stop()
        var size: Int64 = 0, intervals = 0
        if recording {
            var info = stat()
            if stat(file, &info) == 0 { size = Int64(info.st_size) }
            intervals = (try? HistoryStore(path: file, mode: .readOnly).span()?.intervals) ?? 0
            try? FileManager.default.removeItem(atPath: (file as NSString).deletingLastPathComponent)
        }
        (recording ? { with.append($0) } : { without.append($0) })(Run(cpu: cpu, rss: rss, file: size, intervals: intervals))
    }

    // Reading: a synthetic day at full resolution (the same share of processes active each
    // interval), ending now, written with the daemon's own store; then the whole command.
    let directory = NSTemporaryDirectory() + "netacct-bench-history-\(getpid())-day"
    let dayFile = directory + "/history.db"
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let perDay = 86_400 / interval
    let now = HistoryTime.now(), step = Int64(interval) * 1_000_000_000
    let writing = Date()
    do {
        let store = try HistoryStore(path: dayFile, mode: .readWrite)
        var cursor = 0
        for index in 0..<perDay {
            var rows: [HistoryInterval.Process] = []
            for _ in 0..<active {
                let pid = Int32(1000 + cursor % processes)
                cursor += 1
                rows.append(.init(pid: pid, startNs: UInt64(pid) * 1_000_000, comm: "worker-\(pid % 50)", cgroup: UInt64(10 + pid % 40), exited: false,
                                  counters: Counters(udpTxPackets: 1, udpTxBytes: 100 + UInt64(pid % 7), udpRxPackets: 1, udpRxBytes: 100)))
            }
            let start = now - Int64(perDay - index) * step
            try store.append(HistoryInterval(start: start, end: start + step, processes: rows, cgroupPaths: [:]), resolution: Int64(interval))
        }
        _ = try store.database.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    } catch {
        fail("writing the synthetic day failed: \(error)")
    }
    let writeSeconds = Date().timeIntervalSince(writing)
    var info = stat()
    _ = stat(dayFile, &info)
    let daySize = Int64(info.st_size)
    /// The whole command, started with posix_spawn and waited for with waitpid (Foundation's
    /// Process adds tens of milliseconds of its own to a short command).
    func timed(_ command: [String]) -> [Double] {
        (0..<11).map { _ in
            var actions = posix_spawn_file_actions_t()
            posix_spawn_file_actions_init(&actions)
            posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
            defer { posix_spawn_file_actions_destroy(&actions) }
            let argv = ([binary] + command).map { strdup($0) } + [nil]
            defer { for pointer in argv { free(pointer) } }
            let begin = Date()
            var pid: pid_t = 0
            guard posix_spawn(&pid, binary, &actions, nil, argv, environ) == 0 else { fail("cannot run \(binary)") }
            var status: Int32 = 0
            waitpid(pid, &status, 0)
            let elapsed = Date().timeIntervalSince(begin) * 1000
            if status != 0 { fail("netacct \(command.joined(separator: " ")) exited with status \(status)") }
            return elapsed
        }.sorted()
    }
    let since = timed(["history", "--file", dayFile, "--since", "1h"])
    let at = timed(["history", "--file", dayFile, "--at", "@\((now - 1800 * 1_000_000_000) / 1_000_000_000)"])
    let sinceDay = timed(["history", "--file", dayFile, "--since", "1d", "--by", "cgroup"])

    func median(_ runs: [Run], _ value: (Run) -> Double) -> Double { let v = runs.map(value).sorted(); return v[v.count / 2] }
    let cpuWithout = median(without) { $0.cpu } * 100, cpuWith = median(with) { $0.cpu } * 100
    let rssWithout = median(without) { Double($0.rss) }, rssWith = median(with) { Double($0.rss) }
    print("netacct-bench history: \(started) live processes, \(active) active per \(interval) s interval, \(seconds) s per run, \(rounds) rounds each, kernel \(KernelProbe.kernelRelease)")
    print("")
    print("| figure | value | goal |")
    print("|---|---|---|")
    print("| daemon CPU without / with --history (median of \(rounds)) | \(String(format: "%.2f%% / %.2f%%", cpuWithout, cpuWith)) of a core: **\(String(format: "%+.2f", cpuWith - cpuWithout)) points** | <= +0.5 |")
    print("| daemon VmRSS without / with (median) | \(megabytes(Int(rssWithout))) / \(megabytes(Int(rssWith))): **\(String(format: "%+.1f MB", (rssWith - rssWithout) * 1024 / 1_000_000))** | <= +8 MB |")
    print("| the daemon's own file after each run (its first pages are most of it) | \(with.map { "\($0.file / 1024) KiB, \($0.intervals) intervals" }.joined(separator: "; ")) | |")
    print("| a synthetic day at full resolution (\(perDay) intervals of \(active) processes, written in \(String(format: "%.1f s", writeSeconds))) | **\(String(format: "%.1f MB", Double(daySize) / 1_000_000))** | <= 60 MB |")
    print("| netacct history --since 1h, whole command (median of 11) | **\(String(format: "%.1f ms", since[5]))** (\(String(format: "%.1f-%.1f", since[0], since[10]))) | <= 200 ms |")
    print("| netacct history --at (median of 11) | **\(String(format: "%.1f ms", at[5]))** (\(String(format: "%.1f-%.1f", at[0], at[10]))) | <= 50 ms |")
    print("| netacct history --since 1d --by cgroup (median of 11) | \(String(format: "%.1f ms", sinceDay[5])) | |")
}
