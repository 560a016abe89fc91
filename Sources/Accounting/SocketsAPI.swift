import FoundationEssentials
import NetacctKit

/// The per-socket collector's verb of the daemon's local API (`netacct daemon --connections`):
/// every socket's cumulative counters as each process used it, closed ones once per client:
/// ```
/// {"version":1,"verb":"sockets","sockets":[{"pid":…,"start_ns":…,"cookie":…,"protocol":"tcp",
///  "family":"ipv4","laddr":…,"lport":…,"raddr":…|"*","rport":…|null,"tx_packets":…,"tx_bytes":…,
///  "rx_packets":…,"rx_bytes":…,"closed":false}]}
/// ```
extension DaemonAPI {
    public static let socketsVerb = "sockets"

    /// The fields of the `sockets` reply.
    public static func writeSockets(_ sockets: [SocketSample], into out: inout JSONWriter) {
        out.key("sockets")
        out.begin("[")
        for socket in sockets {
            out.begin("{")
            out.field("pid", number: String(socket.id.process.pid))
            out.field("start_ns", number: String(socket.id.process.startNanoseconds))
            out.field("cookie", number: String(socket.id.cookie))
            out.connection(socket, socket.total)
            out.end("}")
        }
        out.end("]")
    }

    struct SocketsLine: Decodable, VersionedReply {
        struct Socket: Decodable {
            var pid: Int32
            var startNs: UInt64
            var cookie: UInt64
            var `protocol`: String
            var family: String
            var laddr: String
            var lport: UInt16
            var raddr: String
            var rport: UInt16?
            var txPackets, txBytes, rxPackets, rxBytes: UInt64
            var closed: Bool
        }
        var version: Int
        var error: String?
        var sockets: [Socket]?
    }

    /// Reads one reply line of the `sockets` verb: cumulative samples (deltas zero).
    public static func decodeSockets(_ line: Data) throws -> [SocketSample] {
        let reply = try decode(SocketsLine.self, line, refused: .unsupported)
        return (reply.sockets ?? []).map { s in
            SocketSample(id: .init(cookie: s.cookie, process: ProcessID(pid: s.pid, startNanoseconds: s.startNs)),
                         transport: SocketSample.Transport(rawValue: s.protocol) ?? .tcp,
                         family: SocketSample.Family(rawValue: s.family) ?? .ipv4,
                         localAddress: s.laddr, localPort: s.lport, remoteAddress: s.raddr == "*" ? nil : s.raddr,
                         remotePort: s.rport ?? 0,
                         total: SocketTraffic(txPackets: s.txPackets, txBytes: s.txBytes, rxPackets: s.rxPackets, rxBytes: s.rxBytes),
                         closed: s.closed)
        }
    }
}

extension DaemonAPI.Connection {
    /// Every socket's cumulative counters (`sockets`); throws an `.unsupported` error when the
    /// daemon does not count per connection (started without --connections).
    public func sockets() throws -> [SocketSample] {
        try DaemonAPI.decodeSockets(request(DaemonAPI.socketsVerb))
    }
}

extension JSONWriter {
    /// A connection's fields in the documented order (`top --connections --json`, the API):
    /// protocol, family, endpoints (`"raddr":"*","rport":null` when not connected), the four
    /// counters of `traffic`, closed.
    public mutating func connection(_ socket: SocketSample, _ traffic: SocketTraffic) {
        field("protocol", string: socket.transport.rawValue)
        field("family", string: socket.family.rawValue)
        field("laddr", string: socket.localAddress)
        field("lport", number: String(socket.localPort))
        field("raddr", string: socket.remoteAddress ?? "*")
        field("rport", number: socket.remoteAddress == nil ? "null" : String(socket.remotePort))
        field("tx_packets", number: String(traffic.txPackets))
        field("tx_bytes", number: String(traffic.txBytes))
        field("rx_packets", number: String(traffic.rxPackets))
        field("rx_bytes", number: String(traffic.rxBytes))
        field("closed", number: socket.closed ? "true" : "false")
    }
}
