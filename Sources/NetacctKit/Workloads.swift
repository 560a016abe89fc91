/// What a cgroup is, named the way people know it: the systemd unit (`nginx.service`), the
/// container (its id, shortened to 12 characters, as `docker ps` shows it) or the Kubernetes pod
/// (its uid), from the cgroup's path alone. The path forms recognised:
///
/// - systemd's: `/system.slice/nginx.service`, `/user.slice/user-1000.slice/session-3.scope`;
/// - docker: `/system.slice/docker-<id>.scope` (systemd driver), `/docker/<id>` (cgroupfs);
/// - containerd (CRI): `…/cri-containerd-<id>.scope`, `/kubepods/…/pod<uid>/<id>`;
/// - CRI-O: `…/crio-<id>.scope`; podman: `…/libpod-<id>.scope` (`libpod-payload-<id>` too);
/// - pods: `…/kubepods-besteffort-pod<uid>.slice` (systemd, uid with `_`), `…/pod<uid>` (cgroupfs).
///
/// A container inside a pod is the container; a process in the pod's own cgroup is the pod.
public struct Workload: Sendable, Hashable {
    public enum Kind: String, Sendable, Hashable {
        case unit, container, pod, other
    }

    public var kind: Kind
    public var name: String

    public init(kind: Kind, name: String) {
        self.kind = kind
        self.name = name
    }

    /// The workload of a cgroup at `path` (relative to the cgroup2 mount).
    public init(path: String) {
        let components = path.split(separator: "/").map(String.init)
        guard let last = components.last else {
            self.init(kind: .other, name: "/")
            return
        }
        if let id = Self.containerID(last, parent: components.dropLast().last) {
            self.init(kind: .container, name: String(id.prefix(12)))
        } else if let uid = Self.podUID(last) {
            self.init(kind: .pod, name: uid)
        } else if Self.unitSuffixes.contains(where: { last.hasSuffix($0) }) {
            self.init(kind: .unit, name: last)
        } else {
            self.init(kind: .other, name: last)
        }
    }

    static let unitSuffixes = [".service", ".scope", ".slice", ".socket", ".mount", ".swap"]
    static let runtimePrefixes = ["docker-", "cri-containerd-", "crio-", "libpod-payload-", "libpod-", "containerd-"]

    /// A container id: 64 hexadecimal digits, in a systemd scope of a runtime's prefix, or alone
    /// (cgroupfs) under a runtime's or a pod's directory.
    static func containerID(_ component: String, parent: String?) -> Substring? {
        var name = Substring(component)
        if name.hasSuffix(".scope") {
            name = name.dropLast(".scope".count)
            guard let prefix = runtimePrefixes.first(where: { name.hasPrefix($0) }) else { return nil }
            name = name.dropFirst(prefix.count)
        } else if let parent, !(parent == "docker" || parent.hasPrefix("pod") || parent == "libpod_parent" || parent.hasSuffix(".slice")) {
            return nil
        }
        return isContainerID(name) ? name : nil
    }

    static func isContainerID(_ text: Substring) -> Bool {
        text.count == 64 && text.allSatisfy(\.isHexDigit)
    }

    /// A pod's uid: `kubepods[-qos]-pod<uid with _>.slice` or `pod<uid>`.
    static func podUID(_ component: String) -> String? {
        var name = Substring(component)
        if name.hasSuffix(".slice") {
            // kubepods-pod<uid>, kubepods-burstable-pod<uid> (the uid's dashes as underscores).
            let parts = name.dropLast(".slice".count).split(separator: "-")
            guard parts.first == "kubepods", parts.count > 1, let pod = parts.last, pod.hasPrefix("pod") else { return nil }
            name = pod.dropFirst(3)
            return isUID(name) ? name.replacingOccurrences(of: "_", with: "-") : nil
        }
        guard name.hasPrefix("pod") else { return nil }
        name = name.dropFirst(3)
        return isUID(name) ? String(name) : nil
    }

    /// 8-4-4-4-12 hexadecimal digits, with `-` or `_` between.
    static func isUID(_ text: Substring) -> Bool {
        let groups = text.split(whereSeparator: { $0 == "-" || $0 == "_" })
        return groups.map(\.count) == [8, 4, 4, 4, 12] && groups.allSatisfy { $0.allSatisfy(\.isHexDigit) }
    }
}

extension Substring {
    func replacingOccurrences(of target: Character, with replacement: Character) -> String {
        String(map { $0 == target ? replacement : $0 })
    }
}

extension CgroupNames {
    /// The workload a cgroup is (its name and kind), from its path; a cgroup gone is `#id`.
    public mutating func workload(of id: UInt64) -> (path: String?, workload: Workload) {
        guard let path = path(of: id) else { return (nil, Workload(kind: .other, name: id == 0 ? "-" : "#\(id)")) }
        return (path, Workload(path: path))
    }
}
