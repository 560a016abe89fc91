import DaemonProtocol
import NetacctKit

/// Counts since the daemon started of what the kernel attributes to processes (drops, connection
/// events), in all and per process group and per cgroup, bounded as the accounting families are
/// (`GroupedSeries`): the drops and connection-events collectors' model. Each reading of the
/// kernel adds what came since the last one. Every count is final when it is read, so it stays
/// in its group's and its cgroup's series however long ago its process exited.
struct AttributedCounts<Label: TallyLabel> {
    /// Whom counts are for: a process's name, PID and cgroup id.
    struct Owner: Hashable {
        var comm: String
        var pid: Int32
        var cgroup: UInt64
    }

    private(set) var total = Tally<Label>()
    private(set) var series: GroupedSeries<Tally<Label>>
    private var cgroupNames: CgroupNames

    init(top: Int, pids: Bool, cgroupNames: CgroupNames = CgroupNames()) {
        series = GroupedSeries(top: top, pids: pids)
        self.cgroupNames = cgroupNames
    }

    /// A reading's new counts, by owner (nil: no process known).
    mutating func add(_ counts: [Owner?: Tally<Label>]) {
        guard !counts.isEmpty else { return }
        for (owner, tally) in counts where !tally.isZero {
            total = total + tally
            series.finish(series.group(comm: owner?.comm, pid: owner?.pid), GroupedSeries<Tally<Label>>.cgroup(owner?.cgroup, &cgroupNames), tally)
        }
        series.update()
    }

    /// The families `netacct_<name>` (in all), `netacct_process_group_<name>` and
    /// `netacct_cgroup_<name>`: `samples` writes a row's samples under the name it is given, the
    /// row's labels first.
    func write(_ out: inout PrometheusText, _ name: String, _ kind: PrometheusText.Kind, help: String,
               samples: (inout PrometheusText, String, [(String, String)], Tally<Label>) -> Void) {
        let top = series.groups.limit
        for (prefix, what, rows) in [("netacct_", "since the daemon started", [(labels: [(String, String)](), value: total)]),
                                     ("netacct_process_group_", "per process group (command name\(series.pids ? " and PID" : "")): the \(top) busiest since start, the rest in group=\"other\", none known in group=\"-\"", series.groupRows),
                                     ("netacct_cgroup_", "per cgroup v2 (its path, and its unit, container or pod name): the \(top) busiest since start, the rest in cgroup=\"other\", none known in cgroup=\"-\"", series.cgroupRows)] {
            out.family(prefix + name, kind, help: "\(help), \(what)")
            for row in rows { samples(&out, prefix + name, row.labels, row.value) }
        }
    }

    /// The rows of the API's replies: those of the families, with their labels as fields.
    func records<Counts>(_ counts: (Tally<Label>) -> Counts) -> (groups: [GroupCounts<Counts>], cgroups: [CgroupCounts<Counts>]) {
        (series.groupRows.map { GroupCounts(group: $0.labels[0].1, pid: $0.labels.dropFirst().first.flatMap { Int32($0.1) }, counts: counts($0.value)) },
         series.cgroupRows.map { CgroupCounts(cgroup: $0.labels[0].1, name: $0.labels[1].1, kind: $0.labels[2].1, counts: counts($0.value)) })
    }
}
