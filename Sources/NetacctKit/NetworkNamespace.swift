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

    /// The inode of process `pid`'s network namespace, nil when it cannot be read (gone).
    public static func inode(ofProcess pid: Int32) -> UInt32? {
        var info = stat()
        guard stat("/proc/\(pid)/ns/net", &info) == 0 else { return nil }
        return UInt32(truncatingIfNeeded: info.st_ino)
    }

    /// Runs `body` on the calling thread inside the network namespace at `path`
    /// (`/proc/PID/ns/net`, `/run/netns/NAME`), and brings the thread back to its own after.
    public static func within<T>(_ path: String, _ body: () throws -> T) throws -> T {
        let target = open(path, O_RDONLY | O_CLOEXEC)
        guard target >= 0 else { throw NetacctError("Cannot open the network namespace \(path): \(String(cString: strerror(errno)))", kind: .failure) }
        defer { close(target) }
        let home = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC)
        guard home >= 0 else { throw NetacctError("Cannot open this thread's network namespace: \(String(cString: strerror(errno)))", kind: .failure) }
        defer { close(home) }
        guard netacct_enter_network_namespace(target) == 0 else {
            throw NetacctError("Cannot enter the network namespace \(path): \(String(cString: strerror(errno)))", kind: .failure)
        }
        defer {
            // A thread left in another namespace would count the wrong one from then on.
            precondition(netacct_enter_network_namespace(home) == 0, "cannot return to this thread's network namespace: errno \(errno)")
        }
        return try body()
    }

    /// Every network namespace with a process in it or a name in /run/netns, by inode: a path
    /// that opens each. `cache` keeps each PID's namespace from one call to the next (a
    /// namespace's processes do not move, and a new PID is read once).
    public static func all(cache: inout [Int32: UInt32]) -> [UInt32: String] {
        var found: [UInt32: String] = [:]
        var seen: [Int32: UInt32] = [:]
        if let proc = opendir("/proc") {
            defer { closedir(proc) }
            while let entry = readdir(proc) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
                guard let pid = Int32(name), let netns = cache[pid] ?? inode(ofProcess: pid) else { continue }
                seen[pid] = netns
                if found[netns] == nil { found[netns] = "/proc/\(pid)/ns/net" }
            }
        }
        cache = seen
        if let named = opendir("/run/netns") {
            defer { closedir(named) }
            while let entry = readdir(named) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
                var info = stat()
                guard !name.hasPrefix("."), stat("/run/netns/\(name)", &info) == 0 else { continue }
                let netns = UInt32(truncatingIfNeeded: info.st_ino)
                if found[netns] == nil { found[netns] = "/run/netns/\(name)" }
            }
        }
        return found
    }
}
