import Glibc
import NetacctKit

/// Events as `netacct connections` prints them: table rows under a header, or one JSON object
/// per line (the format README.md documents).
public struct ConnectionsRenderer {
    /// Whether failed connects or closes are shown: the table then has EVENT and DETAIL columns.
    public let showsOutcomes: Bool
    private var cgroups: CgroupNames
    /// Cgroup ids no rescan could name, and when that was (rescans are rate-limited).
    private var unnamed: [UInt64: Int64] = [:]
    private var clock = Timestamps()

    public init(showsOutcomes: Bool, cgroups: CgroupNames = CgroupNames()) {
        self.showsOutcomes = showsOutcomes
        self.cgroups = cgroups
    }

    public var header: String {
        var columns = ["TIME    "]
        if showsOutcomes { columns.append("EVENT  ") }
        columns += ["PID    ", "COMM            ", "IP", "LADDR          ", "LPORT", "RADDR          ", "RPORT",
                    "DIRECTION", "LAT(ms)"]
        if showsOutcomes { columns.append("DETAIL") }
        return columns.joined(separator: " ") + "\n"
    }

    public mutating func row(_ event: ConnectionEvent) -> String {
        var fields = [clock.localTime(event.wallClockNanoseconds)]
        if showsOutcomes { fields.append(Units.pad(event.kind.rawValue, 7, left: true)) }
        fields += [
            Units.pad(event.pid.map(String.init) ?? "-", 7, left: true),
            Units.pad(String((event.comm ?? "-").prefix(16)), 16, left: true),
            event.family == .ipv6 ? "6 " : "4 ",
            Units.pad(event.localAddress, 15, left: true),
            Units.pad(String(event.localPort), 5),
            Units.pad(event.remoteAddress, 15, left: true),
            Units.pad(String(event.remotePort), 5),
            Units.pad(event.direction?.rawValue ?? "-", 9, left: true),
            Units.pad(event.latencyMicroseconds.map { Units.fixed(Double($0) / 1000, decimals: 3) } ?? "-", 7),
        ]
        if showsOutcomes { fields.append(detail(event)) }
        return fields.joined(separator: " ") + "\n"
    }

    /// What a failed connect or a close adds: the reason; the duration and bytes each way.
    func detail(_ event: ConnectionEvent) -> String {
        switch event.kind {
        case .failed:
            let error = event.error ?? 0
            return "\(ConnectionEvent.reason(error)) (\(ConnectionEvent.errorName(error)))"
        case .close:
            let duration = event.durationNanoseconds.map { Units.seconds(Double($0) / 1e9) } ?? "-"
            return "\(duration) tx \(Units.bytes(event.txBytes ?? 0)) rx \(Units.bytes(event.rxBytes ?? 0))"
        case .connect, .accept:
            return ""
        }
    }

    public mutating func json(_ event: ConnectionEvent) -> String {
        var out = JSONWriter()
        out.begin("{")
        out.field("time", string: clock.utc(event.wallClockNanoseconds))
        out.field("event", string: event.kind.rawValue)
        if let direction = event.direction { out.field("direction", string: direction.rawValue) } else { out.field("direction", number: "null") }
        out.field("pid", number: event.pid.map(String.init) ?? "null")
        out.field("tid", number: event.tid.map(String.init) ?? "null")
        if let comm = event.comm { out.field("comm", string: comm) } else { out.field("comm", number: "null") }
        if let path = event.cgroupID.flatMap({ cgroupPath($0, at: event.wallClockNanoseconds) }) {
            out.field("cgroup", string: path)
        } else {
            out.field("cgroup", number: "null")
        }
        out.field("family", number: String(event.family.rawValue))
        out.field("laddr", string: event.localAddress)
        out.field("lport", number: String(event.localPort))
        out.field("raddr", string: event.remoteAddress)
        out.field("rport", number: String(event.remotePort))
        out.field("latency_us", number: event.latencyMicroseconds.map(String.init) ?? "null")
        if let error = event.error { out.field("error", string: ConnectionEvent.errorName(error)) } else { out.field("error", number: "null") }
        out.field("duration_ms", number: event.durationNanoseconds.map { Units.fixed(Double($0) / 1e6, decimals: 3) } ?? "null")
        out.field("tx_bytes", number: event.txBytes.map(String.init) ?? "null")
        out.field("rx_bytes", number: event.rxBytes.map(String.init) ?? "null")
        out.end("}")
        return out.text + "\n"
    }

    /// The cgroup's path; nil when it has gone. An id no rescan names is not rescanned for
    /// again within a second (a storm from a deleted cgroup would rescan the tree per event).
    mutating func cgroupPath(_ id: UInt64, at nanoseconds: Int64) -> String? {
        if let last = unnamed[id], nanoseconds - last < 1_000_000_000 { return nil }
        if let path = cgroups.path(of: id) {
            unnamed[id] = nil
            return path
        }
        unnamed[id] = nanoseconds
        return nil
    }
}

/// Wall-clock times as the table (local HH:MM:SS) and JSON (UTC, RFC 3339 with microseconds)
/// show them; the date part is formatted once per second.
struct Timestamps {
    private var second: Int64 = -1
    private var local = ""
    private var utcPrefix = ""

    private mutating func update(_ nanoseconds: Int64) {
        let seconds = nanoseconds / 1_000_000_000
        guard seconds != second else { return }
        second = seconds
        var time = time_t(seconds)
        var parts = tm()
        func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
        localtime_r(&time, &parts)
        local = "\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec))"
        gmtime_r(&time, &parts)
        utcPrefix = "\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday))T\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec))."
    }

    mutating func localTime(_ nanoseconds: Int64) -> String {
        update(nanoseconds)
        return local
    }

    mutating func utc(_ nanoseconds: Int64) -> String {
        update(nanoseconds)
        let micro = String((nanoseconds % 1_000_000_000) / 1000)
        return utcPrefix + String(repeating: "0", count: 6 - micro.count) + micro + "Z"
    }
}
