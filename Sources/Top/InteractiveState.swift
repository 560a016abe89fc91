/// What the interactive screen shows, changed by keys (top's and htop's): `r`, `t`, `T` sort by
/// received, sent or total bytes; `/` types a filter (a name, a PID or a cgroup; Enter keeps it,
/// Escape drops it, an empty one shows everything); space pauses (the counting goes on, the
/// screen stays); `h` shows threads; `c` shows connections (tcptop's tables, under the
/// processes or cgroups); `g` switches between processes and cgroups; `q` quits.
struct InteractiveState: Equatable {
    var sort: TopInterval.SortKey = .total
    var grouping: TopInterval.Grouping = .process
    var threads = false
    var connections = false
    /// Whether the source counts per connection (else `c` has nothing to show).
    var connectionsCounted = true
    var paused = false
    var filter = ""
    /// The filter being typed, while `/` is on.
    var typing: String?

    enum Outcome: Equatable { case redraw, quit, nothing }

    mutating func handle(_ key: UInt8) -> Outcome {
        if var text = typing {
            switch key {
            case 0x0D, 0x0A: filter = text; typing = nil
            case 0x1B: typing = nil
            case 0x7F, 0x08: if !text.isEmpty { text.removeLast() }; typing = text
            case 0x20...0x7E: text.append(Character(Unicode.Scalar(key))); typing = text
            default: return .nothing
            }
            return .redraw
        }
        switch key {
        case UInt8(ascii: "q"): return .quit
        case UInt8(ascii: "r"): sort = .rx
        case UInt8(ascii: "t"): sort = .tx
        case UInt8(ascii: "T"): sort = .total
        case UInt8(ascii: "h"): threads.toggle()
        case UInt8(ascii: "c"): if connectionsCounted { connections.toggle() } else { return .nothing }
        case UInt8(ascii: "g"): grouping = grouping == .process ? .cgroup : .process
        case UInt8(ascii: " "): paused.toggle()
        case UInt8(ascii: "/"): typing = ""
        default: return .nothing
        }
        return .redraw
    }

    /// Whether a process passes the filter: its PID, or a part of its name or cgroup path.
    func admits(pid: Int32, comm: String, cgroup: String?) -> Bool {
        guard !filter.isEmpty else { return true }
        if let number = Int32(filter) { return pid == number }
        return comm.contains(filter) || (cgroup?.contains(filter) ?? false)
    }

    /// The line under the screen: the settings and the keys.
    var statusLine: String {
        if let typing { return "filter: \(typing)_   (Enter: keep, Esc: cancel)" }
        var parts = ["sort: \(sort.rawValue)", "by: \(grouping.rawValue)"]
        if grouping == .process { parts.append("threads: \(threads ? "on" : "off")") }
        parts.append("filter: \(filter.isEmpty ? "-" : filter)")
        parts.append("connections: \(connectionsCounted ? (connections ? "on" : "off") : "not counted")")
        if paused { parts.append("PAUSED") }
        return parts.joined(separator: "  ") + "   [r t T sort, / filter, space pause, h threads, c connections, g group, q quit]"
    }

    /// Fits a screen's lines to `rows`: the head (up to and including the column header), then
    /// the busiest rows that fit, then "+N more", and the status line last.
    func fit(_ lines: [String], headerLines: Int, rows: Int) -> [String] {
        let room = max(1, rows - 1)
        guard lines.count > room else { return lines + Array(repeating: "", count: room - lines.count) + [statusLine] }
        // Short of room, the head's blank lines go first.
        let head = Array(lines.prefix(headerLines).filter { !$0.isEmpty }.prefix(max(0, room - 1)))
        let shown = max(0, room - head.count - 1)
        let body = lines.dropFirst(headerLines)
        return head + body.prefix(shown) + ["+\(body.count - shown) more"] + [statusLine]
    }
}
