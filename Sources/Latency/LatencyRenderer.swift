import CNetacct
import FoundationEssentials
import Glibc
import NetacctKit

/// Reports as `netacct latency` prints them: a table row per segment under the seed's columns,
/// or one JSON object per line; and, with --hist, a histogram per stage every interval (README.md
/// documents both formats). Appended to a buffer as bytes.
public struct LatencyRenderer {
    public let direction: LatencyDirection
    let wallClockOffset: Int64
    private var clock = Timestamps()

    /// The namespaces a report is named by (-A, --netns); nil: the one netacct runs in, unnamed.
    public var namespaces: NamespaceDirectory?

    public init(direction: LatencyDirection, wallClockOffset: Int64, namespaces: NamespaceDirectory? = nil) {
        self.direction = direction
        self.wallClockOffset = wallClockOffset
        self.namespaces = namespaces
    }

    static let endpointWidth = 22

    public var header: String {
        func column(_ text: String, _ width: Int) -> String { text + String(repeating: " ", count: max(1, width - text.count)) }
        var line = column("SADDR:SPORT", Self.endpointWidth) + "-> "
        if direction == .out { line += column("NAT:PORT", Self.endpointWidth) + "-> " }
        line += column("DADDR:DPORT", Self.endpointWidth) + column("SEQ", 11) + column("ACK", 11) + column("TIME", 16)
        line += column("TOTAL", 10) + direction.stages.map { column($0, 10) }.joined()
        return line + column("PID", 8) + (namespaces == nil ? "COMM\n" : column("COMM", 17) + "NETNS\n")
    }

    /// Microseconds as the table shows them: fractions where they matter (below a millisecond).
    static func microseconds(_ nanoseconds: UInt64, into out: inout TextBuffer) {
        if nanoseconds < 10_000 { out.append(nanoseconds / 10, decimals: 2) }
        else if nanoseconds < 1_000_000 { out.append(nanoseconds / 100, decimals: 1) }
        else { out.append(nanoseconds / 1000) }
    }

    static func endpoint(_ address: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8),
                         _ port: UInt16, ipv6: Bool, into out: inout TextBuffer) {
        withUnsafeBytes(of: address) { out.address($0, ipv6: ipv6) }
        out.append(":")
        out.append(UInt64(port))
    }

    public mutating func row(_ e: netacct_latency_event, into out: inout TextBuffer) {
        let ipv6 = e.family == UInt16(AF_INET6)
        out.padded(Self.endpointWidth, left: true) { Self.endpoint(e.saddr, e.sport, ipv6: ipv6, into: &$0) }
        out.append("-> ")
        if direction == .out {
            out.padded(Self.endpointWidth, left: true) { out in
                if e.nat_port != 0 { Self.endpoint(e.nat_addr, e.nat_port, ipv6: ipv6, into: &out) } else { out.append("-") }
            }
            out.append("-> ")
        }
        out.padded(Self.endpointWidth, left: true) { Self.endpoint(e.daddr, e.dport, ipv6: ipv6, into: &$0) }
        out.padded(11, left: true) { $0.append(UInt64(e.seq)) }
        out.padded(11, left: true) { $0.append(UInt64(e.ack)) }
        let wall = Int64(e.time_ns) + wallClockOffset
        out.padded(16, left: true) { out in
            out.append(bytes: clock.localTime(wall))
            out.append(".")
            var fraction = UInt64((wall % 1_000_000_000) / 1000), divisor: UInt64 = 100_000
            while divisor > 0 {
                out.bytes.append(UInt8(ascii: "0") + UInt8(fraction / divisor))
                fraction %= divisor
                divisor /= 10
            }
        }
        out.padded(10, left: true) { Self.microseconds(e.total_ns, into: &$0) }
        withUnsafeBytes(of: e.stage_ns) { raw in
            for stage in 0..<Int(NETACCT_LATENCY_STAGES) {
                out.padded(10, left: true) { out in
                    if e.missed & (1 << stage) != 0 { out.append("-") }
                    else { Self.microseconds(raw.load(fromByteOffset: stage * 8, as: UInt64.self), into: &out) }
                }
            }
        }
        out.padded(8, left: true) { $0.append(UInt64(e.pid)) }
        if let label = namespaces?.label(e.netns) {
            out.padded(17, left: true) { out in withUnsafeBytes(of: e.comm) { out.append(String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self)) } }
            out.append(label.display)
        } else {
            withUnsafeBytes(of: e.comm) { out.append(String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self)) }
        }
        out.append("\n")
    }

    public mutating func json(_ e: netacct_latency_event, into out: inout TextBuffer) {
        let ipv6 = e.family == UInt16(AF_INET6)
        out.append("{\"time\":\"")
        clock.utc(Int64(e.time_ns) + wallClockOffset, into: &out)
        out.append(direction == .in ? "\",\"direction\":\"in\"" : "\",\"direction\":\"out\"")
        out.append(ipv6 ? ",\"family\":6" : ",\"family\":4")
        out.append(",\"pid\":")
        out.append(UInt64(e.pid))
        out.append(",\"comm\":")
        withUnsafeBytes(of: e.comm) { out.jsonString(UnsafeRawBufferPointer(rebasing: $0.prefix { $0 != 0 })) }
        out.jsonEndpoint("saddr", e.saddr, "sport", e.sport, ipv6: ipv6)
        out.jsonEndpoint("daddr", e.daddr, "dport", e.dport, ipv6: ipv6)
        out.append(",\"seq\":")
        out.append(UInt64(e.seq))
        out.append(",\"ack\":")
        out.append(UInt64(e.ack))
        if direction == .out {
            if e.nat_port != 0 {
                out.jsonEndpoint("nat_addr", e.nat_addr, "nat_port", e.nat_port, ipv6: ipv6)
            } else {
                out.append(",\"nat_addr\":null,\"nat_port\":null")
            }
        }
        out.append(",\"total_us\":")
        out.append(e.total_ns, decimals: 3)
        out.append(",\"stages\":{")
        withUnsafeBytes(of: e.stage_ns) { raw in
            for (stage, name) in direction.stages.enumerated() {
                if stage > 0 { out.append(",") }
                out.append("\"")
                out.append(name.lowercased())
                out.append("_us\":")
                if e.missed & (1 << stage) != 0 { out.append("null") }
                else { out.append(raw.load(fromByteOffset: stage * 8, as: UInt64.self), decimals: 3) }
            }
        }
        out.append("}")
        if let label = namespaces?.label(e.netns) {
            var writer = JSONWriter(continuing: true)
            label.write(into: &writer)
            out.append(writer.text)
        }
        out.append("}\n")
    }

    /// One --hist interval: a histogram per stage (those no segment passed have count 0), and the total.
    public struct Interval: Sendable {
        public var time: Date
        public var seconds: Double
        public var stages: [LatencyHistogram]    // the direction's stages, then the total
        /// Their namespace, when what is shown names it (-A, --netns).
        public var namespace: NamespaceLabel?
        public init(time: Date, seconds: Double, stages: [LatencyHistogram], namespace: NamespaceLabel? = nil) {
            (self.time, self.seconds, self.stages, self.namespace) = (time, seconds, stages, namespace)
        }
    }

    public var stageNames: [String] { direction.stages + ["TOTAL"] }

    public func histogramTable(_ interval: Interval) -> String {
        var out = TextBuffer(capacity: 4096)
        var clock = Timestamps()
        let now = Int64(interval.time.timeIntervalSince1970 * 1e9)
        out.append(bytes: clock.localTime(now))
        out.append(" latency \(direction.rawValue), ")
        out.append(UInt64(max(0, interval.seconds) * 100), decimals: 2)
        out.append(" s")
        if let label = interval.namespace { out.append(", netns \(label.display)" + (label.display == String(label.inode) ? "" : " (\(label.inode))")) }
        out.append("\n")
        out.append("STAGE     COUNT     P50(us)   P90(us)   P99(us)   MAX(us)\n")
        for (name, histogram) in zip(stageNames, interval.stages) {
            out.padded(10, left: true) { $0.append(name) }
            out.padded(10, left: true) { $0.append(histogram.count) }
            for p in [0.5, 0.9, 0.99] {
                out.padded(10, left: true) { out in
                    if let value = histogram.percentile(p) { Self.microseconds(value, into: &out) } else { out.append("-") }
                }
            }
            if histogram.count > 0 { Self.microseconds(histogram.maxNanoseconds, into: &out) } else { out.append("-") }
            out.append("\n")
        }
        for (name, histogram) in zip(stageNames, interval.stages) where histogram.count > 0 {
            out.append("\n\(name)\n")
            out.append("             nsecs           : count      distribution\n")
            let octaves = histogram.octaves
            let most = octaves.map(\.count).max() ?? 1
            for (upper, count) in octaves {
                let lower = upper / 2 == 1 ? 0 : upper / 2
                out.padded(12) { $0.append(lower) }
                out.append(" -> ")
                out.padded(12, left: true) { $0.append(upper - 1) }
                out.append(" : ")
                out.padded(10, left: true) { $0.append(count) }
                out.append(" |")
                let stars = Int((count * 40 + most - 1) / most)
                out.append(String(repeating: "*", count: stars) + String(repeating: " ", count: 40 - stars))
                out.append("|\n")
            }
        }
        out.append("\n")
        return String(decoding: out.bytes, as: UTF8.self)
    }

    public func histogramJSON(_ interval: Interval) -> String {
        var out = TextBuffer(capacity: 4096)
        var clock = Timestamps()
        out.append("{\"time\":\"")
        clock.utc(Int64(interval.time.timeIntervalSince1970 * 1e9), into: &out)
        out.append("\",\"interval_s\":")
        out.append(UInt64(max(0, interval.seconds) * 1000), decimals: 3)
        out.append(",\"direction\":\"\(direction.rawValue)\",\"stages\":")
        stages(interval.stages, into: &out)
        if let label = interval.namespace {
            var writer = JSONWriter(continuing: true)
            label.write(into: &writer)
            out.append(writer.text)
        }
        out.append("}\n")
        return String(decoding: out.bytes, as: UTF8.self)
    }

    /// The stages' histograms as a JSON array, as --hist prints them per interval (the
    /// daemon's `latency` records have the same fields, since it started).
    func stages(_ histograms: [LatencyHistogram], into out: inout TextBuffer) {
        out.append("[")
        for (index, (name, histogram)) in zip(stageNames, histograms).enumerated() {
            if index > 0 { out.append(",") }
            out.append("{\"stage\":\"\(name.lowercased())\",\"count\":")
            out.append(histogram.count)
            for (key, p) in [("p50_us", 0.5), ("p90_us", 0.9), ("p99_us", 0.99)] {
                out.append(",\"\(key)\":")
                if let value = histogram.percentile(p) { out.append(value, decimals: 3) } else { out.append("null") }
            }
            out.append(",\"max_us\":")
            if histogram.count > 0 { out.append(histogram.maxNanoseconds, decimals: 3) } else { out.append("null") }
            out.append(",\"sum_us\":")
            out.append(histogram.sumNanoseconds, decimals: 3)
            out.append(",\"buckets\":[")
            for (bucket, (upper, count)) in histogram.octaves.enumerated() {
                if bucket > 0 { out.append(",") }
                out.append("{\"le_us\":")
                out.append(upper, decimals: 3)
                out.append(",\"count\":")
                out.append(count)
                out.append("}")
            }
            out.append("]}")
        }
        out.append("]")
    }
}
