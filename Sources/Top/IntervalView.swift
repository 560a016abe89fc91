import FoundationEssentials
import Glibc
import SystemPackage
import NetacctKit

/// What `top --wire` and `top --tcp` render: an interval, from two samples of their source.
protocol IntervalRenderer {
    associatedtype Sample
    associatedtype Interval
    var cgroups: CgroupNames { get set }
    /// What it shows (the interactive screen's keys change the grouping, the sort, the connections).
    var configuration: TopApp.Configuration { get set }
    /// The interactive screen's sort keys: key, name, and the setting each makes.
    static var sortKeys: [(key: Character, name: String, set: @Sendable (inout TopApp.Configuration) -> Void)] { get }
    /// The name of the sort in use.
    static func sortName(_ configuration: TopApp.Configuration) -> String
    /// Whether it has connection rows (`c` toggles them).
    static var hasConnections: Bool { get }
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
    if configuration.interactive, let terminal = Terminal() {
        return try interact(terminal, configuration, renderer: &renderer, sample: sample)
    }
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

/// The interactive screen of `top --tcp` and `top --wire`: the table redrawn every interval and
/// at each key, fitted to the terminal; the renderer's sort keys, `g` processes or cgroups, `c`
/// connection rows (where the view has them), space to pause, `q` to quit.
private func interact<Renderer: IntervalRenderer>(_ terminal: Terminal, _ configuration: TopApp.Configuration, renderer: inout Renderer,
                                                  sample: () throws -> Renderer.Sample) throws {
    let signals = StopSignals()
    var cgroupFilter: Set<UInt64>?
    if let path = configuration.cgroup { cgroupFilter = try renderer.cgroups.subtree(path) }
    var previous = try sample()
    var last: (interval: Renderer.Interval, time: Date, seconds: Double)?
    var paused = false
    func draw() {
        let keys = Renderer.sortKeys.map { String($0.key) }.joined(separator: " ")
        let c = renderer.configuration
        let status = "sort: \(Renderer.sortName(c))  by: \(c.grouping.rawValue)"
            + (Renderer.hasConnections ? "  connections: \(c.connections ? "on" : "off")" : "") + (paused ? "  PAUSED" : "")
            + "   [\(keys) sort, g group, \(Renderer.hasConnections ? "c connections, " : "")space pause, q quit]"
        let size = terminal.size
        guard let last else {
            terminal.show(["netacct top: counting the first \(Units.seconds(configuration.interval))…"] + Array(repeating: "", count: max(0, size.rows - 2)) + [status])
            return
        }
        let lines = renderer.table(last.interval, time: last.time, seconds: last.seconds, cgroups: cgroupFilter)
            .split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let room = max(1, size.rows - 1)
        var shown = Array(lines.prefix(room))
        if lines.count > room { shown[room - 1] = "+\(lines.count - room + 1) more" }
        terminal.show(shown + Array(repeating: "", count: max(0, room - shown.count)) + [status])
    }
    try terminal.run(every: configuration.interval, count: configuration.count, signals: signals, key: { key in
        let character = Character(Unicode.Scalar(key))
        if character == "q" { return .quit }
        if let sort = Renderer.sortKeys.first(where: { $0.key == character }) {
            sort.set(&renderer.configuration)
        } else if character == "g" {
            renderer.configuration.grouping = renderer.configuration.grouping == .process ? .cgroup : .process
        } else if character == "c" && Renderer.hasConnections {
            renderer.configuration.connections.toggle()
        } else if character == " " {
            paused.toggle()
        } else {
            return .nothing
        }
        return .redraw
    }, draw: draw, interval: { seconds in
        let current = try sample()
        defer { previous = current }
        if let path = configuration.cgroup { cgroupFilter = (try? renderer.cgroups.subtree(path)) ?? cgroupFilter }
        guard !paused else { return false }
        last = (renderer.interval(current, since: previous), Date(), seconds)
        draw()
        return true
    })
}
