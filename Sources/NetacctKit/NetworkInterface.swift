import Glibc

/// A network interface: of the network namespace netacct runs in as /sys/class/net shows it, or
/// of another as its rtnetlink tells (/sys shows the namespace it was mounted in, not the
/// thread's).
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

    /// The interfaces of the namespace at `path` (inode `inode`): this process's own from /sys,
    /// another's by an RTM_GETLINK dump on a netlink socket made inside it. There a device's
    /// queues are those it has (`num_tx_queues`), which rtnetlink tells, not the number in use
    /// (`ethtool -L`), which only its /sys shows.
    public static func all(inNamespace path: String, inode: UInt32) throws -> [NetworkInterface] {
        if inode == NetworkNamespace.inode() { return all() }
        return try NetworkNamespace.within(path, expecting: inode) { try RouteNetlink.links() }.sorted { $0.name < $1.name }
    }
}

/// rtnetlink, for what a namespace's /sys cannot tell from here: its links.
enum RouteNetlink {
    static let getLink: UInt16 = 18, newLink: UInt16 = 16, done: UInt16 = 3, error: UInt16 = 2
    static let ifName: UInt16 = 3, txQueues: UInt16 = 31, rxQueues: UInt16 = 32

    /// Every link of the calling thread's network namespace (a dump: NLM_F_REQUEST | NLM_F_DUMP).
    static func links() throws -> [NetworkInterface] {
        let fd = socket(AF_NETLINK, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0 /* NETLINK_ROUTE */)
        guard fd >= 0 else { throw NetacctError("Cannot open a netlink socket: \(String(cString: strerror(errno)))", kind: .failure) }
        defer { close(fd) }
        // nlmsghdr (16 bytes) + ifinfomsg (16 bytes, AF_UNSPEC: every link).
        var request = [UInt8](repeating: 0, count: 32)
        request.withUnsafeMutableBytes { raw in
            raw.storeBytes(of: UInt32(32), toByteOffset: 0, as: UInt32.self)
            raw.storeBytes(of: getLink, toByteOffset: 4, as: UInt16.self)
            raw.storeBytes(of: UInt16(0x1 | 0x300), toByteOffset: 6, as: UInt16.self)
            raw.storeBytes(of: UInt32(1), toByteOffset: 8, as: UInt32.self)
        }
        guard send(fd, request, request.count, 0) == request.count else {
            throw NetacctError("Cannot ask rtnetlink for the links: \(String(cString: strerror(errno)))", kind: .failure)
        }
        var found: [NetworkInterface] = []
        var buffer = [UInt8](repeating: 0, count: 32768)
        while true {
            let count = recv(fd, &buffer, buffer.count, 0)
            guard count > 0 else { throw NetacctError("Cannot read rtnetlink's links: \(String(cString: strerror(errno)))", kind: .failure) }
            var offset = 0
            let finished = try buffer.withUnsafeBytes { raw -> Bool in
                while offset + 16 <= count {
                    let length = Int(raw.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
                    let type = raw.loadUnaligned(fromByteOffset: offset + 4, as: UInt16.self)
                    guard length >= 16, offset + length <= count else { return true }
                    if type == done { return true }
                    if type == error {
                        let code = raw.loadUnaligned(fromByteOffset: offset + 16, as: Int32.self)
                        throw NetacctError("rtnetlink refused the links' dump: \(String(cString: strerror(-code)))", kind: .failure)
                    }
                    if type == newLink, length >= 32, let link = link(raw, from: offset, length: length) { found.append(link) }
                    offset += (length + 3) & ~3
                }
                return false
            }
            if finished { return found }
        }
    }

    /// One RTM_NEWLINK message: ifinfomsg (index at 4, flags at 8), then its attributes.
    static func link(_ raw: UnsafeRawBufferPointer, from start: Int, length: Int) -> NetworkInterface? {
        let message = start + 16
        let index = raw.loadUnaligned(fromByteOffset: message + 4, as: Int32.self)
        let flags = raw.loadUnaligned(fromByteOffset: message + 8, as: UInt32.self)
        var name: String?, tx = 1, rx = 1
        var offset = message + 16
        while offset + 4 <= start + length {
            let size = Int(raw.loadUnaligned(fromByteOffset: offset, as: UInt16.self))
            let type = raw.loadUnaligned(fromByteOffset: offset + 2, as: UInt16.self) & 0x3fff
            guard size >= 4, offset + size <= start + length else { break }
            let value = UnsafeRawBufferPointer(rebasing: raw[(offset + 4)..<(offset + size)])
            switch type {
            case ifName: name = String(decoding: value.prefix { $0 != 0 }, as: UTF8.self)
            case txQueues where value.count >= 4: tx = Int(value.loadUnaligned(as: UInt32.self))
            case rxQueues where value.count >= 4: rx = Int(value.loadUnaligned(as: UInt32.self))
            default: break
            }
            offset += (size + 3) & ~3
        }
        guard let name, index > 0 else { return nil }
        return NetworkInterface(name: name, ifindex: UInt32(index), txQueues: max(tx, 1), rxQueues: max(rx, 1), isUp: flags & 1 != 0)
    }
}

extension String {
    var trimmingNewline: String {
        var text = self
        while text.last == "\n" || text.last == " " { text.removeLast() }
        return text
    }
}
