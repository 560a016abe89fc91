import Glibc
import NetacctKit

/// Events as `netacct connections` prints them: table rows under a header, or one JSON object
/// per line (the format README.md documents), appended to a buffer as bytes.
public struct ConnectionsRenderer {
    /// Whether failed connects or closes are shown: the table then has EVENT and DETAIL columns.
    public let showsOutcomes: Bool
    private var cgroups: CgroupNames
    /// Cgroup paths as JSON strings, by id; nil: no rescan named it (rescans are rate-limited).
    private var cgroupJSON: [UInt64: [UInt8]] = [:]
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

    /// One table row.
    public mutating func row(_ event: ConnectionEvent) -> String {
        var out = TextBuffer(capacity: 160)
        row(event, into: &out)
        return String(decoding: out.bytes, as: UTF8.self)
    }

    /// One JSON line.
    public mutating func json(_ event: ConnectionEvent) -> String {
        var out = TextBuffer(capacity: 400)
        json(event, into: &out)
        return String(decoding: out.bytes, as: UTF8.self)
    }

    mutating func row(_ event: ConnectionEvent, into out: inout TextBuffer) {
        let record = event.record
        let ipv6 = event.family == .ipv6
        out.append(bytes: clock.localTime(event.wallClockNanoseconds))
        if showsOutcomes {
            out.append(" ")
            out.padded(7, left: true) { $0.append(event.kind.rawValue) }
        }
        out.append(" ")
        out.padded(7, left: true) { out in
            if let pid = event.pid { out.append(pid) } else { out.append("-") }
        }
        out.append(" ")
        out.padded(16, left: true) { out in
            if event.hasProcess {
                withUnsafeBytes(of: record.comm) { raw in
                    out.append(String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self))
                }
            } else {
                out.append("-")
            }
        }
        out.append(ipv6 ? " 6  " : " 4  ")
        out.padded(15, left: true) { out in withUnsafeBytes(of: record.laddr) { out.address($0, ipv6: ipv6) } }
        out.append(" ")
        out.padded(5) { $0.append(UInt64(event.localPort)) }
        out.append(" ")
        out.padded(15, left: true) { out in withUnsafeBytes(of: record.raddr) { out.address($0, ipv6: ipv6) } }
        out.append(" ")
        out.padded(5) { $0.append(UInt64(event.remotePort)) }
        out.append(" ")
        out.padded(9, left: true) { $0.append(event.direction?.rawValue ?? "-") }
        out.append(" ")
        out.padded(7) { out in
            if let latency = event.latencyMicroseconds { out.append(UInt64(latency), decimals: 3) } else { out.append("-") }
        }
        if showsOutcomes {
            switch event.kind {
            case .failed:
                out.append(" ")
                let error = event.error ?? 0
                out.append(ConnectionEvent.reason(error))
                out.append(" (")
                out.append(ConnectionEvent.errorName(error))
                out.append(")")
            case .close:
                out.append(" ")
                if let duration = event.durationNanoseconds {
                    out.append(duration / 10_000_000, decimals: 2)
                    out.append("s")
                } else {
                    out.append("-")
                }
                out.append(" tx ")
                out.append(Units.bytes(event.txBytes ?? 0))
                out.append(" rx ")
                out.append(Units.bytes(event.rxBytes ?? 0))
            case .connect, .accept:
                break
            }
        }
        out.append("\n")
    }

    mutating func json(_ event: ConnectionEvent, into out: inout TextBuffer) {
        let record = event.record
        let ipv6 = event.family == .ipv6
        out.append("{\"time\":\"")
        clock.utc(event.wallClockNanoseconds, into: &out)
        out.append("\",\"event\":\"")
        out.append(event.kind.rawValue)
        out.append("\",\"direction\":")
        if let direction = event.direction {
            out.append("\"")
            out.append(direction.rawValue)
            out.append("\"")
        } else {
            out.append("null")
        }
        if event.hasProcess {
            out.append(",\"pid\":")
            out.append(record.pid.asUInt64)
            out.append(",\"tid\":")
            out.append(record.tid.asUInt64)
            out.append(",\"comm\":")
            withUnsafeBytes(of: record.comm) { out.jsonString(UnsafeRawBufferPointer(rebasing: $0.prefix { $0 != 0 })) }
            out.append(",\"cgroup\":")
            out.append(bytes: cgroupPathJSON(record.cgroup, at: event.wallClockNanoseconds))
        } else {
            out.append(",\"pid\":null,\"tid\":null,\"comm\":null,\"cgroup\":null")
        }
        out.append(ipv6 ? ",\"family\":6" : ",\"family\":4")
        out.jsonEndpoint("laddr", record.laddr, "lport", record.lport, ipv6: ipv6)
        out.jsonEndpoint("raddr", record.raddr, "rport", record.rport, ipv6: ipv6)
        out.append(",\"latency_us\":")
        if let latency = event.latencyMicroseconds { out.append(UInt64(latency)) } else { out.append("null") }
        out.append(",\"error\":")
        if let error = event.error { out.jsonString(ConnectionEvent.errorName(error)) } else { out.append("null") }
        out.append(",\"duration_ms\":")
        if let duration = event.durationNanoseconds { out.append(duration / 1000, decimals: 3) } else { out.append("null") }
        if event.kind == .close {
            out.append(",\"tx_bytes\":")
            out.append(record.tx_bytes)
            out.append(",\"rx_bytes\":")
            out.append(record.rx_bytes)
            out.append("}\n")
        } else {
            out.append(",\"tx_bytes\":null,\"rx_bytes\":null}\n")
        }
    }

    /// The cgroup's path as a JSON string, or null when it has gone. An id no rescan names is
    /// not rescanned for again within a second (a storm from a deleted cgroup would rescan the
    /// tree per event).
    mutating func cgroupPathJSON(_ id: UInt64, at nanoseconds: Int64) -> [UInt8] {
        if let known = cgroupJSON[id] { return known }
        let null = Array("null".utf8)
        if let last = unnamed[id], nanoseconds - last < 1_000_000_000 { return null }
        guard let path = cgroups.path(of: id) else {
            unnamed[id] = nanoseconds
            return null
        }
        unnamed[id] = nil
        var text = TextBuffer(capacity: path.utf8.count + 2)
        text.jsonString(path)
        cgroupJSON[id] = text.bytes
        return text.bytes
    }
}

extension UInt32 {
    var asUInt64: UInt64 { UInt64(self) }
}

