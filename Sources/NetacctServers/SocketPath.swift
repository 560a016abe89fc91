import Glibc
import Accounting
import NetacctKit

/// Claims a Unix socket path for a server: refuses when another server answers there,
/// reclaims a stale socket file left by a crashed one, and never deletes anything that is
/// not a socket, nor a socket another server made.
///
/// Two servers starting together are kept apart by a lock file beside the socket
/// (`PATH.lock`, `flock(2)`), held for as long as the server runs: checking, reclaiming and
/// binding happen under it, so the second can never delete the first's live socket. The lock
/// file stays when the server stops (deleting it would let a third server lock another file
/// while the second waits on this one); it holds nothing.
public enum SocketPath {
    public enum Claim: Equatable, Sendable {
        case free
        case reclaimedStale
    }

    /// The claim on a path: its lock, held until `release`.
    public final class Lease {
        public let path: String
        public let claim: Claim
        private var lock: Int32
        /// The socket file this server bound, once `bound()` says so, held open (O_PATH): an
        /// inode number is reused as soon as its file is gone, and holding it keeps the number
        /// this file's, so a file someone puts at the path later always differs.
        private var socketFile: Int32 = -1
        /// open(2)'s O_PATH (Linux), which Swift's Glibc module leaves out (a GNU extension).
        private static let openPathOnly: Int32 = 0o10000000

        init(path: String, claim: Claim, lock: Int32) {
            self.path = path
            self.claim = claim
            self.lock = lock
        }

        /// Records the socket file the server has just bound and set up at the path.
        public func bound() throws {
            let fd = open(path, Self.openPathOnly | O_NOFOLLOW | O_CLOEXEC)
            guard fd >= 0 else {
                throw NetacctError("Cannot open the socket \(path) netacct has just made: \(String(cString: strerror(errno))).", kind: .failure)
            }
            // Between bind and this open someone may have put a file at the path: that file is
            // not ours to remove at the end.
            var info = stat()
            guard fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFSOCK else {
                close(fd)
                return
            }
            socketFile = fd
        }

        /// Removes the socket file if it is still the one this server bound (not a file or a
        /// socket someone put there since), then lets go of the lock.
        public func release() {
            if socketFile >= 0 {
                var ours = stat(), there = stat()
                if fstat(socketFile, &ours) == 0, lstat(path, &there) == 0,
                   ours.st_dev == there.st_dev, ours.st_ino == there.st_ino {
                    unlink(path)
                }
                close(socketFile)
                socketFile = -1
            }
            if lock >= 0 {
                close(lock)
                lock = -1
            }
        }

        deinit { release() }
    }

    public static func lockPath(for path: String) -> String { path + ".lock" }

    public static func claim(_ path: String) throws -> Lease {
        let lockPath = lockPath(for: path)
        let lock = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard lock >= 0 else {
            throw NetacctError("Cannot open the lock file \(lockPath): \(String(cString: strerror(errno))).", kind: .failure)
        }
        guard flock(lock, LOCK_EX | LOCK_NB) == 0 else {
            let reason = errno
            close(lock)
            if reason == EWOULDBLOCK {
                throw NetacctError("Another netacct daemon holds \(lockPath): it is serving \(path) or starting to. Stop it first, or choose another path with --socket.")
            }
            throw NetacctError("Cannot lock \(lockPath): \(String(cString: strerror(reason))).", kind: .failure)
        }
        do {
            return Lease(path: path, claim: try claimLocked(path), lock: lock)
        } catch {
            close(lock)
            throw error
        }
    }

    private static func claimLocked(_ path: String) throws -> Claim {
        var info = stat()
        if lstat(path, &info) != 0 {
            if errno == ENOENT { return .free }
            throw NetacctError("Cannot use \(path): \(String(cString: strerror(errno))).", kind: .failure)
        }
        guard (info.st_mode & S_IFMT) == S_IFSOCK else {
            throw NetacctError("\(path) exists and is not a socket; netacct will not delete it. Remove it or choose another path with --socket.")
        }
        if try answers(path) {
            throw NetacctError("Another server (a netacct daemon or netatop-bpf) is already serving \(path). Stop it first, or choose another path with --socket.")
        }
        guard unlink(path) == 0 || errno == ENOENT else {
            throw NetacctError("Cannot remove the stale socket \(path): \(String(cString: strerror(errno))).", kind: .failure)
        }
        return .reclaimedStale
    }

    /// Whether something accepts connections on the socket at `path`.
    static func answers(_ path: String) throws -> Bool {
        do {
            _ = try UnixSocket.connect(path)
            return true
        } catch let error as UnixSocket.ConnectError where error.isRefusedOrAbsent {
            return false
        }
    }

    /// Who may connect: the owner (root) only, or also a group.
    public static func restrict(_ path: String, group: String?) throws {
        guard let group else {
            guard chmod(path, 0o600) == 0 else { throw NetacctError("chmod \(path): \(String(cString: strerror(errno)))", kind: .failure) }
            return
        }
        guard let entry = getgrnam(group) else { throw NetacctError("No group named \(group) (--group).") }
        guard chown(path, getuid(), entry.pointee.gr_gid) == 0, chmod(path, 0o660) == 0 else {
            throw NetacctError("Cannot give group \(group) access to \(path): \(String(cString: strerror(errno))).", kind: .failure)
        }
    }
}
