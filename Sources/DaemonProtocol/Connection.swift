import FoundationEssentials
import Glibc
import NetacctKit

extension DaemonAPI {
    /// A blocking client connection to a running daemon.
    public final class Connection {
        private let socket: UnixSocket
        private var buffer: [UInt8] = []

        /// Connects to the daemon's API socket. Throws `UnixSocket.ConnectError` (no daemon
        /// listens there, or its socket is not open to this user).
        public init(path: String = DaemonAPI.defaultSocket) throws {
            socket = try UnixSocket.connect(path)
        }

        /// Asks for `Reply`'s verb and reads the reply. A refusal throws: of kind `failure` for
        /// `processes` (always hosted: the daemon could not read the kernel), `unsupported` for
        /// another verb (the daemon was started without that collector).
        public func request<Reply: DaemonReply>(_: Reply.Type) throws -> Reply {
            try DaemonAPI.decode(Reply.self, from: request(Reply.verb.rawValue), refused: Reply.verb == .processes ? .failure : .unsupported)
        }

        /// Every process's cumulative counters.
        public func processes() throws -> ProcessesReply { try request(ProcessesReply.self) }
        /// Every socket's cumulative counters (`netacct daemon --connections`).
        public func sockets() throws -> SocketsReply { try request(SocketsReply.self) }

        /// Sends one request line naming `word` and returns the reply line (without its newline).
        public func request(_ word: String) throws -> Data {
            guard socket.send(Array("\(word)\n".utf8)) else {
                throw NetacctError("The netacct daemon closed the connection (\(String(cString: strerror(errno)))).", kind: .failure)
            }
            var searched = 0
            while true {
                if let newline = buffer[searched...].firstIndex(of: 0x0A) {
                    let line = Data(buffer[..<newline])
                    buffer.removeSubrange(...newline)
                    return line
                }
                searched = buffer.count
                var chunk = [UInt8](repeating: 0, count: 1 << 16)
                let count = recv(socket.fd, &chunk, chunk.count, 0)
                if count < 0 && errno == EINTR { continue }
                guard count > 0 else { throw NetacctError("The netacct daemon closed the connection.", kind: .failure) }
                buffer.append(contentsOf: chunk[..<count])
            }
        }
    }
}
