import Glibc
import NetacctCore

/// Claims a Unix socket path for a server: refuses when another server answers there,
/// reclaims a stale socket file left by a crashed one, and never deletes anything that is
/// not a socket.
public enum SocketPath {
    public enum Claim: Equatable, Sendable {
        case free
        case reclaimedStale
    }

    public static func claim(_ path: String) throws -> Claim {
        var info = stat()
        if lstat(path, &info) != 0 {
            if errno == ENOENT { return .free }
            throw NetacctError("Cannot use \(path): \(String(cString: strerror(errno))).")
        }
        guard (info.st_mode & S_IFMT) == S_IFSOCK else {
            throw NetacctError("\(path) exists and is not a socket; netacct will not delete it. Remove it or choose another path with --socket.")
        }
        if try answers(path) {
            throw NetacctError("Another server (a netacct daemon or netatop-bpf) is already serving \(path). Stop it first, or choose another path with --socket.")
        }
        guard unlink(path) == 0 || errno == ENOENT else {
            throw NetacctError("Cannot remove the stale socket \(path): \(String(cString: strerror(errno))).")
        }
        return .reclaimedStale
    }

    /// Whether something accepts connections on the socket at `path`.
    static func answers(_ path: String) throws -> Bool {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw NetacctError("socket(AF_UNIX): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var address = try unixAddress(path)
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        return result == 0
    }

    static func unixAddress(_ path: String) throws -> sockaddr_un {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            throw NetacctError("The socket path \(path) is too long (at most \(MemoryLayout.size(ofValue: address.sun_path) - 1) bytes).")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        return address
    }

    /// Who may connect: the owner (root) only, or also a group.
    public static func restrict(_ path: String, group: String?) throws {
        guard let group else {
            guard chmod(path, 0o600) == 0 else { throw NetacctError("chmod \(path): \(String(cString: strerror(errno)))") }
            return
        }
        guard let entry = getgrnam(group) else { throw NetacctError("No group named \(group) (--group).") }
        guard chown(path, getuid(), entry.pointee.gr_gid) == 0, chmod(path, 0o660) == 0 else {
            throw NetacctError("Cannot give group \(group) access to \(path): \(String(cString: strerror(errno))).")
        }
    }
}
