import FoundationEssentials
import Glibc

/// Names cgroup v2 ids (what BPF's bpf_get_current_cgroup_id returns: the inode number of
/// the cgroup's directory) as paths relative to the cgroup2 mount, e.g. `/system.slice/ssh.service`.
public struct CgroupNames: Sendable {
    /// Where cgroup2 is mounted: /sys/fs/cgroup, or /sys/fs/cgroup/unified on hybrid systems.
    public let root: String?
    private var paths: [UInt64: String] = [:]

    public init(mountInfo: String? = try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)) {
        root = mountInfo.flatMap(Self.cgroup2Mount)
        rescan()
    }

    /// Where cgroup2 is mounted, read now (without scanning the tree, as `init` does).
    public static func mountPoint() -> String? {
        (try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)).flatMap(cgroup2Mount)
    }

    /// Where cgroup2 is mounted, for a program attached to its root: or an error of kind
    /// `unsupported` saying what needs it (`what`, e.g. "Counting per connection"), why (`why`)
    /// and, with `otherwise`, what to do instead.
    public static func requireMountPoint(for what: String, because why: String, otherwise: String? = nil) throws -> String {
        guard let root = mountPoint() else {
            throw NetacctError("""
                \(what) needs a cgroup2 file system (\(why)), and /proc/self/mountinfo lists none. Mount one \
                (mount -t cgroup2 none /sys/fs/cgroup/unified)\(otherwise.map { " or \($0)" } ?? "").
                """, kind: .unsupported)
        }
        return root
    }

    /// The mount point of the first cgroup2 file system in a mountinfo text.
    static func cgroup2Mount(in mountInfo: String) -> String? {
        for line in mountInfo.split(separator: "\n") {
            // "36 25 0:30 / /sys/fs/cgroup rw,… shared:9 - cgroup2 cgroup2 rw,…": optional
            // fields end at the lone "-", then comes the file system type.
            let fields = line.split(separator: " ")
            guard let separator = fields.firstIndex(of: "-"), separator > 4,
                  fields.index(after: separator) < fields.endIndex,
                  fields[fields.index(after: separator)] == "cgroup2" else { continue }
            return unescapeMountPath(fields[4])
        }
        return nil
    }

    /// mountinfo writes space, tab, newline and backslash in paths as octal escapes (\040).
    static func unescapeMountPath(_ field: Substring) -> String {
        var bytes: [UInt8] = []
        var rest = field.utf8[...]
        while let byte = rest.popFirst() {
            if byte == UInt8(ascii: "\\"), rest.count >= 3,
               let value = UInt8(String(decoding: rest.prefix(3), as: UTF8.self), radix: 8) {
                bytes.append(value)
                rest = rest.dropFirst(3)
            } else {
                bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The cgroup v2 id of a process now (its `0::` line in /proc/PID/cgroup), with cgroup2
    /// mounted at `root`; nil when it is gone.
    public static func id(ofProcess pid: Int32, root: String) -> UInt64? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/cgroup", encoding: .utf8),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("0::") }) else { return nil }
        return inode(root + (line.dropFirst(3) == "/" ? "" : String(line.dropFirst(3))))
    }

    private static func inode(_ path: String) -> UInt64? {
        var info = stat()
        return stat(path, &info) == 0 ? UInt64(info.st_ino) : nil
    }

    /// Re-reads the cgroup tree (cgroups come and go).
    public mutating func rescan() {
        guard let root else { return }
        var found: [UInt64: String] = [:]
        if let id = Self.inode(root) { found[id] = "/" }
        Self.walk(root, relative: "", into: &found)
        paths = found
    }

    /// Records every directory below `root + relative` (cgroups are directories; their
    /// interface files are not, and are skipped by their type without a stat).
    private static func walk(_ root: String, relative: String, into found: inout [UInt64: String]) {
        guard let directory = opendir(root + relative) else { return }
        defer { closedir(directory) }
        while let entry = readdir(directory) {
            guard entry.pointee.d_type == UInt8(DT_DIR) else { continue }
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name == "." || name == ".." { continue }
            let child = relative + "/" + name
            found[UInt64(entry.pointee.d_ino)] = child
            walk(root, relative: child, into: &found)
        }
    }

    /// The cgroup's path, rescanning once when it is new; nil if it no longer exists.
    public mutating func path(of id: UInt64) -> String? {
        if id == 0 { return nil }
        if let path = paths[id] { return path }
        rescan()
        return paths[id]
    }

    /// The directory of the cgroup at `path` (relative to the cgroup2 mount, or absolute under
    /// it), for a BPF cgroup array; an error that says what exists when there is none.
    public func directory(of path: String) throws -> String {
        guard let root else {
            throw NetacctError("No cgroup v2 file system is mounted, so --cgroup cannot be used (mount -t cgroup2 none /sys/fs/cgroup).")
        }
        var relative = path.hasPrefix(root) ? String(path.dropFirst(root.count)) : path
        if !relative.hasPrefix("/") { relative = "/" + relative }
        var info = stat()
        guard stat(root + relative, &info) == 0, info.st_mode & S_IFMT == S_IFDIR else {
            throw NetacctError("No cgroup \(path) under \(root) (give a path such as /system.slice/ssh.service).")
        }
        return root + relative
    }

    /// A short name for tables: the last component of the path.
    public mutating func shortName(of id: UInt64) -> String {
        guard let path = path(of: id) else { return id == 0 ? "-" : "#\(id)" }
        return path == "/" ? "/" : String(path.split(separator: "/").last ?? "/")
    }

    /// The ids of a cgroup and all its descendants. `path` is relative to the cgroup2 mount
    /// (`/system.slice`) or absolute under it (`/sys/fs/cgroup/system.slice`).
    public mutating func subtree(_ path: String) throws -> Set<UInt64> {
        guard let root else {
            throw NetacctError("No cgroup v2 file system is mounted, so --cgroup cannot be used (mount -t cgroup2 none /sys/fs/cgroup).")
        }
        var relative = path.hasPrefix(root) ? String(path.dropFirst(root.count)) : path
        if !relative.hasPrefix("/") { relative = "/" + relative }
        while relative.count > 1 && relative.hasSuffix("/") { relative.removeLast() }
        rescan()
        guard paths.values.contains(relative) else {
            throw NetacctError("No cgroup \(path) under \(root) (give a path such as /system.slice/ssh.service).")
        }
        let prefix = relative == "/" ? "/" : relative + "/"
        return Set(paths.filter { $0.value == relative || $0.value.hasPrefix(prefix) }.keys)
    }
}
