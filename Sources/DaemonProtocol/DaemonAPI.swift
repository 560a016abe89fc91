import FoundationEssentials
import NetacctKit

/// The daemon's local API, for `netacct top` and other local programs: a Unix stream socket
/// where each request is a line naming a verb, one per collector the daemon hosts, and each
/// reply is one JSON line: `{"version":1,"verb":…,` + the fields of the verb's reply record +
/// `}`, or `{"version":1,"error":…}`. Field names are snake_case, those of the tools' `--json`;
/// the records (Records.swift) are Codable both ways: the daemon writes them through
/// `JSONWriter`, a client reads them with `JSONDecoder` (`Connection`).
public enum DaemonAPI {
    public static let defaultSocket = "/run/netacct.sock"
    /// The version of the replies' layout; a client refuses another.
    public static let version = 1

    /// What a request names: a collector's verb. A new collector adds its case here and its
    /// `DaemonReply` record in Records.swift.
    public enum Verb: String, CaseIterable, Codable, Sendable, CustomStringConvertible {
        /// The accounting collector, always hosted: `ProcessesReply`.
        case processes
        /// Per-socket counting (`--connections`): `SocketsReply`.
        case sockets
        /// The nic collector (`--nic`): `NICReply`.
        case nic
        /// The latency collector (`--latency`): `LatencyReply`.
        case latency
        /// The drops collector (`--drops`): `DropsReply`.
        case drops
        /// The connection-events collector (`--connection-events`): `ConnectionEventsReply`.
        case connectionEvents = "connection_events"
        /// The wire collector (`--wire`): `WireReply`.
        case wire
        /// The TCP health collector (`--tcp`): `TCPHealthReply`.
        case tcp

        /// The request line, newline included.
        public var line: String { rawValue + "\n" }
        /// As requests name it (`connection_events`).
        public var description: String { rawValue }
    }

    /// The word a request line names: blanks around it and a CR before the newline dropped.
    public static func word(of line: String) -> String {
        String(line.drop { $0 == " " || $0 == "\t" }.reversed().drop { $0 == " " || $0 == "\t" || $0 == "\r" }.reversed())
    }

    /// A reply line, newline included: the version, the verb, then `reply`'s fields.
    public static func line<Reply: DaemonReply>(_ reply: Reply) throws -> [UInt8] {
        var out = JSONWriter()
        out.begin("{")
        out.field("version", number: version)
        out.field("verb", string: Reply.verb.rawValue)
        try out.fields(of: reply)
        out.end("}")
        out.newline()
        return out.bytes
    }

    /// An error reply line, newline included.
    public static func errorLine(_ message: String) throws -> [UInt8] {
        var out = JSONWriter()
        try out.encode(ErrorReply(error: message))
        out.newline()
        return out.bytes
    }

    /// The error of a request that names no hosted collector.
    public static func unknownRequest(_ word: String, hosted: [Verb]) -> String {
        let shown = word.count > 64 ? String(word.prefix(64)) + "…" : word
        return "unknown request \"\(shown)\" (requests: \(hosted.map(\.rawValue).joined(separator: ", ")))"
    }

    /// Reads a reply line (without its newline) of this API version; an error reply throws an
    /// error of kind `refused`.
    public static func decode<Reply: DaemonReply>(_: Reply.Type, from line: Data, refused: ErrorKind = .failure) throws -> Reply {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        let reply: Envelope<Reply>
        do {
            reply = try decoder.decode(Envelope<Reply>.self, from: line)
        } catch {
            throw NetacctError("The netacct daemon sent a reply this netacct does not understand: \(error)", kind: .failure)
        }
        guard reply.version == version else {
            throw NetacctError("The netacct daemon speaks version \(reply.version) of its API, this netacct version \(version): use the same netacct for both.", kind: .failure)
        }
        if let error = reply.error {
            throw NetacctError("The netacct daemon refused the request: \(error)", kind: refused)
        }
        guard let body = reply.body else { throw NetacctError("The netacct daemon sent an empty reply.", kind: .failure) }
        return body
    }

    /// A reply as read: the version and error first, the verb's fields only when they are of
    /// this version and no error.
    struct Envelope<Reply: Decodable>: Decodable {
        var version: Int
        var error: String?
        var body: Reply?
        enum CodingKeys: CodingKey { case version, error }
        init(from decoder: any Decoder) throws {
            let fields = try decoder.container(keyedBy: CodingKeys.self)
            version = try fields.decode(Int.self, forKey: .version)
            error = try fields.decodeIfPresent(String.self, forKey: .error)
            body = version == DaemonAPI.version && error == nil ? try Reply(from: decoder) : nil
        }
    }
}

/// The error reply: `{"version":1,"error":…}`.
public struct ErrorReply: Codable, Equatable, Sendable {
    public var version: Int
    public var error: String
    public init(version: Int = DaemonAPI.version, error: String) {
        self.version = version
        self.error = error
    }
}
