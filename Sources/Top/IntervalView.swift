import FoundationEssentials
import Glibc
import SystemPackage
import NetacctKit

/// What `top --wire` and `top --tcp` render: an interval, from two samples of their source.
protocol IntervalRenderer {
    associatedtype Sample
    associatedtype Interval
    var cgroups: CgroupNames { get set }
    /// What was counted from `previous` to `current`.
    mutating func interval(_ current: Sample, since previous: Sample) -> Interval
    /// The interval as the table (without a trailing newline)...
    mutating func table(_ interval: Interval, time: Date, seconds: Double, cgroups: Set<UInt64>?) -> String
    /// ... and as one JSON line (without its newline).
    mutating func json(_ interval: Interval, time: Date, seconds: Double, cgroups: Set<UInt64>?) -> String
}

/// The loop `top --wire` and `top --tcp` share: the source sampled at each interval's end, the
/// interval shown as a table (the screen cleared first on a terminal) or a JSON line, the
/// `--cgroup` subtree followed as cgroups come and go, and what could not be counted said on
/// standard error each time it changes.
func showIntervals<Renderer: IntervalRenderer>(_ configuration: TopApp.Configuration, output: FileDescriptor, renderer: inout Renderer,
                                               sample: () throws -> Renderer.Sample,
                                               losses: (Renderer.Sample) -> [String]) throws {
    // The screen is cleared only on a terminal: piped lines stay plain.
    let clear = configuration.clearScreen && isatty(output.rawValue) == 1
    let runner = IntervalRunner(every: configuration.interval, count: configuration.count, output: output)
    var cgroupFilter: Set<UInt64>?
    if let path = configuration.cgroup { cgroupFilter = try renderer.cgroups.subtree(path) }
    var previous = try sample()
    var reported: [String] = [], latest: [String] = []
    try runner.run({ seconds in
        let current = try sample()
        defer { previous = current }
        latest = losses(current)
        if let path = configuration.cgroup { cgroupFilter = (try? renderer.cgroups.subtree(path)) ?? cgroupFilter }
        let interval = renderer.interval(current, since: previous)
        let text = configuration.json
            ? renderer.json(interval, time: Date(), seconds: seconds, cgroups: cgroupFilter) + "\n"
            : (clear ? "\u{1B}[H\u{1B}[2J" : "")
                + renderer.table(interval, time: Date(), seconds: seconds, cgroups: cgroupFilter)
                + (clear ? "" : "\n")
        return (text, false)
    }, losses: {
        guard latest != reported else { return "" }
        defer { reported = latest }
        return latest.isEmpty ? "" : "netacct: not everything could be counted: \(latest.joined(separator: "; "))\n"
    })
}

extension JSONWriter {
    /// Who a row of `top --wire` or `top --tcp` is: a process (pid, comm, exited) or a cgroup (nil pid, its path).
    mutating func rowIdentity(pid: Int32?, name: String, exited: Bool) {
        if let pid {
            field("pid", number: pid)
            field("comm", string: name)
            field("exited", bool: exited)
        } else {
            field("cgroup", string: name)
        }
    }
}
