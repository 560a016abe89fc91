import CNetacct
import FoundationEssentials
import Glibc
import NetacctKit

/// One drop as shown: the kernel's record with its owner and names resolved.
public struct Drop: Sendable {
    public var time: Date
    public var owner: SocketOwners.Owner?
    public var family: Int
    public var proto: String
    public var source: String
    public var sourcePort: UInt16
    public var destination: String
    public var destinationPort: UInt16
    public var reason: String          // the kernel's name
    public var reasonWords: String
    public var state: String?
    public var interface: String?

    public init(_ record: netacct_drop_event, owner: SocketOwners.Owner?, reasons: DropReasons, wallClockOffset: Int64) {
        time = Date(timeIntervalSince1970: Double(Int64(bitPattern: record.time_ns) &+ wallClockOffset) / 1e9)
        self.owner = owner
        let ipv6 = record.family == UInt16(AF_INET6)
        family = ipv6 ? 6 : 4
        proto = record.protocol == UInt8(IPPROTO_UDP) ? "udp" : "tcp"
        source = Self.address(record.saddr, ipv6: ipv6)
        destination = Self.address(record.daddr, ipv6: ipv6)
        sourcePort = record.sport
        destinationPort = record.dport
        reason = reasons.name(record.reason)
        reasonWords = reasons.words(record.reason)
        state = TCPStates.name(record.state)
        var name = [CChar](repeating: 0, count: Int(IF_NAMESIZE) + 1)
        interface = if_indextoname(record.ifindex, &name) != nil ? Self.text(name) : nil
    }

    static func address<T>(_ bytes: T, ipv6: Bool) -> String {
        withUnsafeBytes(of: bytes) { raw in
            var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
            guard inet_ntop(ipv6 ? AF_INET6 : AF_INET, raw.baseAddress, &text, socklen_t(text.count)) != nil else { return "?" }
            return Self.text(text)
        }
    }

    /// A NUL-terminated C string in a buffer, as text.
    static func text(_ buffer: [CChar]) -> String {
        String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// Drops and summaries as `netacct drops` prints them (README.md documents the JSON keys).
public enum DropsRenderer {
    public static let header = "TIME     PID     COMM             IP SADDR:SPORT > DADDR:DPORT                    PROTO REASON                    STATE\n"

    static func endpoint(_ address: String, _ port: UInt16, family: Int) -> String {
        family == 6 ? "[\(address)]:\(port)" : "\(address):\(port)"
    }

    public static func row(_ drop: Drop) -> String {
        let route = endpoint(drop.source, drop.sourcePort, family: drop.family) + " > " + endpoint(drop.destination, drop.destinationPort, family: drop.family)
        return [Units.clock(drop.time), Units.pad(drop.owner.map { String($0.pid) } ?? "-", 7, left: true),
                Units.pad(String((drop.owner?.comm ?? "-").prefix(16)), 16, left: true), "\(drop.family) ",
                Units.pad(route, 40, left: true), Units.pad(drop.proto, 5, left: true),
                Units.pad(drop.reasonWords, 25, left: true), drop.state ?? "-"].joined(separator: " ") + "\n"
    }

    static func timestamp(_ time: Date) -> String {
        time.formatted(.iso8601.year().month().day().time(includingFractionalSeconds: true).timeZone(separator: .omitted))
    }

    public static func json(_ drop: Drop) -> String {
        var out = JSONWriter()
        out.begin("{")
        out.field("time", string: timestamp(drop.time))
        if let owner = drop.owner {
            out.field("pid", number: String(owner.pid))
            out.field("comm", string: owner.comm)
        } else {
            out.field("pid", number: "null")
            out.field("comm", number: "null")
        }
        out.field("family", number: String(drop.family))
        out.field("protocol", string: drop.proto)
        out.field("saddr", string: drop.source)
        out.field("sport", number: String(drop.sourcePort))
        out.field("daddr", string: drop.destination)
        out.field("dport", number: String(drop.destinationPort))
        out.field("reason", string: drop.reason)
        if let state = drop.state { out.field("state", string: state) } else { out.field("state", number: "null") }
        if let interface = drop.interface { out.field("ifname", string: interface) } else { out.field("ifname", number: "null") }
        out.end("}")
        return out.text + "\n"
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
        }
        public var time: Date
        public var seconds: Double
        public var rows: [Row]
    }

    public static func summaryTable(_ interval: Interval) -> String {
        let total = interval.rows.reduce(0) { $0 + $1.count }
        var lines = ["\(Units.clock(interval.time))  (\(Units.seconds(interval.seconds)))  \(total) drops",
                     "  COUNT PROTO REASON                    PID     COMM"]
        for row in interval.rows {
            lines.append([Units.pad(String(row.count), 7), Units.pad(row.proto, 5, left: true), Units.pad(row.reasonWords, 25, left: true),
                          Units.pad(row.unattributed ? "?" : row.owner.map { String($0.pid) } ?? "-", 7, left: true),
                          row.owner?.comm ?? "-"].joined(separator: " "))
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
            out.end("}")
        }
        out.end("]")
        out.end("}")
        return out.text + "\n"
    }
}
