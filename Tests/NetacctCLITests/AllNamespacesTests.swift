import Foundation
import Glibc
import NetacctKit
import Testing

/// A host of containers, made by the test: a hub namespace and spokes, each spoke joined to the
/// hub by a veth pair (`eth0` in every spoke: two interfaces of one name in two namespaces),
/// quiet (no IPv6, no ARP: static neighbours), with a server in a cgroup of its own named as a
/// container runtime or systemd would name it: a docker container (spoke 1), a systemd unit
/// (spoke 2), a container of a Kubernetes pod (spoke 3), another docker container (4, 5…).
/// Each server binds UDP port 7000 with a small receive buffer and never reads it (drops), and
/// reads whatever comes to TCP port 7001.
final class ContainerHost {
    let tag: String
    let hub: String
    private(set) var spokes: [Int: Spoke] = [:]
    let cgroupParent: String

    struct Spoke {
        let index: Int
        let namespace: String
        let cgroup: String
        let workload: Workload
        let server: Process
        var address: String { "10.88.\(index).2" }
        var hubAddress: String { "10.88.\(index).1" }
        var hubDevice: String { "s\(index)" }
    }

    nonisolated(unsafe) static var made = 0
    static let lock = NSLock()

    init(spokes count: Int) throws {
        let serial = Self.lock.withLock {
            Self.made += 1
            return Self.made
        }
        tag = "\(getpid() % 100_000)-\(serial)"
        hub = "nacct-hub\(tag)"
        let root = try #require(CgroupNames.mountPoint(), "a cgroup2 file system")
        cgroupParent = root + "/netacct-test-\(tag)"
        try FileManager.default.createDirectory(atPath: cgroupParent, withIntermediateDirectories: true)
        try VethPair.sh("ip netns add \(hub); ip netns exec \(hub) sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1")
        for index in 1...count { try add(index) }
    }

    /// A 64-digit id, as a runtime gives a container.
    static func containerID(_ index: Int, _ tag: String) -> String {
        let seed = "\(tag)-\(index)".utf8.reduce(UInt64(1469598103934665603)) { ($0 ^ UInt64($1)) &* 1099511628211 }
        return (0..<4).map { String(format: "%016llx", seed &* UInt64($0 + 1) &+ UInt64($0)) }.joined()
    }

    /// Spoke `index`: its namespace, its link to the hub, its server in its cgroup.
    @discardableResult
    func add(_ index: Int) throws -> Spoke {
        let namespace = "nacct-c\(index)-\(tag)"
        let id = Self.containerID(index, tag)
        let uid = "4f1c2a9e-0b7d-4c3e-9a51-\(String(format: "%012x", index))"
        let (relative, workload): (String, Workload) = switch index {
        case 2: ("nacct-web-\(tag).service", Workload(kind: .unit, name: "nacct-web-\(tag).service"))
        case 3: ("kubepods-besteffort-pod\(uid.replacingOccurrences(of: "-", with: "_")).slice/cri-containerd-\(id).scope", Workload(kind: .pod, name: uid))
        default: ("docker-\(id).scope", Workload(kind: .container, name: String(id.prefix(12))))
        }
        let cgroup = cgroupParent + "/" + relative
        try FileManager.default.createDirectory(atPath: cgroup, withIntermediateDirectories: true)
        let (a, h) = ("10.88.\(index).2", "10.88.\(index).1")
        try VethPair.sh("""
            ip netns add \(namespace)
            ip netns exec \(namespace) sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
            ip link add s\(index) netns \(hub) type veth peer eth0 netns \(namespace)
            ip -n \(namespace) addr add \(a)/24 dev eth0; ip -n \(hub) addr add \(h)/24 dev s\(index)
            ip -n \(namespace) link set eth0 arp off; ip -n \(hub) link set s\(index) arp off
            ip -n \(namespace) neigh add \(h) lladdr $(ip netns exec \(hub) cat /sys/class/net/s\(index)/address) dev eth0 nud permanent
            ip -n \(hub) neigh add \(a) lladdr $(ip netns exec \(namespace) cat /sys/class/net/eth0/address) dev s\(index) nud permanent
            ip -n \(namespace) link set eth0 up; ip -n \(hub) link set s\(index) up
            """)
        // ip netns exec mounts a /sys of the namespace's own, without the cgroup file system:
        // the test moves the shell into its cgroup, then tells it to go on.
        let server = Process()
        server.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
        server.arguments = ["netns", "exec", namespace, "/bin/sh", "-c", "read go && exec /usr/bin/python3 -c \"$0\"", """
            import socket, threading, time
            u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            u.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
            u.bind(("\(a)", 7000))
            t = socket.socket()
            t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            t.bind(("\(a)", 7001))
            t.listen(8)
            def serve(c):
                while c.recv(65536):
                    pass
            def accept():
                while True:
                    c, _ = t.accept()
                    threading.Thread(target=serve, args=(c,), daemon=True).start()
            threading.Thread(target=accept, daemon=True).start()
            print("ready", flush=True)
            time.sleep(600)
            """]
        let out = Pipe(), go = Pipe()
        server.standardOutput = out
        server.standardInput = go
        do {
            try server.run()
            try "\(server.processIdentifier)\n".write(toFile: cgroup + "/cgroup.procs", atomically: false, encoding: .utf8)
            go.fileHandleForWriting.write(Data("go\n".utf8))
            guard LineReader(out.fileHandleForReading).next() == "ready" else { throw DaemonTestError("the server of spoke \(index) did not start") }
        } catch {
            Self.end(server)
            _ = try? VethPair.sh("ip netns del \(namespace)")
            rmdir(cgroup)
            throw error
        }
        let spoke = Spoke(index: index, namespace: namespace, cgroup: cgroup, workload: workload, server: server)
        spokes[index] = spoke
        return spoke
    }

    /// Ends spoke `index`: its server, its namespace (and with it both ends of its veth pair).
    func remove(_ index: Int) throws {
        guard let spoke = spokes.removeValue(forKey: index) else { return }
        Self.end(spoke.server)
        try VethPair.sh("ip netns del \(spoke.namespace)")
        rmdir(spoke.cgroup)
        if index == 3 { rmdir((spoke.cgroup as NSString).deletingLastPathComponent) }
    }

    static func end(_ process: Process) {
        if process.processIdentifier > 0 && process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }

    deinit {
        for index in Array(spokes.keys) { try? remove(index) }
        _ = try? VethPair.sh("ip netns del \(hub)")
        rmdir(cgroupParent)
    }

    /// `count` UDP datagrams of `bytes` bytes from the hub to spoke `index`'s port 7000.
    func sendUDP(to index: Int, _ count: Int, bytes: Int) throws {
        let spoke = try #require(spokes[index])
        try VethPair.sh("""
            ip netns exec \(hub) /usr/bin/python3 -c "
            import socket
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            for _ in range(\(count)): s.sendto(b'u' * \(bytes), ('\(spoke.address)', 7000))"
            """)
    }

    /// A TCP connection from the hub to spoke `index`'s port 7001 that sends `count` segments
    /// of 100 bytes, 50 ms apart (each its own segment), then closes.
    func sendTCP(to index: Int, _ count: Int) throws {
        let spoke = try #require(spokes[index])
        try VethPair.sh("""
            ip netns exec \(hub) /usr/bin/python3 -c "
            import socket, time
            s = socket.create_connection(('\(spoke.address)', 7001))
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for _ in range(\(count)):
                s.send(b't' * 100)
                time.sleep(0.05)
            time.sleep(0.2)
            s.close()"
            """)
    }

    /// A statistic of a device: `eth0` of spoke `index`, or (`hubSide`) its peer in the hub.
    func statistic(_ index: Int, hubSide: Bool = false, _ name: String) throws -> UInt64 {
        let spoke = try #require(spokes[index])
        let (namespace, device) = hubSide ? (hub, spoke.hubDevice) : (spoke.namespace, "eth0")
        return UInt64(try VethPair.sh("ip netns exec \(namespace) cat /sys/class/net/\(device)/statistics/\(name)")
            .trimmingCharacters(in: .whitespacesAndNewlines)) ?? .max
    }

    /// A counter of a namespace's /proc/net/snmp (`Udp`, `RcvbufErrors`).
    func snmp(_ namespace: String, _ group: String, _ field: String) throws -> UInt64 {
        let lines = try VethPair.sh("ip netns exec \(namespace) cat /proc/net/snmp").split(separator: "\n").filter { $0.hasPrefix(group + ":") }
        guard lines.count == 2, let column = lines[0].split(separator: " ").firstIndex(of: Substring(field)) else { return .max }
        return UInt64(lines[1].split(separator: " ")[column]) ?? .max
    }

    /// The inode of a namespace by its name.
    func inode(_ namespace: String) -> Int {
        var info = stat()
        return stat("/run/netns/\(namespace)", &info) == 0 ? Int(info.st_ino) : -1
    }
}

/// `-A` and `--netns` for nic, drops and latency, and the daemon's nic collector with
/// `--all-namespaces`, against each namespace's own counters.
@Suite(.serialized, .enabled(if: isRoot, "loads BPF programs and makes network namespaces and cgroups: needs root"))
struct AllNamespacesTests {
    /// Of its own: suites run at once.
    static let port = 22700 + Int(getpid() % 300)

    /// The four counters of a device, as nic's JSON totals and /sys name them.
    struct Totals: Equatable, CustomStringConvertible {
        var txPackets: UInt64 = 0, txBytes: UInt64 = 0, rxPackets: UInt64 = 0, rxBytes: UInt64 = 0
        var description: String { "tx \(txPackets)/\(txBytes) rx \(rxPackets)/\(rxBytes)" }
        static func - (a: Self, b: Self) -> Self {
            Self(txPackets: a.txPackets &- b.txPackets, txBytes: a.txBytes &- b.txBytes, rxPackets: a.rxPackets &- b.rxPackets, rxBytes: a.rxBytes &- b.rxBytes)
        }
    }

    static func kernel(_ host: ContainerHost, _ index: Int, hubSide: Bool = false) throws -> Totals {
        Totals(txPackets: try host.statistic(index, hubSide: hubSide, "tx_packets"), txBytes: try host.statistic(index, hubSide: hubSide, "tx_bytes"),
               rxPackets: try host.statistic(index, hubSide: hubSide, "rx_packets"), rxBytes: try host.statistic(index, hubSide: hubSide, "rx_bytes"))
    }

    /// nic's intervals summed per (namespace inode, interface), of the namespaces whose /run/netns
    /// name has `tag` when given (the kernel gives a freed namespace's inode to the next one made:
    /// another test's may take a removed one's), and every namespace object seen, as first named.
    static func sum(_ objects: [[String: Any]], tag: String? = nil) -> (totals: [String: Totals], namespaces: [Int: [String: Any]], rowsPerInterval: [[String]]) {
        var totals: [String: Totals] = [:], namespaces: [Int: [String: Any]] = [:], rows: [[String]] = []
        for object in objects {
            var interval: [String] = []
            for interface in object["interfaces"] as? [[String: Any]] ?? [] {
                guard let name = interface["name"] as? String, let netns = interface["netns"] as? [String: Any], let inode = netns["inode"] as? Int else { continue }
                // As first named (a namespace whose processes have gone has no workload left).
                if namespaces[inode] == nil { namespaces[inode] = netns }
                if let tag, (netns["name"] as? String)?.contains(tag) != true { continue }
                let key = "\(inode)/\(name)"
                interval.append(key)
                func total(_ direction: String, _ field: String) -> UInt64 {
                    UInt64(((interface[direction] as? [String: Any])?["total"] as? [String: Any])?[field] as? Int ?? 0)
                }
                totals[key, default: Totals()].txPackets += total("tx", "packets")
                totals[key, default: Totals()].txBytes += total("tx", "bytes")
                totals[key, default: Totals()].rxPackets += total("rx", "packets")
                totals[key, default: Totals()].rxBytes += total("rx", "bytes")
            }
            rows.append(interval)
        }
        return (totals, namespaces, rows)
    }

    @Test func nicCountsEveryNamespacesInterfacesExactlyAndFollowsThemAsTheyComeAndGo() throws {
        let host = try ContainerHost(spokes: 3)
        var before: [String: Totals] = [:]
        for index in 1...3 {
            before["c\(index)"] = try Self.kernel(host, index)
            before["s\(index)"] = try Self.kernel(host, index, hubSide: true)
        }
        // A guest from the host's side in the pod's namespace all along, as `nsenter -n` would be.
        let guest = Process()
        guest.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
        guest.arguments = ["netns", "exec", host.spokes[3]!.namespace, "sleep", "30"]
        try guest.run()
        var guestEnded = false
        defer { if !guestEnded { ContainerHost.end(guest) } }
        let run = try ToolRun("nic", ["-A", "0.5"], ready: "nic programs attached")
        try host.sendUDP(to: 1, 10, bytes: 100)
        try host.sendUDP(to: 2, 20, bytes: 300)
        try host.sendUDP(to: 3, 30, bytes: 200)
        // A namespace made while it runs, with traffic from its first second.
        try host.add(4)
        try host.sendUDP(to: 4, 15, bytes: 400)
        let third = (host.inode(host.spokes[3]!.namespace), try Self.kernel(host, 3) - before["c3"]!)
        let fourth = host.inode(host.spokes[4]!.namespace)
        usleep(1_200_000)
        var after: [String: Totals] = [:]
        for index in [1, 2, 4] {
            after["c\(index)"] = try Self.kernel(host, index)
            after["s\(index)"] = try Self.kernel(host, index, hubSide: true)
        }
        // One removed while it runs: its rows end (two intervals more are shown, then SIGINT).
        let removed = host.spokes[3]!.namespace
        ContainerHost.end(guest)
        guestEnded = true
        try host.remove(3)
        try run.awaitErr("network namespace \(removed) (inode \(third.0)) has gone")
        usleep(1_100_000)
        let (status, objects, err) = try run.finish(timeout: 0)
        #expect(status == 0, "\(err)")
        #expect(objects.count >= 5)
        let (totals, namespaces, rows) = Self.sum(objects, tag: host.tag)
        let hubInode = host.inode(host.hub)
        for index in [1, 2] {
            let inode = host.inode(host.spokes[index]!.namespace)
            #expect(totals["\(inode)/eth0"] == after["c\(index)"]! - before["c\(index)"]!, "spoke \(index)")
            #expect(totals["\(hubInode)/s\(index)"] == after["s\(index)"]! - before["s\(index)"]!, "the hub's side of spoke \(index)")
        }
        // Made after the start: everything since its first frame.
        #expect(totals["\(fourth)/eth0"] == after["c4"]!, "spoke 4")
        #expect(totals["\(hubInode)/s4"] == after["s4"]!, "the hub's side of spoke 4")
        #expect(after["c4"]!.rxPackets == 15 && after["c4"]!.rxBytes == 15 * (14 + 20 + 8 + 400))
        // Removed: counted until it went, then no more rows.
        #expect(totals["\(third.0)/eth0"] == third.1, "spoke 3, before it went")
        #expect(rows.last.map { !$0.contains { $0.hasPrefix("\(third.0)/") } } == true, "\(rows.last ?? []) \(err)")
        #expect(err.contains("following network namespace nacct-c4-\(host.tag)"))
        // eth0 of three namespaces: three rows in one interval.
        #expect((rows.first?.filter { $0.hasSuffix("/eth0") }.count ?? 0) >= 3)
        // Each named by /run/netns and by what runs in it.
        let first = namespaces[host.inode("nacct-c1-\(host.tag)")]
        #expect(first?["name"] as? String == "nacct-c1-\(host.tag)")
        #expect(first?["container"] as? String == String(ContainerHost.containerID(1, host.tag).prefix(12)))
        let second = namespaces[host.inode("nacct-c2-\(host.tag)")]
        #expect(second?["unit"] as? String == "nacct-web-\(host.tag).service" && second?["container"] is NSNull)
        #expect(namespaces[third.0]?["pod"] as? String == "4f1c2a9e-0b7d-4c3e-9a51-000000000003")
        #expect(namespaces[Int(NetworkNamespace.inode())]?["host"] as? Bool == true)
    }

    @Test func dropsInTwoNamespacesAreEachReportedOnceWithTheirNamespaceAndOwner() throws {
        let host = try ContainerHost(spokes: 2)
        let before = try (1...2).map { try host.snmp(host.spokes[$0]!.namespace, "Udp", "RcvbufErrors") }
        let run = try ToolRun("drops", ["-A"], ready: "drops program attached")
        try host.sendUDP(to: 1, 60, bytes: 1000)
        try host.sendUDP(to: 2, 40, bytes: 1000)
        usleep(300_000)
        let (status, objects, err) = try run.finish(timeout: 0.5)
        #expect(status == 0, "\(err)")
        for index in 1...2 {
            let spoke = host.spokes[index]!
            let dropped = try host.snmp(spoke.namespace, "Udp", "RcvbufErrors") - before[index - 1]
            #expect(dropped > 0)
            let mine = objects.filter { ($0["netns"] as? [String: Any])?["name"] as? String == spoke.namespace }
            #expect(UInt64(mine.count) == dropped, "spoke \(index): \(mine.count) shown, the kernel dropped \(dropped)")
            #expect(mine.allSatisfy { $0["pid"] as? Int == Int(spoke.server.processIdentifier) && $0["reason"] as? String == "SOCKET_RCVBUFF"
                && $0["daddr"] as? String == spoke.address && $0["ifname"] as? String == "eth0" })
            let netns = mine.first?["netns"] as? [String: Any]
            #expect(netns?["inode"] as? Int == host.inode(spoke.namespace))
            #expect(netns?[spoke.workload.kind.rawValue] as? String == spoke.workload.name)
        }
    }

    @Test func latencyFollowsAFlowInEachNamespaceAndInOneMadeLater() throws {
        let host = try ContainerHost(spokes: 2)
        let latency = try ToolRun("latency", ["in", "-A"], ready: "latency follows every network namespace")
        let third = try host.add(3)
        // Followed within a second or so of its making: its IP points attached.
        try latency.awaitErr("latency follows network namespace \(third.namespace)")
        for index in 1...3 { try host.sendTCP(to: index, 5) }
        usleep(300_000)
        let (status, objects, err) = try latency.finish(timeout: 0.5)
        #expect(status == 0, "\(err)")
        for index in 1...3 {
            let spoke = host.spokes[index]!
            let mine = objects.filter { ($0["netns"] as? [String: Any])?["name"] as? String == spoke.namespace && $0["dport"] as? Int == 7001 }
            #expect(mine.count == 5, "spoke \(index): \(mine.count) segments")
            #expect(mine.allSatisfy { $0["pid"] as? Int == Int(spoke.server.processIdentifier) && $0["daddr"] as? String == spoke.address })
        }
        #expect(!err.contains("not followed by latency"))
    }

    @Test func latencyHistogramsAndDropsSummariesAreEachNamespacesOwn() throws {
        let host = try ContainerHost(spokes: 2)
        let dropsBefore = try (1...2).map { try host.snmp(host.spokes[$0]!.namespace, "Udp", "RcvbufErrors") }
        let latency = try ToolRun("latency", ["in", "-A", "--hist", "0.5", "--count", "8"], ready: "latency follows every network namespace")
        let drops = try ToolRun("drops", ["-A", "--summary", "0.5", "--count", "8"], ready: "drops program attached")
        try host.sendTCP(to: 1, 5)
        try host.sendTCP(to: 2, 3)
        try host.sendUDP(to: 1, 30, bytes: 1000)
        try host.sendUDP(to: 2, 20, bytes: 1000)
        let histograms = try latency.finish(timeout: 30), summaries = try drops.finish(timeout: 30)
        #expect(histograms.status == 0 && summaries.status == 0, "\(histograms.err) \(summaries.err)")
        for (index, segments) in [(1, 5), (2, 3)] {
            let spoke = host.spokes[index]!
            func named(_ object: [String: Any]) -> Bool { (object["netns"] as? [String: Any])?["name"] as? String == spoke.namespace }
            // Each interval's histograms are per namespace: this one's hold its segments only.
            let counted = histograms.objects.filter(named).flatMap { $0["stages"] as? [[String: Any]] ?? [] }
                .filter { $0["stage"] as? String == "total" }.reduce(0) { $0 + ($1["count"] as? Int ?? 0) }
            #expect(counted == segments, "spoke \(index)")
            let dropped = try host.snmp(spoke.namespace, "Udp", "RcvbufErrors") - dropsBefore[index - 1]
            let rows = summaries.objects.flatMap { $0["drops"] as? [[String: Any]] ?? [] }.filter(named)
            #expect(dropped > 0 && UInt64(rows.reduce(0) { $0 + ($1["count"] as? Int ?? 0) }) == dropped, "spoke \(index)")
            #expect(rows.allSatisfy { $0["pid"] as? Int == Int(spoke.server.processIdentifier) && $0["reason"] as? String == "SOCKET_RCVBUFF" })
        }
    }

    @Test func netnsTakesANameAPIDOrAPath() throws {
        let host = try ContainerHost(spokes: 2)
        let spoke = host.spokes[1]!
        for (form, value) in [("name", spoke.namespace), ("PID", String(spoke.server.processIdentifier)), ("path", "/run/netns/\(spoke.namespace)")] {
            let before = try Self.kernel(host, 1)
            let run = try ToolRun("nic", ["--netns", value, "0.5", "2"], ready: "nic programs attached")
            try host.sendUDP(to: 1, 7, bytes: 50)
            let (status, objects, err) = try run.finish(timeout: 10)
            #expect(status == 0, "\(form): \(err)")
            let (totals, namespaces, _) = Self.sum(objects)
            let inode = host.inode(spoke.namespace)
            #expect(Set(totals.keys) == ["\(inode)/eth0"], "\(form): only its namespace's interfaces that are up")
            #expect(totals["\(inode)/eth0"] == (try Self.kernel(host, 1)) - before, "\(form)")
            #expect(namespaces[inode]?["container"] as? String == spoke.workload.name, "\(form)")
        }
        let unknown = try Binary.run(["nic", "--netns", "nacct-none-\(host.tag)", "0.1", "1"])
        #expect(unknown.status == 1)
        #expect(unknown.err.contains("No network namespace nacct-none-\(host.tag) (/run/netns/nacct-none-\(host.tag): No such file or directory)"))
        let notOne = try Binary.run(["nic", "--netns", "/etc/hostname", "0.1", "1"])
        #expect(notOne.status == 1 && notOne.err.contains("/etc/hostname is not a network namespace"))
        let both = try Binary.run(["drops", "-A", "--netns", spoke.namespace])
        #expect(both.status == 2 && both.err.contains("give one of them"))
    }

    @Test func theDaemonsSeriesCarryEachNamespaceAndItsContainer() throws {
        let host = try ContainerHost(spokes: 2)
        let before = try (1...2).map { try Self.kernel(host, $0) }
        let dropsBefore = try (1...2).map { try host.snmp(host.spokes[$0]!.namespace, "Udp", "RcvbufErrors") }
        let address = "127.0.0.1:\(Self.port)"
        let daemon = try DaemonProcess(extra: ["--nic", "--drops", "--latency", "-A", "--listen", address, "-v"])
        defer { daemon.stopExpectingSuccess() }
        // The API answers once it listens, its collectors ready.
        var scrape = (status: 0, body: "")
        for _ in 0..<100 where scrape.status != 200 {
            scrape = try Curl.get("http://\(address)/metrics")
            if scrape.status != 200 { usleep(100_000) }
        }
        // A namespace made while it runs: followed at a maintenance second, in and out.
        let third = try host.add(3)
        try daemon.awaitLog("latency follows network namespace \(third.namespace)")
        for index in 1...3 { try host.sendTCP(to: index, 5) }
        try host.sendUDP(to: 1, 12, bytes: 1000)
        try host.sendUDP(to: 2, 8, bytes: 1000)
        usleep(300_000)
        scrape = try Curl.get("http://\(address)/metrics")
        #expect(scrape.status == 200)
        let lines = scrape.body.split(separator: "\n")
        func value(_ prefix: String) -> UInt64? {
            lines.first { $0.hasPrefix(prefix) }.flatMap { UInt64($0.split(separator: " ").last ?? "") }
        }
        for index in 1...3 {
            let spoke = host.spokes[index]!
            let namespace = "netns=\"\(spoke.namespace)\",\(spoke.workload.kind.rawValue)=\"\(spoke.workload.name)\""
            if index < 3 {
                let delta = try Self.kernel(host, index) - before[index - 1]
                let labels = "interface=\"eth0\",queue=\"0\",direction=\"rx\",\(namespace)"
                #expect(value("netacct_nic_frames_total{\(labels)}") == delta.rxPackets, "spoke \(index)")
                #expect(value("netacct_nic_bytes_total{\(labels)}") == delta.rxBytes, "spoke \(index)")
                let dropped = try host.snmp(spoke.namespace, "Udp", "RcvbufErrors") - dropsBefore[index - 1]
                #expect(dropped > 0 && value("netacct_drops_total{reason=\"SOCKET_RCVBUFF\",protocol=\"udp\",\(namespace)}") == dropped, "spoke \(index)")
            }
            // Each namespace's own histograms: its five segments in.
            #expect(value("netacct_latency_seconds_count{direction=\"in\",stage=\"total\",\(namespace)}") == 5, "spoke \(index)")
        }
        // The API's latency reply: a direction per namespace, named.
        let reply = try JSONSerialization.jsonObject(with: Data(try Curl.get("http://\(address)/api/v1/latency").body.utf8)) as? [String: Any]
        let named = (reply?["directions"] as? [[String: Any]] ?? []).compactMap { ($0["netns"] as? [String: Any])?["name"] as? String }
        #expect(Set(host.spokes.values.map(\.namespace)).isSubset(of: Set(named)))
    }
}
