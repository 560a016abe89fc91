import FoundationEssentials
import Glibc
import NetacctKit

/// The daemon's local API, for `netacct top` and other local programs: a Unix stream socket
/// where each request is a line naming a verb, one per collector the daemon hosts, and each
/// reply is one JSON line: `{"version":1,"verb":…,…}` with the verb's fields, or
/// `{"version":1,"error":…}`. Field names are snake_case, those of the tools' `--json`.
///
/// The accounting collector's verb, `processes`, answers with every process's cumulative
/// counters (exited ones once, as for atop) and the losses since start:
/// ```
/// {"version":1,"verb":"processes","threads_kept":false,
///  "processes":[{"pid":…,"start_ns":…,"comm":…,"cgroup_id":…,"exited":false,
///                "tcp_tx_packets":…,…,"udp_rx_bytes":…,"threads":[{"tid":…,"start_ns":…,"comm":…,"exited":…,…}]}],
///  "losses":{"uncounted_calls":…,"dropped_exits":…,"unregistered_processes":…,"late_thread_exits":…,"forgotten_exits":…,
///            "uncounted_socket_calls":…}}
/// ```
public enum DaemonAPI {
    public static let defaultSocket = "/run/netacct.sock"
    /// The version of the replies' layout; a client refuses another.
    public static let version = 1
    /// The accounting collector's verb.
    public static let processesVerb = "processes"

    /// The fields of the `processes` reply, written by the daemon's accounting collector.
    public static func writeProcesses(_ processes: [ProcessTable.ProcessSample], losses: Snapshot.Losses, threadsKept: Bool,
                                      into out: inout JSONWriter) {
        out.field("threads_kept", number: threadsKept ? "true" : "false")
        out.key("processes")
        out.begin("[")
        for process in processes {
            out.begin("{")
            out.field("pid", number: String(process.id.pid))
            out.field("start_ns", number: String(process.id.startNanoseconds))
            out.field("comm", string: process.comm)
            out.field("cgroup_id", number: String(process.cgroupID))
            out.field("exited", number: process.exited ? "true" : "false")
            out.counters(process.total)
            if threadsKept {
                out.key("threads")
                out.begin("[")
                for thread in process.threads {
                    out.begin("{")
                    out.field("tid", number: String(thread.id.tid))
                    out.field("start_ns", number: String(thread.id.startNanoseconds))
                    out.field("comm", string: thread.comm)
                    out.field("exited", number: thread.exited ? "true" : "false")
                    out.counters(thread.total)
                    out.end("}")
                }
                out.end("]")
            }
            out.end("}")
        }
        out.end("]")
        out.key("losses")
        out.begin("{")
        out.field("uncounted_calls", number: String(losses.uncountedCalls))
        out.field("dropped_exits", number: String(losses.droppedExits))
        out.field("unregistered_processes", number: String(losses.unregisteredProcesses))
        out.field("late_thread_exits", number: String(losses.lateThreadExits))
        out.field("forgotten_exits", number: String(losses.forgottenExits))
        out.field("uncounted_socket_calls", number: String(losses.uncountedSocketCalls))
        out.end("}")
    }

    /// A `processes` reply, as a client reads it.
    public struct ProcessesReply: Sendable {
        /// Cumulative counters (deltas are zero: `DeltaTracker` makes them per interval).
        public var processes: [ProcessTable.ProcessSample]
        public var losses: Snapshot.Losses
        /// The daemon keeps per-thread rows (`netacct daemon --threads`).
        public var threadsKept: Bool
    }

    /// The layout of a reply line, decoded with snake_case keys.
    struct Line: Decodable, VersionedReply {
        struct Counters: Decodable {
            var tcpTxPackets, tcpTxBytes, tcpRxPackets, tcpRxBytes: UInt64
            var udpTxPackets, udpTxBytes, udpRxPackets, udpRxBytes: UInt64
            var traffic: Traffic {
                Traffic(tcpTxPackets: tcpTxPackets, tcpTxBytes: tcpTxBytes, tcpRxPackets: tcpRxPackets, tcpRxBytes: tcpRxBytes,
                        udpTxPackets: udpTxPackets, udpTxBytes: udpTxBytes, udpRxPackets: udpRxPackets, udpRxBytes: udpRxBytes)
            }
        }
        /// A thread or a process: its identity, then its counters in the same object.
        struct Thread: Decodable {
            var tid: Int32
            var startNs: UInt64
            var comm: String
            var exited: Bool
            var counters: Counters
            enum CodingKeys: String, CodingKey { case tid, startNs, comm, exited }
            init(from decoder: any Decoder) throws {
                let fields = try decoder.container(keyedBy: CodingKeys.self)
                tid = try fields.decode(Int32.self, forKey: .tid)
                startNs = try fields.decode(UInt64.self, forKey: .startNs)
                comm = try fields.decode(String.self, forKey: .comm)
                exited = try fields.decode(Bool.self, forKey: .exited)
                counters = try Counters(from: decoder)
            }
        }
        struct Process: Decodable {
            var pid: Int32
            var startNs: UInt64
            var comm: String
            var cgroupId: UInt64
            var exited: Bool
            var threads: [Thread]?
            var counters: Counters
            enum CodingKeys: String, CodingKey { case pid, startNs, comm, cgroupId, exited, threads }
            init(from decoder: any Decoder) throws {
                let fields = try decoder.container(keyedBy: CodingKeys.self)
                pid = try fields.decode(Int32.self, forKey: .pid)
                startNs = try fields.decode(UInt64.self, forKey: .startNs)
                comm = try fields.decode(String.self, forKey: .comm)
                cgroupId = try fields.decode(UInt64.self, forKey: .cgroupId)
                exited = try fields.decode(Bool.self, forKey: .exited)
                threads = try fields.decodeIfPresent([Thread].self, forKey: .threads)
                counters = try Counters(from: decoder)
            }
        }
        var version: Int
        var error: String?
        var threadsKept: Bool?
        var processes: [Process]?
        var losses: Snapshot.Losses?
    }

    /// Decodes a reply line (snake_case keys) of this API version; a refused request (an
    /// `error` reply) throws an error of kind `refused`.
    static func decode<Reply: Decodable & VersionedReply>(_: Reply.Type, _ line: Data, refused: ErrorKind = .failure) throws -> Reply {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        let reply: Reply
        do {
            reply = try decoder.decode(Reply.self, from: line)
        } catch {
            throw NetacctError("The netacct daemon sent a reply this netacct does not understand: \(error)", kind: .failure)
        }
        guard reply.version == version else {
            throw NetacctError("The netacct daemon speaks version \(reply.version) of its API, this netacct version \(version): use the same netacct for both.", kind: .failure)
        }
        if let error = reply.error {
            throw NetacctError("The netacct daemon refused the request: \(error)", kind: refused)
        }
        return reply
    }

    /// Reads one reply line of the `processes` verb.
    public static func decodeProcesses(_ line: Data) throws -> ProcessesReply {
        let reply = try decode(Line.self, line)
        let processes = (reply.processes ?? []).map { process in
            let id = ProcessID(pid: process.pid, startNanoseconds: process.startNs)
            let threads = (process.threads ?? []).map { thread in
                ProcessTable.ThreadSample(id: ThreadID(tid: thread.tid, startNanoseconds: thread.startNs, process: id), comm: thread.comm,
                                          exited: thread.exited, total: thread.counters.traffic, delta: .zero)
            }
            return ProcessTable.ProcessSample(id: id, comm: process.comm, cgroupID: process.cgroupId, exited: process.exited,
                                              total: process.counters.traffic, delta: .zero, threads: threads)
        }
        return ProcessesReply(processes: processes, losses: reply.losses ?? .init(), threadsKept: reply.threadsKept ?? false)
    }

    /// What every reply line has.
    protocol VersionedReply {
        var version: Int { get }
        var error: String? { get }
    }

    /// A blocking client connection to a running daemon.
    public final class Connection {
        private let socket: UnixSocket
        private var buffer: [UInt8] = []

        /// Connects to the daemon's API socket. Throws `UnixSocket.ConnectError` (no daemon
        /// listens there, or its socket is not open to this user).
        public init(path: String = DaemonAPI.defaultSocket) throws {
            socket = try UnixSocket.connect(path)
        }

        /// Every process's cumulative counters (`processes`).
        public func processes() throws -> ProcessesReply {
            try decodeProcesses(request(processesVerb))
        }

        /// Sends one request line and returns the reply line (without its newline).
        public func request(_ verb: String) throws -> Data {
            guard socket.send(Array("\(verb)\n".utf8)) else {
                throw NetacctError("The netacct daemon closed the connection (\(String(cString: strerror(errno)))).", kind: .failure)
            }
            while true {
                if let newline = buffer.firstIndex(of: 0x0A) {
                    let line = Data(buffer[..<newline])
                    buffer.removeSubrange(...newline)
                    return line
                }
                var chunk = [UInt8](repeating: 0, count: 1 << 16)
                let count = recv(socket.fd, &chunk, chunk.count, 0)
                if count < 0 && errno == EINTR { continue }
                guard count > 0 else { throw NetacctError("The netacct daemon closed the connection.", kind: .failure) }
                buffer.append(contentsOf: chunk[..<count])
            }
        }
    }
}

extension JSONWriter {
    /// A cgroup's object of `top --by cgroup --json` (and `/api/v1/cgroups`): its path (`null`
    /// once gone), name, kind, processes and the eight counters.
    public mutating func cgroup(path: String?, workload: Workload, processes: Int, traffic: Traffic) {
        begin("{")
        if let path { field("cgroup", string: path) } else { field("cgroup", number: "null") }
        field("name", string: workload.name)
        field("kind", string: workload.kind.rawValue)
        field("processes", number: String(processes))
        counters(traffic)
        end("}")
    }

    /// The eight counters, in the documented order (`--json` and the local API).
    public mutating func counters(_ t: Traffic) {
        field("tcp_tx_packets", number: String(t.tcpTxPackets))
        field("tcp_tx_bytes", number: String(t.tcpTxBytes))
        field("tcp_rx_packets", number: String(t.tcpRxPackets))
        field("tcp_rx_bytes", number: String(t.tcpRxBytes))
        field("udp_tx_packets", number: String(t.udpTxPackets))
        field("udp_tx_bytes", number: String(t.udpTxBytes))
        field("udp_rx_packets", number: String(t.udpRxPackets))
        field("udp_rx_bytes", number: String(t.udpRxBytes))
    }
}
