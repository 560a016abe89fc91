import BPF
import Glibc

/// A connected Unix stream socket, closed when released: the one way netacct's clients (and
/// the daemon's check for a running server) connect to a local socket.
public final class UnixSocket {
    public let fd: Int32

    /// Why a connection failed, with the errno a caller can tell apart.
    public struct ConnectError: UserFacingError {
        public var path: String
        public var code: Int32
        /// Nothing listens there (no file, or a socket nobody serves).
        public var isRefusedOrAbsent: Bool { code == ECONNREFUSED || code == ENOENT }
        /// The socket file is not open to this user.
        public var isPermissionDenied: Bool { code == EACCES || code == EPERM }
        public var description: String { "Cannot connect to \(path): \(String(cString: strerror(code)))." }
        public var kind: ErrorKind { isPermissionDenied ? .permission : .failure }
    }

    private init(fd: Int32) { self.fd = fd }

    deinit { close(fd) }

    public static func connect(_ path: String) throws -> UnixSocket {
        var address = try address(path)
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw NetacctError("socket(AF_UNIX): \(String(cString: strerror(errno))).", kind: .failure) }
        let socket = UnixSocket(fd: fd)
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard result == 0 else { throw ConnectError(path: path, code: errno) }
        return socket
    }

    /// A socket bound at `path` and listening, for a server to take over (its file descriptor;
    /// the caller owns it, and the file at `path`). It is bound under a name of its own beside
    /// `path` and renamed there once it listens, so that a client that finds the file can
    /// always connect (one that came between the bind and the listen would be refused); a path
    /// too long for that name is bound directly.
    public static func listening(at path: String, backlog: Int32) throws -> Int32 {
        _ = try address(path)
        let staging = "\(path).\(getpid())"
        let direct = (try? address(staging)) == nil
        var address = try address(direct ? path : staging)
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { throw NetacctError("socket(AF_UNIX): \(String(cString: strerror(errno))).", kind: .failure) }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        var code: Int32 = 0
        if bound != 0 || listen(fd, backlog) != 0 {
            code = errno
            if bound == 0 && !direct { unlink(staging) }
        } else if !direct && rename(staging, path) != 0 {
            code = errno
            unlink(staging)
        }
        guard code == 0 else {
            close(fd)
            throw NetacctError("Cannot listen on \(path): \(String(cString: strerror(code))).",
                               kind: code == EACCES ? .permission : .badInput)
        }
        return fd
    }

    /// Waits at most `seconds` for each receive (0: forever).
    public func setReceiveTimeout(seconds: Int) {
        var timeout = timeval(tv_sec: seconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    /// Sends all of `bytes`; false if the peer has gone.
    @discardableResult
    public func send(_ bytes: [UInt8]) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let sent = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + offset, bytes.count - offset, Int32(MSG_NOSIGNAL)) }
            if sent < 0 && errno == EINTR { continue }
            guard sent > 0 else { return false }
            offset += sent
        }
        return true
    }

    static func address(_ path: String) throws -> sockaddr_un {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            throw NetacctError("The socket path \(path) is too long (at most \(MemoryLayout.size(ofValue: address.sun_path) - 1) bytes).")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        return address
    }
}
