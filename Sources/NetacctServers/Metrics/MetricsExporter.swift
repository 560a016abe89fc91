import Accounting
import DaemonProtocol
import FoundationEssentials
import Glibc
import NetacctKit

/// `/metrics`: the daemon's counters as Prometheus series, bounded whatever the number of
/// processes: per process group (command name; with `pids`, command name and PID) and per
/// cgroup, the `top` busiest of each with one `other` series for the rest (BoundedSeries), per
/// protocol and direction, bytes and calls; the machine's totals; what was lost; the daemon's
/// own CPU and memory (`process_*`); BPF run time when `kernel.bpf_stats_enabled` is 1; and the
/// time the scrape took. An API client of the accounting service of its own receives every
/// exit once, each maintenance interval, so an exited process's traffic stays in its group.
/// Used on the daemon's event loop only.
final class MetricsExporter {
    struct Options: Sendable {
        /// Series of their own per kind (process groups, cgroups), the rest in `other`.
        var top = 50
        /// Process groups by command name and PID instead of command name.
        var pids = false
        init(top: Int = 50, pids: Bool = false) {
            self.top = top
            self.pids = pids
        }
    }

    typealias GroupKey = GroupedSeries<Traffic>.Group

    let options: Options
    private let service: AccountingService
    private let engine: AccountingEngine
    private let client: AccountingService.ClientID
    /// Cgroups by path (`#id` once gone): a unit restarted in a new cgroup of the same path goes
    /// on in the same series, and no two series share their labels.
    private var series: GroupedSeries<Traffic>
    /// Each live process's group and cgroup, fixed when it is first seen: a process that
    /// renames itself (prctl, setproctitle) keeps its traffic in one place.
    private var assigned: [ProcessID: (group: GroupKey, cgroup: String)] = [:]
    private var cgroupNames = CgroupNames()
    /// Per cgroup (by path, as `cgroups`), the traffic of its processes that have exited, for
    /// `/api/v1/cgroups`: cumulative like a systemd unit's IP accounting, for as long as the
    /// cgroup exists and the service's retention time after it is gone.
    private var exitedByCgroup: [String: (total: Traffic, goneSince: Double?)] = [:]
    private var lastCgroupCheck = 0.0
    private let startTime: Double
    private(set) var scrapes: UInt64 = 0

    init(service: AccountingService, engine: AccountingEngine, options: Options) {
        self.options = options
        self.service = service
        self.engine = engine
        // Passive: an exporter always connected must not keep exits from atops that come later.
        client = service.connect(passive: true)
        series = GroupedSeries(top: options.top, pids: options.pids)
        startTime = Self.processStartTime() ?? Date().timeIntervalSince1970
    }

    private func keys(_ process: ProcessTable.ProcessSample) -> (group: GroupKey, cgroup: String) {
        if let known = assigned[process.id] { return known }
        return (series.group(comm: process.comm, pid: process.id.pid), GroupedSeries<Traffic>.cgroup(process.cgroupID, &cgroupNames))
    }

    /// Every maintenance interval (after the accounting service's): folds in the exits, and
    /// now and then forgets the exited traffic of cgroups long gone.
    func maintain(now: Double = StopSignals.now()) {
        for process in service.exitedProcesses(for: client) { finish(process) }
        guard now - lastCgroupCheck >= 30, let root = cgroupNames.root else { return }
        lastCgroupCheck = now
        for (path, entry) in exitedByCgroup {
            let exists = path.hasPrefix("/") && access(root + path, F_OK) == 0
            if exists {
                if entry.goneSince != nil { exitedByCgroup[path]?.goneSince = nil }
            } else if let gone = entry.goneSince {
                if now - gone >= service.configuration.retention { exitedByCgroup[path] = nil }
            } else {
                exitedByCgroup[path]?.goneSince = now
            }
        }
    }

    private func finish(_ process: ProcessTable.ProcessSample) {
        let (group, cgroup) = keys(process)
        series.finish(group, cgroup, process.total)
        exitedByCgroup[cgroup, default: (.zero, nil)].total += process.total
        assigned[process.id] = nil
    }

    /// One scrape: reads the kernel (the caller has refreshed the service with `.all`), then
    /// the other collectors' families.
    func scrape(collectors: [any Collector] = []) -> [UInt8] {
        let began = StopSignals.now()
        scrapes += 1
        var liveGroups: [GroupKey: Traffic] = [:], liveCgroups: [String: Traffic] = [:]
        var liveCount = 0
        var seen: [ProcessID: (group: GroupKey, cgroup: String)] = [:]
        for process in service.processes(for: client) {
            if process.exited {
                finish(process)
                continue
            }
            liveCount += 1
            let (group, cgroup) = keys(process)
            seen[process.id] = (group, cgroup)
            liveGroups[group, default: .zero] += process.total
            liveCgroups[cgroup, default: .zero] += process.total
        }
        assigned = seen
        series.update(groups: liveGroups, cgroups: liveCgroups)

        var out = PrometheusText()
        let groupRows = series.groupRows
        Self.traffic(&out, "netacct", "the machine's TCP and UDP traffic since the daemon started (calls: successful send or receive calls; bytes: their payload)",
                     [([], groupRows.reduce(.zero) { $0 + $1.value })])
        Self.traffic(&out, "netacct_process_group", "traffic per process group (command name\(options.pids ? " and PID" : "")): the \(options.top) busiest since start, the rest in group=\"other\"; exited processes stay in their group", groupRows)
        Self.traffic(&out, "netacct_cgroup", "traffic per cgroup v2 (its path under the cgroup2 mount, and its unit, container or pod name): the \(options.top) busiest since start, the rest in cgroup=\"other\"", series.cgroupRows)

        out.family("netacct_processes", .gauge, help: "processes with counted traffic that are running")
        out.sample("netacct_processes", UInt64(liveCount))
        let losses = service.losses
        out.family("netacct_losses_total", .counter, help: "what could not be counted or delivered since start, by kind (README: What is counted)")
        for (kind, value) in [("uncounted_calls", losses.uncountedCalls), ("dropped_exits", losses.droppedExits),
                              ("unregistered_processes", losses.unregisteredProcesses), ("late_thread_exits", losses.lateThreadExits),
                              ("forgotten_exits", losses.forgottenExits), ("uncounted_socket_calls", losses.uncountedSocketCalls)] {
            out.sample("netacct_losses_total", [("kind", kind)], value)
        }
        bpfStatistics(&out)
        for collector in collectors { collector.writeMetrics(into: &out) }
        Self.processMetrics(&out, startTime: startTime)
        out.family("netacct_scrape_duration_seconds", .gauge, help: "the time this scrape took, until this line")
        out.sample("netacct_scrape_duration_seconds", StopSignals.now() - began)
        return out.bytes
    }

    /// `/api/v1/processes`: the live processes' cumulative counters, with the field names of
    /// `netacct top --json` (`start_ns` too, to tell two processes of one PID apart).
    func processes(_ processes: [ProcessTable.ProcessSample]) -> LiveProcessesReply {
        LiveProcessesReply(processes: processes.sorted { $0.id < $1.id }.map {
            LiveProcessRecord(pid: $0.id.pid, startNs: $0.id.startNanoseconds, comm: $0.comm, cgroup: cgroupNames.path(of: $0.cgroupID),
                              exited: $0.exited, counters: Counters($0.total))
        })
    }

    /// `/api/v1/cgroups`: per cgroup, the cumulative counters of its live processes and of
    /// those that have exited (by path, as `netacct_cgroup_*` has them: the two agree), with the
    /// field names of `netacct top --by cgroup --json`; `processes` counts the live ones.
    func cgroups(_ live: [ProcessTable.ProcessSample]) -> CgroupsReply {
        maintain() // the exits the refresh before this noticed
        var rows: [String: (processes: Int, total: Traffic)] = exitedByCgroup.mapValues { (0, $0.total) }
        for process in live where !process.exited {
            let path = keys(process).cgroup
            rows[path, default: (0, .zero)].processes += 1
            rows[path]!.total += process.total
        }
        return CgroupsReply(cgroups: rows.sorted { $0.key < $1.key }.map { path, row in
            let workload = path.hasPrefix("/") ? Workload(path: path) : Workload(kind: .other, name: path)
            return CgroupRecord(cgroup: path.hasPrefix("/") ? path : nil, workload: workload, processes: row.processes, counters: Counters(row.total))
        })
    }

    /// A traffic family pair, `<prefix>_bytes_total` and `<prefix>_calls_total`, with the
    /// labels of each row plus protocol and direction.
    static func traffic(_ out: inout PrometheusText, _ prefix: String, _ help: String, _ rows: [(labels: [(String, String)], value: Traffic)]) {
        for (unit, bytes) in [("bytes", true), ("calls", false)] {
            let name = "\(prefix)_\(unit)_total"
            out.family(name, .counter, help: "\(unit == "bytes" ? "payload bytes" : "calls"): \(help)")
            for (labels, t) in rows {
                for (proto, direction, calls, byteCount) in [("tcp", "rx", t.tcpRxPackets, t.tcpRxBytes), ("tcp", "tx", t.tcpTxPackets, t.tcpTxBytes),
                                                               ("udp", "rx", t.udpRxPackets, t.udpRxBytes), ("udp", "tx", t.udpTxPackets, t.udpTxBytes)] {
                    out.sample(name, labels + [("protocol", proto), ("direction", direction)], bytes ? byteCount : calls)
                }
            }
        }
    }

    /// BPF run time of the traffic-path programs, when the kernel keeps it: rate(seconds) /
    /// rate(runs) is the time per event.
    private func bpfStatistics(_ out: inout PrometheusText) {
        guard (try? String(contentsOfFile: "/proc/sys/kernel/bpf_stats_enabled", encoding: .utf8))?.hasPrefix("1") == true,
              let statistics = try? engine.programStatistics() else { return }
        let programs = engine.trafficPrograms.compactMap { name in statistics[name].map { (name.rawValue, $0) } }
        out.family("netacct_bpf_run_seconds_total", .counter, help: "time the kernel spent in netacct's traffic-path BPF programs (kernel.bpf_stats_enabled=1)")
        for (name, s) in programs { out.sample("netacct_bpf_run_seconds_total", [("program", name)], Double(s.runTimeNanoseconds) / 1e9) }
        out.family("netacct_bpf_runs_total", .counter, help: "runs of netacct's traffic-path BPF programs (kernel.bpf_stats_enabled=1)")
        for (name, s) in programs { out.sample("netacct_bpf_runs_total", [("program", name)], s.runCount) }
    }

    /// The `process_*` metrics of Prometheus's client libraries, from /proc/self.
    static func processMetrics(_ out: inout PrometheusText, startTime: Double) {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        let cpu = Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
        out.family("process_cpu_seconds_total", .counter, help: "Total user and system CPU time spent in seconds.")
        out.sample("process_cpu_seconds_total", cpu)
        let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
        func kilobytes(_ field: String) -> UInt64? {
            status.split(separator: "\n").first { $0.hasPrefix(field + ":") }
                .flatMap { $0.split(separator: " ").dropFirst().first.flatMap { UInt64($0) } }
        }
        if let rss = kilobytes("VmRSS") {
            out.family("process_resident_memory_bytes", .gauge, help: "Resident memory size in bytes.")
            out.sample("process_resident_memory_bytes", rss * 1024)
        }
        if let size = kilobytes("VmSize") {
            out.family("process_virtual_memory_bytes", .gauge, help: "Virtual memory size in bytes.")
            out.sample("process_virtual_memory_bytes", size * 1024)
        }
        out.family("process_start_time_seconds", .gauge, help: "Start time of the process since unix epoch in seconds.")
        out.sample("process_start_time_seconds", startTime)
        let fds = (try? DirectoryEntries.count(in: "/proc/self/fd")) ?? 0
        out.family("process_open_fds", .gauge, help: "Number of open file descriptors.")
        out.sample("process_open_fds", UInt64(max(0, fds - 1)))
        var limit = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        out.family("process_max_fds", .gauge, help: "Maximum number of open file descriptors.")
        out.sample("process_max_fds", UInt64(limit.rlim_cur))
    }

    /// The process's start, seconds since the epoch: boot time plus its start in clock ticks.
    static func processStartTime() -> Double? {
        guard let stat = try? String(contentsOfFile: "/proc/self/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 19, let ticks = Double(fields[19]),
              let boot = (try? String(contentsOfFile: "/proc/stat", encoding: .utf8))?.split(separator: "\n")
                .first(where: { $0.hasPrefix("btime ") }).flatMap({ Double($0.dropFirst(6)) }) else { return nil }
        return boot + ticks / Double(sysconf(Int32(_SC_CLK_TCK)))
    }
}

/// A directory's entries, counted with opendir/readdir (no Foundation FileManager).
enum DirectoryEntries {
    static func count(in path: String) throws -> Int {
        guard let directory = opendir(path) else { throw NetacctError("cannot open \(path)", kind: .failure) }
        defer { closedir(directory) }
        var count = 0
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name != "." && name != ".." { count += 1 }
        }
        return count
    }
}
