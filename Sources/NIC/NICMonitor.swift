import Logging
import NetacctKit

/// What `netacct nic` and the daemon's nic collector count, and what they name it: the engine,
/// the namespaces it covers (`NamespaceScope`) and their interfaces, read again at each
/// `refresh()`. In one namespace (the default, or `--netns`) the interfaces are those asked
/// for at start (or all that were up), each followed until it goes; with `-A` every interface
/// that is up (or has a name asked for) in every namespace, as namespaces and interfaces come
/// and go: the kernel counts every device from the start, so a device made later is shown from
/// its first frame.
public final class NICMonitor {
    public struct Device: Sendable {
        public var namespace: NamespaceLabel
        public var interface: NetworkInterface
    }

    public let engine: NICEngine
    public private(set) var namespaces: NamespaceDirectory
    /// The devices counted now, by namespace and ifindex.
    public private(set) var devices: [DeviceKey: Device] = [:]
    private let names: [String]
    private let logger: Logger
    /// The namespaces whose interfaces could not be read, already said (until they go).
    private var unreadSaid: Set<UInt32> = []

    public init(scope: NamespaceScope, names: [String], logger: Logger) throws {
        self.names = names
        self.logger = logger
        namespaces = NamespaceDirectory(scope: scope)
        if scope == .all {
            engine = try NICEngine(interfaces: [], namespace: 0, logger: logger)
            devices = listed().shown
        } else {
            guard let (inode, entry) = namespaces.entries.first else {
                throw NetacctError("The network namespace of --netns has gone.", kind: .badInput)
            }
            let all = try NetworkInterface.all(inNamespace: entry.path, inode: inode)
            let interfaces = try Self.select(names, from: all, in: scope)
            engine = try NICEngine(interfaces: interfaces, namespace: inode, logger: logger)
            for interface in interfaces { devices[DeviceKey(netns: inode, ifindex: interface.ifindex)] = Device(namespace: entry.label, interface: interface) }
        }
    }

    /// The interfaces asked for: an unknown name is an error that lists the interfaces.
    static func select(_ names: [String], from all: [NetworkInterface], in scope: NamespaceScope) throws -> [NetworkInterface] {
        guard !names.isEmpty else { return all.filter(\.isUp) }
        let which = scope == .current ? "this network namespace" : "the network namespace of --netns"
        return try names.map { name in
            guard let interface = all.first(where: { $0.name == name }) else {
                throw NetacctError("No interface \(name) in \(which); its interfaces: \(all.map(\.name).joined(separator: ", ")).")
            }
            return interface
        }
    }

    /// Every namespace's interfaces: those shown (up ones, or those named), every one that
    /// exists, and the namespaces that could not be read (said, and read again next time).
    private func listed() -> (shown: [DeviceKey: Device], existing: Set<DeviceKey>, unread: Set<UInt32>) {
        var shown: [DeviceKey: Device] = [:], existing: Set<DeviceKey> = [], unread: Set<UInt32> = []
        for (inode, entry) in namespaces.entries {
            let interfaces: [NetworkInterface]
            do {
                interfaces = try NetworkInterface.all(inNamespace: entry.path, inode: inode)
            } catch {
                // Gone between the two reads, or refused: tried again next time, said once.
                if unreadSaid.insert(inode).inserted {
                    logger.warning("cannot read the interfaces of network namespace \(entry.label.display) (inode \(inode)); tried again each interval: \(error)")
                } else {
                    logger.debug("cannot read the interfaces of network namespace \(entry.label.display): \(error)")
                }
                unread.insert(inode)
                continue
            }
            for interface in interfaces {
                let key = DeviceKey(netns: inode, ifindex: interface.ifindex)
                existing.insert(key)
                if names.isEmpty ? interface.isUp : names.contains(interface.name) {
                    shown[key] = Device(namespace: entry.label, interface: interface)
                }
            }
        }
        return (shown, existing, unread)
    }

    /// Every namespace: the device queues the kernel gave a slot whose devices the last reading
    /// did not find either (a device made between the two readings is not yet listed).
    private var absentLastTime: Set<DeviceKey> = []

    /// Reads the namespaces and their interfaces again (queues can appear, `ethtool -L`), says
    /// which namespaces came and went, and returns the devices gone since the last call.
    @discardableResult
    public func refresh() throws -> [Device] {
        let (appeared, left) = namespaces.refresh()
        for entry in appeared { logger.notice("following network namespace \(entry.label.display) (inode \(entry.label.inode))") }
        for entry in left {
            logger.notice("network namespace \(entry.label.display) (inode \(entry.label.inode)) has gone; its rows end")
            unreadSaid.remove(entry.label.inode)
        }
        var now: [DeviceKey: Device] = [:]
        if namespaces.scope == .all {
            let (shown, existing, unread) = listed()
            now = shown
            // A namespace that could not be read keeps its rows until it can be, or goes.
            for (key, device) in devices where unread.contains(key.netns) { now[key] = device }
            // Slots of devices that exist nowhere (gone, or never listed: they lived less than a
            // second), after two readings in a row, so that the kernel's table never fills up.
            var absent: Set<DeviceKey> = []
            try engine.forget { key in
                if existing.contains(key) || unread.contains(key.netns) { return true }
                absent.insert(key)
                return !absentLastTime.contains(key)
            }
            absentLastTime = absent
        } else if let (inode, entry) = namespaces.entries.first {
            let all = (try? NetworkInterface.all(inNamespace: entry.path, inode: inode)) ?? []
            for (key, device) in devices {
                if let interface = all.first(where: { $0.name == device.interface.name && $0.ifindex == key.ifindex }) {
                    now[key] = Device(namespace: entry.label, interface: interface)
                }
            }
        }
        let gone = devices.filter { now[$0.key] == nil }
        for (_, device) in gone.sorted(by: { $0.key < $1.key }) {
            logger.warning("interface \(device.interface.name) has gone\(namespaces.scope.labelled ? " from network namespace \(device.namespace.display)" : ""); the others go on")
        }
        devices = now
        return Array(gone.values)
    }

    /// The cumulative counters of each device counted now, its queues as many as it has.
    public func read() throws -> [DeviceKey: DeviceReading] {
        var result: [DeviceKey: DeviceReading] = [:]
        if engine.namespace == 0 {
            let counted = try engine.readDevices()
            for (key, device) in devices {
                var reading = counted[key] ?? DeviceReading()
                func fit(_ queues: inout [QueueCounters], _ count: Int) {
                    let wanted = max(min(count, NICEngine.maximumQueues), queues.count)
                    if queues.count < wanted { queues += Array(repeating: QueueCounters(), count: wanted - queues.count) }
                }
                fit(&reading.tx, device.interface.txQueues)
                fit(&reading.rx, device.interface.rxQueues)
                result[key] = reading
            }
        } else {
            for (key, device) in devices {
                guard let slot = engine.interfaces.firstIndex(where: { $0.ifindex == key.ifindex }) else { continue }
                result[key] = DeviceReading(tx: try engine.read(slot: slot, .tx, queues: device.interface.txQueues),
                                            rx: try engine.read(slot: slot, .rx, queues: device.interface.rxQueues))
            }
        }
        return result
    }

    /// The devices in the order shown: by namespace (the host's, then by name), then interface.
    public var ordered: [(key: DeviceKey, device: Device)] {
        if engine.namespace != 0 {
            // One namespace: as asked for (or as /sys lists them).
            return engine.interfaces.compactMap { interface in
                let key = DeviceKey(netns: engine.namespace, ifindex: interface.ifindex)
                return devices[key].map { (key, $0) }
            }
        }
        return devices.sorted { a, b in
            let (x, y) = (a.value.namespace, b.value.namespace)
            if x.inode != y.inode {
                if x.isHost != y.isHost { return x.isHost }
                return (x.display, x.inode) < (y.display, y.inode)
            }
            return a.value.interface.name < b.value.interface.name
        }.map { ($0.key, $0.value) }
    }
}
