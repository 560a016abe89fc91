import FoundationEssentials
import Glibc
import NetacctKit

/// The daemon's local API, for `netacct top` and other local programs: a Unix stream socket
/// where each request is a line ("sample\n") and each reply one JSON line with every process's
/// cumulative counters (exited ones once, as for atop) and the kernel side's losses.
public enum DaemonAPI {
    public static let defaultSocket = "/run/netacct.sock"

    public struct Reply: Codable, Sendable {
        public var processes: [ProcessTable.ProcessSample]
        public var losses: Snapshot.Losses
        /// The daemon keeps per-thread rows (`netacct daemon --threads`).
        public var threads: Bool
        public init(processes: [ProcessTable.ProcessSample], losses: Snapshot.Losses, threads: Bool) {
            self.processes = processes
            self.losses = losses
            self.threads = threads
        }
    }

    /// The reply to a request the daemon does not know, or cannot answer.
    public struct ErrorReply: Codable, Sendable {
        public var error: String
        public init(error: String) { self.error = error }
    }

    /// The requests the daemon answers, one per line.
    public enum Request: String, CaseIterable, Sendable {
        case sample
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

        public func sample() throws -> Reply {
            guard socket.send(Array("sample\n".utf8)) else {
                throw NetacctError("The netacct daemon closed the connection (\(String(cString: strerror(errno)))).", kind: .failure)
            }
            while true {
                if let newline = buffer.firstIndex(of: 0x0A) {
                    let line = Data(buffer[..<newline])
                    buffer.removeSubrange(...newline)
                    if let refusal = try? JSONDecoder().decode(ErrorReply.self, from: line) {
                        throw NetacctError("The netacct daemon refused the request: \(refusal.error)", kind: .failure)
                    }
                    do {
                        return try JSONDecoder().decode(Reply.self, from: line)
                    } catch {
                        throw NetacctError("The netacct daemon sent a reply this netacct does not understand: \(error)", kind: .failure)
                    }
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
