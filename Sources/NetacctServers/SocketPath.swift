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
        /// The option that set the path (`--socket`, `--api-socket`), for the messages about it.
        public let option: String
        public let claim: Claim
        private var lock: Int32
        /// The socket file this server bound, once `bound()` says so, held open (O_PATH): an
        /// inode number is reused as soon as its file is gone, and holding it keeps the number
        /// this file's, so a file someone puts at the path later always differs.
        private var socketFile: Int32 = -1
        /// open(2)'s O_PATH (Linux), which Swift's Glibc module leaves out (a GNU extension).
        private static let openPathOnly: Int32 = 0o10000000

        init(path: String, option: String, claim: Claim, lock: Int32) {
            self.path = path
            self.option = option
            self.claim = claim
            self.lock = lock
        }

        /// Records the socket file the server has just bound and set up at the path.
        public func bound() throws {
            let fd = open(path, Self.openPathOnly | O_NOFOLLOW | O_CLOEXEC)
            guard fd >= 0 else {
                throw NetacctError("Cannot open the socket \(path) (\(option)) netacct has just made: \(String(cString: strerror(errno))).", kind: .failure)
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

    /// The most bytes a socket's path may have (sun_path, its terminating zero left out).
    public static let longestPath = MemoryLayout.size(ofValue: sockaddr_un().sun_path) - 1

    /// Refuses a path no socket can have, naming the option that set it: an empty one (which
    /// would put the lock file in the current directory and bind an abstract socket), or one
    /// longer than a socket's address holds. Before anything is loaded or created.
    public static func check(_ path: String, option: String) throws {
        guard !path.isEmpty else { throw NetacctError("\(option) needs a path, not an empty string.") }
        guard path.utf8.count <= longestPath else {
            throw NetacctError("The socket path \(path) (\(option)) is too long: at most \(longestPath) bytes.")
        }
    }

    /// Claims `path`, which `option` set (`--socket`, `--api-socket`: the option the messages
    /// tell the user to change).
    public static func claim(_ path: String, option: String) throws -> Lease {
        try check(path, option: option)
        let lockPath = lockPath(for: path)
        let lock = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard lock >= 0 else {
            throw NetacctError("Cannot open the lock file \(lockPath) for \(path) (\(option)): \(String(cString: strerror(errno))).", kind: .failure)
        }
        guard flock(lock, LOCK_EX | LOCK_NB) == 0 else {
            let reason = errno
            close(lock)
            if reason == EWOULDBLOCK {
                throw NetacctError("Another netacct daemon holds \(lockPath): it is serving \(path) or starting to. Stop it first, or choose another path with \(option).")
            }
            throw NetacctError("Cannot lock \(lockPath) for \(path) (\(option)): \(String(cString: strerror(reason))).", kind: .failure)
        }
        do {
            return Lease(path: path, option: option, claim: try claimLocked(path, option: option), lock: lock)
        } catch {
            close(lock)
            throw error
        }
    }

    private static func claimLocked(_ path: String, option: String) throws -> Claim {
        var info = stat()
        if lstat(path, &info) != 0 {
            if errno == ENOENT { return .free }
            throw NetacctError("Cannot use \(path) (\(option)): \(String(cString: strerror(errno))).", kind: .failure)
        }
        guard (info.st_mode & S_IFMT) == S_IFSOCK else {
            throw NetacctError("\(path) exists and is not a socket; netacct will not delete it. Remove it or choose another path with \(option).")
        }
        if try answers(path) {
            throw NetacctError("Another server (a netacct daemon or netatop-bpf) is already serving \(path). Stop it first, or choose another path with \(option).")
        }
        guard unlink(path) == 0 || errno == ENOENT else {
            throw NetacctError("Cannot remove the stale socket \(path) (\(option)): \(String(cString: strerror(errno))).", kind: .failure)
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

    /// Who may connect to the socket at `path` (which `option` set): the owner (root) only,
    /// or also a group.
    public static func restrict(_ path: String, option: String, group: String?) throws {
        guard let group else {
            guard chmod(path, 0o600) == 0 else {
                throw NetacctError("Cannot make the socket \(path) (\(option)) private (chmod 600): \(String(cString: strerror(errno))).", kind: .failure)
            }
            return
        }
        guard let entry = getgrnam(group) else { throw NetacctError("No group named \(group) (--group).") }
        guard chown(path, getuid(), entry.pointee.gr_gid) == 0, chmod(path, 0o660) == 0 else {
            throw NetacctError("Cannot give group \(group) access to \(path) (\(option)): \(String(cString: strerror(errno))).", kind: .failure)
        }
    }
}
