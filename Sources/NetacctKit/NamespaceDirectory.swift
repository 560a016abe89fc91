import CGlibcExtras
import Glibc

/// Which network namespaces a tool covers: the one netacct runs in (the default, as when run
/// under `ip netns exec`), one other (`--netns`), or every one of the host (`-A`,
/// `--all-namespaces`, kubectl's spelling), including those made while it runs.
public enum NamespaceScope: Sendable, Equatable {
    case current
    case one(path: String, inode: UInt32)
    case all

    /// `--netns X`: a name in /run/netns (`ip netns add X`), a PID (`/proc/X/ns/net`) or a path
    /// to a namespace file; an error that says which of them was tried when none opens.
    public static func named(_ text: String) throws -> NamespaceScope {
        let path: String
        if text.contains("/") {
            path = text
        } else if let pid = Int32(text), pid > 0 {
            path = "/proc/\(pid)/ns/net"
        } else {
            path = "/run/netns/\(text)"
        }
        var info = stat()
        guard stat(path, &info) == 0 else {
            let named = Self.names()
            let known = named.isEmpty ? "/run/netns has none" : "named ones: \(named.joined(separator: ", "))"
            throw NetacctError("No network namespace \(text) (\(path): \(String(cString: strerror(errno)))); --netns takes a name in /run/netns, a PID or a path (\(known)).", kind: .badInput)
        }
        // A namespace file is on nsfs; a PID's link resolves to one.
        guard info.st_mode & S_IFMT == S_IFREG || info.st_mode & S_IFMT == S_IFLNK, NetworkNamespace.isNamespace(path) else {
            throw NetacctError("\(path) is not a network namespace (--netns \(text)).", kind: .badInput)
        }
        return .one(path: path, inode: UInt32(truncatingIfNeeded: info.st_ino))
    }

    /// The names in /run/netns, sorted.
    static func names() -> [String] {
        guard let directory = opendir("/run/netns") else { return [] }
        defer { closedir(directory) }
        var names: [String] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if !name.hasPrefix(".") { names.append(name) }
        }
        return names.sorted()
    }

    /// The inode the BPF programs keep to (`netns_inum`): 0 for every namespace.
    public var filterInode: UInt32 {
        switch self {
        case .current: NetworkNamespace.inode()
        case .one(_, let inode): inode
        case .all: 0
        }
    }

    /// Whether what is shown names its namespace (anything but the default, whose output stays
    /// as it always was).
    public var labelled: Bool { self != .current }
}

/// A network namespace as the tools name it: its inode number (what `lsns -t net` and
/// `/proc/PID/ns/net` show), its name where /run/netns has one, and what runs in it: the
/// container, pod or systemd unit of its processes (as `top --by cgroup` names cgroups), when
/// they agree on one. The host's own namespace (PID 1's; netacct's own where PID 1's cannot be
/// read) is `host`.
public struct NamespaceLabel: Sendable, Hashable {
    public var inode: UInt32
    public var name: String?
    public var workload: Workload?
    public var isHost: Bool

    public init(inode: UInt32, name: String? = nil, workload: Workload? = nil, isHost: Bool = false) {
        (self.inode, self.name, self.workload, self.isHost) = (inode, name, workload, isHost)
    }

    /// The shortest name a table shows: the /run/netns name, else the container, pod or unit,
    /// else `host`, else the inode.
    public var display: String {
        if let name { return name }
        if let workload { return workload.name }
        return isHost ? "host" : String(inode)
    }

    /// `"netns":{"inode":…,"name":…,"container":…,"pod":…,"unit":…,"host":…}` (absent names null).
    public func write(into out: inout JSONWriter) {
        out.key("netns")
        out.begin("{")
        out.field("inode", number: String(inode))
        out.field("name", string: name)
        for kind in [Workload.Kind.container, .pod, .unit] {
            out.field(kind.rawValue, string: workload?.kind == kind ? workload?.name : nil)
        }
        out.field("host", bool: isHost)
        out.end("}")
    }

    /// The Prometheus labels: `netns`, its /run/netns name or else its inode (one per namespace:
    /// two namespaces of one unit's processes are two series), and, where known, the workload's
    /// kind (`container`, `pod`, `unit`) with its name.
    public var metricLabels: [(String, String)] {
        var labels = [("netns", name ?? String(inode))]
        if let workload, workload.kind != .other { labels.append((workload.kind.rawValue, workload.name)) }
        return labels
    }
}

/// The network namespaces a tool covers, followed: each `refresh()` finds the namespaces that
/// appeared (a process in a new one, a new name in /run/netns) and those gone (no process and no
/// name left), and names each by what runs in it. For `.all` it reads /proc's directory each time
/// and, of each process, its namespace and cgroup only in its first few refreshes (a process
/// entering a namespace does so as it starts, `ip netns exec`'s way; `unshare` the same), so a
/// refresh on a quiet host costs a directory walk.
public struct NamespaceDirectory {
    public struct Entry: Sendable {
        public var label: NamespaceLabel
        /// A path that opens it (`/run/netns/NAME` or `/proc/PID/ns/net`).
        public var path: String
        public init(label: NamespaceLabel, path: String) { (self.label, self.path) = (label, path) }
    }

    public let scope: NamespaceScope
    public private(set) var entries: [UInt32: Entry] = [:]
    /// A process as the walks know it: its namespace, its cgroup's path, how many more refreshes
    /// read them again, and when it started (read once: the oldest in a namespace names it).
    private struct Member {
        var netns: UInt32
        var cgroup: String?
        var checks: Int
        var start: UInt64
    }
    private var processes: [Int32: Member] = [:]
    private let cgroupRoot: String? = CgroupNames.mountPoint()
    /// PID 1's, or where it cannot be read (a sandbox's PID 1 of another user namespace) netacct's own.
    private let hostInode: UInt32? = NetworkNamespace.inode(ofProcess: 1) ?? NetworkNamespace.inode()
    public let ownInode = NetworkNamespace.inode()
    /// Refreshes that re-read a new process's namespace and cgroup.
    static let checksPerProcess = 3
    /// Interface names per namespace, by ifindex, and when each was last read.
    private var interfaceNames: [UInt32: (read: Double, names: [UInt32: String])] = [:]

    public init(scope: NamespaceScope) {
        self.scope = scope
        _ = refresh()
    }

    /// The label of namespace `inode` (an unknown one: its inode only).
    public func label(_ inode: UInt32) -> NamespaceLabel {
        entries[inode]?.label ?? NamespaceLabel(inode: inode, isHost: inode == hostInode)
    }

    /// The name of interface `ifindex` of namespace `netns` (read at most once a second per
    /// namespace: by rtnetlink, inside it), nil when unknown.
    public mutating func interfaceName(_ ifindex: UInt32, netns: UInt32) -> String? {
        if let name = interfaceNames[netns]?.names[ifindex] { return name }
        let now = StopSignals.now()
        guard let entry = entries[netns], now - (interfaceNames[netns]?.read ?? -.infinity) >= 1 else { return nil }
        let interfaces = (try? NetworkInterface.all(inNamespace: entry.path, inode: netns)) ?? []
        interfaceNames[netns] = (now, Dictionary(interfaces.map { ($0.ifindex, $0.name) }, uniquingKeysWith: { a, _ in a }))
        return interfaceNames[netns]?.names[ifindex]
    }

    /// Reads what exists now; returns the namespaces that appeared and those that went.
    public mutating func refresh() -> (appeared: [Entry], gone: [Entry]) {
        var found: [UInt32: Entry] = [:]
        switch scope {
        case .current:
            found[ownInode] = Entry(label: NamespaceLabel(inode: ownInode, isHost: ownInode == hostInode), path: "/proc/self/ns/net")
        case .one(let path, let inode):
            if NetworkNamespace.isNamespace(path) { found[inode] = Entry(label: NamespaceLabel(inode: inode, isHost: inode == hostInode), path: path) }
            _ = walkProcesses() // to name it by what runs in it
        case .all:
            for (netns, path) in walkProcesses() {
                found[netns] = Entry(label: NamespaceLabel(inode: netns, isHost: netns == hostInode), path: path)
            }
        }
        if scope != .current {
            let names = Self.named()
            if scope == .all {
                for (inode, name) in names {
                    found[inode, default: Entry(label: NamespaceLabel(inode: inode, isHost: inode == hostInode), path: "")].path = "/run/netns/\(name)"
                }
            }
            name(&found, names)
        }
        let appeared = found.filter { entries[$0.key] == nil }.map(\.value)
        let gone = entries.filter { found[$0.key] == nil }.map(\.value)
        for entry in gone { interfaceNames[entry.label.inode] = nil }
        entries = found
        return (appeared.sorted { $0.label.inode < $1.label.inode }, gone.sorted { $0.label.inode < $1.label.inode })
    }

    /// Walks /proc: each process's namespace and cgroup (read in its first few walks only),
    /// kept in `processes`; returns each namespace with a process in it, and a path to it. Each
    /// path is checked now (one link read per namespace): a process caught in a namespace it
    /// only visited (a tool's thread in `setns`, as netacct's own do) or that moved since is read
    /// again, and its namespace is not kept on its word.
    private mutating func walkProcesses() -> [UInt32: String] {
        var members: [UInt32: [Int32]] = [:]
        var seen: [Int32: Member] = [:]
        seen.reserveCapacity(processes.count)
        if let proc = opendir("/proc") {
            defer { closedir(proc) }
            while let entry = readdir(proc) {
                guard let pid = Self.pid(entry) else { continue }
                var known = processes[pid]
                if known == nil || known!.checks > 0 {
                    guard let netns = NetworkNamespace.inode(ofProcess: pid) else { continue }
                    known = Member(netns: netns, cgroup: cgroupRoot.flatMap { _ in Self.cgroupPath(of: pid) },
                                   checks: (known?.checks ?? Self.checksPerProcess) - 1, start: known?.start ?? ProcessStart.ticks(pid) ?? 0)
                }
                guard let process = known else { continue }
                seen[pid] = process
                members[process.netns, default: []].append(pid)
            }
        }
        var found: [UInt32: String] = [:]
        for (netns, pids) in members {
            for pid in pids {
                guard let now = NetworkNamespace.inode(ofProcess: pid) else {
                    seen[pid] = nil
                    continue
                }
                if found[now] == nil { found[now] = "/proc/\(pid)/ns/net" }
                if now == netns { break }
                seen[pid]?.netns = now
                seen[pid]?.checks = Self.checksPerProcess
            }
        }
        processes = seen
        return found
    }

    /// The namespaces /run/netns names (`ip netns add`), by inode: the first name of each.
    static func named() -> [UInt32: String] {
        var names: [UInt32: String] = [:]
        for name in NamespaceScope.names() {
            var info = stat()
            guard stat("/run/netns/\(name)", &info) == 0 else { continue }
            let inode = UInt32(truncatingIfNeeded: info.st_ino)
            if names[inode] == nil { names[inode] = name }
        }
        return names
    }

    /// Gives each namespace its /run/netns name and the workload its processes agree on.
    private func name(_ found: inout [UInt32: Entry], _ names: [UInt32: String]) {
        var paths: [UInt32: Set<String>] = [:]
        var oldest: [UInt32: (start: UInt64, pid: Int32, cgroup: String)] = [:]
        for (pid, process) in processes {
            guard let cgroup = process.cgroup else { continue }
            paths[process.netns, default: []].insert(cgroup)
            if let first = oldest[process.netns], (first.start, first.pid) <= (process.start, pid) { continue }
            oldest[process.netns] = (process.start, pid, cgroup)
        }
        for inode in found.keys {
            found[inode]!.label.name = names[inode]
            found[inode]!.label.workload = found[inode]!.label.isHost || oldest[inode] == nil
                ? nil : Self.workload(of: paths[inode] ?? [], oldest: oldest[inode]!.cgroup)
        }
    }

    /// The workload of a namespace whose processes are in cgroups `paths`, `oldest` the oldest
    /// process's: what made the namespace, a pod's or a container's, or neither.
    /// - The oldest in a pod: the pod, when its pods' processes are all in it and no container
    ///   outside it shares the namespace.
    /// - The oldest in a container: the container, when its containers' processes are all in it.
    /// - Otherwise: the one unit every process is in, and none when a container or pod is there.
    /// A process in no pod or container (`ip netns exec`, `nsenter -n` from a host's shell) is a
    /// guest in a pod's or a container's namespace and does not take its name from it; a container
    /// that joins a namespace something else made (`--network host`, `--network ns:PATH`) does not
    /// give it its name either.
    static func workload(of paths: Set<String>, oldest: String) -> Workload? {
        func pod(_ path: String) -> String? {
            path.split(separator: "/").reduce(nil) { found, component in Workload.podUID(String(component)) ?? found }
        }
        var pods: Set<String> = [], containers: Set<String> = [], units: Set<String> = []
        var containersOutsidePods = false
        for path in paths {
            let workload = Workload(path: path), uid = pod(path)
            if let uid { pods.insert(uid) } else if workload.kind == .container { containersOutsidePods = true }
            if workload.kind == .container { containers.insert(workload.name) }
            units.insert(workload.kind == .unit ? workload.name : "")
        }
        if pod(oldest) != nil {
            return pods.count == 1 && !containersOutsidePods ? Workload(kind: .pod, name: pods.first!) : nil
        }
        if Workload(path: oldest).kind == .container {
            return pods.isEmpty && containers.count == 1 ? Workload(kind: .container, name: containers.first!) : nil
        }
        if containers.isEmpty, pods.isEmpty, units.count == 1, let unit = units.first, !unit.isEmpty { return Workload(kind: .unit, name: unit) }
        return nil
    }

    static func pid(_ entry: UnsafeMutablePointer<dirent>) -> Int32? {
        withUnsafeBytes(of: entry.pointee.d_name) { raw in
            guard let first = raw.first, first >= UInt8(ascii: "1"), first <= UInt8(ascii: "9") else { return nil }
            return Int32(String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self))
        }
    }

    /// The cgroup v2 path of a process (`0::/system.slice/x.service`), nil when gone.
    static func cgroupPath(of pid: Int32) -> String? {
        let fd = open("/proc/\(pid)/cgroup", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 4096)
        let count = read(fd, &buffer, buffer.count)
        guard count > 0 else { return nil }
        for line in buffer[..<count].split(separator: UInt8(ascii: "\n")) where line.starts(with: Array("0::".utf8)) {
            return String(decoding: line.dropFirst(3), as: UTF8.self)
        }
        return nil
    }
}

extension NetworkNamespace {
    /// Whether `path` opens a network namespace (a file of nsfs whose type is CLONE_NEWNET).
    public static func isNamespace(_ path: String) -> Bool {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        return netacct_namespace_type(fd) == 0x4000_0000 // CLONE_NEWNET
    }
}
