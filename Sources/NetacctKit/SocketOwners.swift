import Glibc

/// Who holds a socket, by its inode, as `ss -p` and nethogs find it: the processes' descriptors
/// in /proc (`socket:[INODE]`). It fills the kernel side's table of owners at start (sockets
/// made later are recorded there as their processes act on them), and answers for a socket the
/// kernel has no owner for.
public struct SocketOwners {
    public struct Owner: Sendable, Hashable {
        public var pid: Int32
        public var comm: String
        /// Its cgroup v2 id when it made the socket its own (0: unknown).
        public var cgroup: UInt64 = 0
        public init(pid: Int32, comm: String, cgroup: UInt64 = 0) { (self.pid, self.comm, self.cgroup) = (pid, comm, cgroup) }
    }

    private var owners: [UInt64: Owner] = [:]
    private var lastScan: Double = -.infinity
    /// At most one rescan for an unknown socket within this many seconds.
    private let rescanInterval: Double

    public init(rescanInterval: Double = 0.2) { self.rescanInterval = rescanInterval }

    /// The owner of socket `inode` (the lowest PID when several processes hold it); nil when no
    /// process holds it any more (or, within the rescan interval, not yet known).
    public mutating func owner(of inode: UInt64, now: Double) -> Owner? {
        if inode == 0 { return nil }
        if let owner = owners[inode] { return owner }
        guard now - lastScan >= rescanInterval else { return nil }
        rescan()
        lastScan = now
        return owners[inode]
    }

    /// Every socket known by the last scan, with its owner.
    public var known: [UInt64: Owner] { owners }

    /// Re-reads every process's descriptors.
    public mutating func rescan() {
        var found: [UInt64: Owner] = [:]
        guard let proc = opendir("/proc") else { return }
        defer { closedir(proc) }
        let cgroupRoot = CgroupNames.mountPoint()
        let prefix = Array("socket:[".utf8)
        var link = [CChar](repeating: 0, count: 64)
        while let entry = readdir(proc) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            guard let pid = Int32(name) else { continue }
            guard let fds = opendir("/proc/\(pid)/fd") else { continue }
            var owner: Owner?
            while let fd = readdir(fds) {
                let fdName = withUnsafeBytes(of: fd.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
                guard fdName.first?.isNumber == true else { continue }
                let count = readlink("/proc/\(pid)/fd/\(fdName)", &link, link.count)
                guard count > prefix.count + 1 else { continue }
                let target = link.prefix(count).map { UInt8(bitPattern: $0) }
                guard target.starts(with: prefix), let inode = UInt64(String(decoding: target[prefix.count..<(count - 1)], as: UTF8.self)) else { continue }
                if found[inode].map({ $0.pid > pid }) ?? true {
                    if owner == nil {
                        owner = Owner(pid: pid, comm: Self.comm(pid) ?? "?", cgroup: cgroupRoot.flatMap { CgroupNames.id(ofProcess: pid, root: $0) } ?? 0)
                    }
                    found[inode] = owner
                }
            }
            closedir(fds)
        }
        owners = found
    }

    static func comm(_ pid: Int32) -> String? {
        let fd = open("/proc/\(pid)/comm", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 64)
        let count = read(fd, &buffer, buffer.count)
        guard count > 0 else { return nil }
        return String(decoding: buffer.prefix(count).prefix { $0 != 0x0A }, as: UTF8.self)
    }
}
