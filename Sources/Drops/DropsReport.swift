import CNetacct
import FoundationEssentials
import Glibc
import NetacctKit

/// Drops and summaries as `netacct drops` prints them (README.md documents the JSON keys).
public struct DropsRenderer {
    public static let header = "TIME     PID     COMM             IP SADDR:SPORT > DADDR:DPORT                PROTO REASON                    STATE\n"
    /// With -A or --netns: the namespace's column after COMM.
    public static let labelledHeader = "TIME     PID     COMM             NETNS            IP SADDR:SPORT > DADDR:DPORT                PROTO REASON                    STATE\n"

    /// The running kernel's reason names, and its clock's offset to the wall clock.
    let reasons: DropReasons
    let wallClockOffset: Int64
    private var clock = Timestamps()
    /// Interface names by ifindex (if_indextoname is an ioctl: once per interface).
    private var interfaces: [UInt32: String?] = [:]
    private var words: [UInt32: String] = [:]

    /// The namespaces a drop is named by (-A, --netns); nil: the one netacct runs in, unnamed.
    public var namespaces: NamespaceDirectory?

    public init(reasons: DropReasons, wallClockOffset: Int64, namespaces: NamespaceDirectory? = nil) {
        self.reasons = reasons
        self.wallClockOffset = wallClockOffset
        self.namespaces = namespaces
    }

    /// The name of the interface a drop came in on, in its namespace.
    mutating func interface(_ index: UInt32, netns: UInt32) -> String? {
        if namespaces != nil { return namespaces!.interfaceName(index, netns: netns) }
        if let known = interfaces[index] { return known }
        var name = [CChar](repeating: 0, count: Int(IF_NAMESIZE) + 1)
        let found = if_indextoname(index, &name) != nil
            ? String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self) : nil
        interfaces[index] = found
        return found
    }

    mutating func reasonWords(_ reason: UInt32) -> String {
        if let known = words[reason] { return known }
        let text = reasons.words(reason)
        words[reason] = text
        return text
    }

    static func endpoint(_ out: inout TextBuffer, _ address: UnsafeRawBufferPointer, _ port: UInt16, ipv6: Bool) {
        if ipv6 { out.append("[") }
        out.address(address, ipv6: ipv6)
        out.append(ipv6 ? "]:" : ":")
        out.append(UInt64(port))
    }

    /// One table row.
    public mutating func row(_ record: netacct_drop_event, owner: SocketOwners.Owner?, into out: inout TextBuffer) {
        let ipv6 = record.family == UInt16(AF_INET6)
        out.append(bytes: clock.localTime(Int64(bitPattern: record.time_ns) &+ wallClockOffset))
        out.append(" ")
        out.padded(7, left: true) { out in
            if let owner { out.append(owner.pid) } else { out.append("-") }
        }
        out.append(" ")
        out.padded(16, left: true) { $0.append(String((owner?.comm ?? "-").prefix(16))) }
        if let label = namespaces?.label(record.netns) {
            out.append(" ")
            out.padded(16, left: true) { $0.append(String(label.display.prefix(16))) }
        }
        out.append(ipv6 ? " 6  " : " 4  ")
        out.padded(40, left: true) { out in
            withUnsafeBytes(of: record.saddr) { Self.endpoint(&out, $0, record.sport, ipv6: ipv6) }
            out.append(" > ")
            withUnsafeBytes(of: record.daddr) { Self.endpoint(&out, $0, record.dport, ipv6: ipv6) }
        }
        out.append(record.protocol == UInt8(IPPROTO_UDP) ? " udp   " : " tcp   ")
        out.padded(25, left: true) { $0.append(reasonWords(record.reason)) }
        out.append(" ")
        out.append(TCPStates.name(record.state) ?? "-")
        out.append("\n")
    }

    /// One JSON line (README.md documents the keys).
    public mutating func json(_ record: netacct_drop_event, owner: SocketOwners.Owner?, into out: inout TextBuffer) {
        let ipv6 = record.family == UInt16(AF_INET6)
        out.append("{\"time\":\"")
        clock.utc(Int64(bitPattern: record.time_ns) &+ wallClockOffset, into: &out)
        out.append("\",\"pid\":")
        if let owner {
            out.append(owner.pid)
            out.append(",\"comm\":")
            out.jsonString(owner.comm)
        } else {
            out.append("null,\"comm\":null")
        }
        out.append(ipv6 ? ",\"family\":6" : ",\"family\":4")
        out.append(record.protocol == UInt8(IPPROTO_UDP) ? ",\"protocol\":\"udp\"" : ",\"protocol\":\"tcp\"")
        out.jsonEndpoint("saddr", record.saddr, "sport", record.sport, ipv6: ipv6)
        out.jsonEndpoint("daddr", record.daddr, "dport", record.dport, ipv6: ipv6)
        out.append(",\"reason\":")
        out.jsonString(reasons.name(record.reason))
        out.append(",\"state\":")
        if let state = TCPStates.name(record.state) { out.jsonString(state) } else { out.append("null") }
        out.append(",\"ifname\":")
        if let name = interface(record.ifindex, netns: record.netns) { out.jsonString(name) } else { out.append("null") }
        if let label = namespaces?.label(record.netns) {
            var writer = JSONWriter(continuing: true)
            label.write(into: &writer)
            out.append(writer.text)
        }
        out.append("}\n")
    }

    static func timestamp(_ time: Date) -> String {
        time.formatted(.iso8601.year().month().day().time(includingFractionalSeconds: true).timeZone(separator: .omitted))
    }

    /// One interval of --summary: drops by reason, protocol and owner, busiest first.
    public struct Interval: Sendable {
        public struct Row: Sendable, Equatable {
            public var reason: String
            public var reasonWords: String
            public var proto: String
            public var owner: SocketOwners.Owner?
            /// The owner could not be kept apart (the kernel's per-socket table was full).
            public var unattributed = false
            public var count: UInt64
            /// Its network namespace, when rows name theirs (-A, --netns).
            public var namespace: NamespaceLabel?
        }
        public var time: Date
        public var seconds: Double
        public var rows: [Row]
        /// Rows name their namespace (-A, --netns).
        public var labelled = false
        public init(time: Date, seconds: Double, rows: [Row], labelled: Bool = false) {
            (self.time, self.seconds, self.rows, self.labelled) = (time, seconds, rows, labelled)
        }
    }

    public static func summaryTable(_ interval: Interval) -> String {
        let total = interval.rows.reduce(0) { $0 + $1.count }
        let labelled = interval.labelled
        var lines = ["\(Units.clock(interval.time))  (\(Units.seconds(interval.seconds)))  \(total) drops",
                     "  COUNT PROTO REASON                    PID     " + (labelled ? "COMM             NETNS" : "COMM")]
        for row in interval.rows {
            var columns = [Units.pad(String(row.count), 7), Units.pad(row.proto, 5, left: true), Units.pad(row.reasonWords, 25, left: true),
                           Units.pad(row.unattributed ? "?" : row.owner.map { String($0.pid) } ?? "-", 7, left: true)]
            if labelled {
                columns += [Units.pad(String((row.owner?.comm ?? "-").prefix(16)), 16, left: true), row.namespace?.display ?? "?"]
            } else {
                columns.append(row.owner?.comm ?? "-")
            }
            lines.append(columns.joined(separator: " "))
        }
        return lines.joined(separator: "\n") + "\n\n"
    }

    public static func summaryJSON(_ interval: Interval) -> String {
        var out = JSONWriter()
        out.begin("{")
        out.field("time", string: timestamp(interval.time))
        out.field("interval_s", number: Units.fixed(interval.seconds, decimals: 3))
        out.key("drops")
        out.begin("[")
        for row in interval.rows {
            out.begin("{")
            out.field("reason", string: row.reason)
            out.field("protocol", string: row.proto)
            if let owner = row.owner {
                out.field("pid", number: String(owner.pid))
                out.field("comm", string: owner.comm)
            } else {
                out.field("pid", number: "null")
                out.field("comm", number: "null")
            }
            out.field("count", number: String(row.count))
            if interval.labelled {
                if let label = row.namespace { label.write(into: &out) } else { out.field("netns", string: nil) }
            }
            out.end("}")
        }
        out.end("]")
        out.end("}")
        return out.text + "\n"
    }
}
