import Glibc
import NetacctKit

/// A network interface of the network namespace netacct runs in, as /sys/class/net shows it.
public struct NetworkInterface: Sendable, Equatable {
    public var name: String
    public var ifindex: UInt32
    public var txQueues: Int
    public var rxQueues: Int
    public var isUp: Bool

    public init(name: String, ifindex: UInt32, txQueues: Int, rxQueues: Int, isUp: Bool) {
        self.name = name
        self.ifindex = ifindex
        self.txQueues = txQueues
        self.rxQueues = rxQueues
        self.isUp = isUp
    }

    /// The interfaces of this network namespace (`ip netns exec … netacct nic` sees that
    /// namespace's), by name.
    public static func all(sysfs: String = "/sys/class/net") -> [NetworkInterface] {
        guard let directory = opendir(sysfs) else { return [] }
        defer { closedir(directory) }
        var names: [String] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if !name.hasPrefix(".") { names.append(name) }
        }
        return names.sorted().compactMap { named($0, sysfs: sysfs) }
    }

    /// The interface called `name`, or nil.
    public static func named(_ name: String, sysfs: String = "/sys/class/net") -> NetworkInterface? {
        let base = "\(sysfs)/\(name)"
        guard let index = read(base + "/ifindex").flatMap({ UInt32($0) }) else { return nil }
        let flags = read(base + "/flags").flatMap { UInt32($0.dropFirst(2), radix: 16) } ?? 0
        let (tx, rx) = queues(base + "/queues")
        return NetworkInterface(name: name, ifindex: index, txQueues: tx, rxQueues: rx, isUp: flags & 1 != 0 /* IFF_UP */)
    }

    private static func queues(_ path: String) -> (tx: Int, rx: Int) {
        guard let directory = opendir(path) else { return (1, 1) }
        defer { closedir(directory) }
        var tx = 0, rx = 0
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name.hasPrefix("tx-") { tx += 1 } else if name.hasPrefix("rx-") { rx += 1 }
        }
        return (max(tx, 1), max(rx, 1))
    }

    private static func read(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 64)
        let count = Glibc.read(fd, &buffer, buffer.count)
        guard count > 0 else { return nil }
        return String(decoding: buffer[..<count], as: UTF8.self).trimmingNewline
    }

    /// The inode number of this process's network namespace (what the kernel's `net->ns.inum` is).
    public static func namespaceInode() -> UInt32 { NetworkNamespace.inode() }
}

extension String {
    var trimmingNewline: String {
        var text = self
        while text.last == "\n" || text.last == " " { text.removeLast() }
        return text
    }
}
