import CGlibcExtras
import Glibc

/// The network namespace this process runs in: tools count only its devices and packets.
public enum NetworkNamespace {
    /// Its inode number (/proc/self/ns/net), which is what the kernel's `net->ns.inum` is.
    public static func inode() -> UInt32 {
        var info = stat()
        guard stat("/proc/self/ns/net", &info) == 0 else { return 0 }
        return UInt32(truncatingIfNeeded: info.st_ino)
    }

    /// The inode of process `pid`'s network namespace, nil when it cannot be read (gone). Read
    /// from the link's text (`net:[4026531840]`): following it (a stat) is refused where the
    /// link can still be read (PID 1 of a sandbox, say), and costs more.
    public static func inode(ofProcess pid: Int32) -> UInt32? {
        var link = [CChar](repeating: 0, count: 32)
        let count = readlink("/proc/\(pid)/ns/net", &link, link.count)
        guard count > 6 else { return nil }
        let text = link.prefix(count).map { UInt8(bitPattern: $0) }
        guard text.starts(with: Array("net:[".utf8)), text.last == UInt8(ascii: "]") else { return nil }
        return UInt32(String(decoding: text.dropFirst(5).dropLast(), as: UTF8.self))
    }

    /// Runs `body` on the calling thread inside the network namespace at `path`
    /// (`/proc/PID/ns/net`, `/run/netns/NAME`), and brings the thread back to its own after.
    /// `expecting`: the namespace's inode, checked on what `path` opened (a PID's path may be
    /// another process's by now, or the process may have moved).
    public static func within<T>(_ path: String, expecting inode: UInt32? = nil, _ body: () throws -> T) throws -> T {
        let target = open(path, O_RDONLY | O_CLOEXEC)
        guard target >= 0 else { throw NetacctError("Cannot open the network namespace \(path): \(String(cString: strerror(errno)))", kind: .failure) }
        defer { close(target) }
        if let inode {
            var info = stat()
            guard fstat(target, &info) == 0, UInt32(truncatingIfNeeded: info.st_ino) == inode else {
                throw NetacctError("\(path) is no longer network namespace \(inode)", kind: .failure)
            }
        }
        let home = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC)
        guard home >= 0 else { throw NetacctError("Cannot open this thread's network namespace: \(String(cString: strerror(errno)))", kind: .failure) }
        defer { close(home) }
        guard netacct_enter_network_namespace(target) == 0 else {
            let reason = errno
            let hint = reason == EPERM ? " (entering another network namespace needs CAP_SYS_ADMIN)" : ""
            throw NetacctError("Cannot enter the network namespace \(path): \(String(cString: strerror(reason)))\(hint)", kind: .failure)
        }
        defer {
            // A thread left in another namespace would count the wrong one from then on.
            precondition(netacct_enter_network_namespace(home) == 0, "cannot return to this thread's network namespace: errno \(errno)")
        }
        return try body()
    }
}
