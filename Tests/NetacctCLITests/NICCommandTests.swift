import Accounting
import Foundation
import Glibc
import Testing

/// Two network namespaces this test makes, joined by a veth pair with 4 TX and 4 RX queues on
/// each end, quiet (no IPv6, no ARP: static neighbours), with XPS sending CPU 0's frames to
/// tx-0 and CPU 1's to tx-1. Deleted at the end.
final class VethPair {
    let sender: String, receiver: String
    static let senderAddress = "10.199.0.1", receiverAddress = "10.199.0.2"

    /// Pairs made so far by this process: suites run at once, and each pair has its own names.
    nonisolated(unsafe) static var made = 0
    static let lock = NSLock()

    init() throws {
        let serial = Self.lock.withLock {
            Self.made += 1
            return Self.made
        }
        let tag = "\(getpid() % 100_000)-\(serial)"
        sender = "nacct-a\(tag)"
        receiver = "nacct-b\(tag)"
        try Self.sh("""
            ip netns add \(sender); ip netns add \(receiver)
            ip link add va netns \(sender) numtxqueues 4 numrxqueues 4 type veth peer vb netns \(receiver) numtxqueues 4 numrxqueues 4
            for ns in \(sender) \(receiver); do ip netns exec $ns sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1; done
            ip netns exec \(sender) sysctl -qw net.ipv6.conf.va.disable_ipv6=1
            ip netns exec \(receiver) sysctl -qw net.ipv6.conf.vb.disable_ipv6=1
            ip -n \(sender) addr add \(Self.senderAddress)/24 dev va
            ip -n \(receiver) addr add \(Self.receiverAddress)/24 dev vb
            ip -n \(sender) link set va arp off; ip -n \(receiver) link set vb arp off
            ip -n \(sender) neigh add \(Self.receiverAddress) lladdr $(ip netns exec \(receiver) cat /sys/class/net/vb/address) dev va nud permanent
            ip -n \(receiver) neigh add \(Self.senderAddress) lladdr $(ip netns exec \(sender) cat /sys/class/net/va/address) dev vb nud permanent
            ip -n \(sender) link set va up; ip -n \(receiver) link set vb up
            ip netns exec \(sender) sh -c 'q=/sys/class/net/va/queues; echo 1 > $q/tx-0/xps_cpus; echo 2 > $q/tx-1/xps_cpus; echo 0 > $q/tx-2/xps_cpus; echo 0 > $q/tx-3/xps_cpus'
            """)
        try listen()
    }

    deinit {
        // SIGTERM may be blocked in what the test runner starts. Never kill(0, …): a listener
        // that never started has no PID, and 0 is this whole process group.
        if listener.processIdentifier > 0 {
            kill(listener.processIdentifier, SIGKILL)
            listener.waitUntilExit()
        }
        _ = try? Self.sh("ip netns del \(sender); ip netns del \(receiver)")
    }

    /// A socket on the receiver's port 9999, so that no ICMP "port unreachable" comes back.
    let listener = Process()

    private func listen() throws {
        listener.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
        listener.arguments = ["netns", "exec", receiver, "/usr/bin/python3", "-c", """
            import socket, sys, time
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind(("\(Self.receiverAddress)", 9999))
            print("bound", flush=True)
            time.sleep(120)
            """]
        let out = Pipe()
        listener.standardOutput = out
        try listener.run()
        _ = LineReader(out.fileHandleForReading).next()
    }

    /// Sends `count` UDP datagrams of `bytes` bytes to the receiver's port 9999 from CPU `cpu`.
    func send(_ count: Int, bytes: Int, cpu: Int) throws {
        try Self.sh("""
            ip netns exec \(sender) taskset -c \(cpu) /usr/bin/python3 -c "
            import socket
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            for _ in range(\(count)): s.sendto(b'y' * \(bytes), ('\(Self.receiverAddress)', 9999))"
            """)
    }

    /// A device statistic (`tx_packets`, `rx_bytes`, …) of va (in the sender) or vb.
    func statistic(_ name: String, onReceiver: Bool) throws -> Int {
        let (namespace, device) = onReceiver ? (receiver, "vb") : (sender, "va")
        return Int(try Self.sh("ip netns exec \(namespace) cat /sys/class/net/\(device)/statistics/\(name)")
            .trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1
    }

    @discardableResult
    static func sh(_ script: String) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-ec", script]
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let output = out.fileHandleForReading.readDataToEndOfFile()
        let error = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw DaemonTestError("sh failed (\(process.terminationStatus)): \(String(decoding: error, as: UTF8.self))")
        }
        return String(decoding: output, as: UTF8.self)
    }
}

/// `netacct nic` in a namespace the test made: started with -v, it says on standard error when
/// its programs are attached; only then does the test send.
final class NICRun {
    let process = Process()
    let out = Pipe(), err = Pipe()

    init(namespace: String, _ arguments: [String]) throws {
        process.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
        process.arguments = ["netns", "exec", namespace, Binary.url.path, "nic", "-v"] + arguments
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let lines = LineReader(err.fileHandleForReading)
        while let line = lines.next(), !line.contains("nic programs attached") {}
    }

    /// Ends the interval now (SIGINT: netacct prints the interval so far, then exits).
    func interrupt() {
        kill(process.processIdentifier, SIGINT)
    }

    func finish() -> (status: Int32, out: String) {
        let output = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: output, as: UTF8.self))
    }
}

@Suite(.serialized, .enabled(if: TopCommandTests.isRoot, "makes network namespaces and loads BPF programs: needs root"))
struct NICCommandTests {
    /// 200 bytes of UDP payload + 8 UDP + 20 IPv4 + 14 Ethernet: what the devices count.
    static let frame = 242

    @Test func exactCountsPerTXQueueAndTotalsEqualTheDevicesStatistics() throws {
        let pair = try VethPair()
        // One long interval, ended by SIGINT once everything is sent: however busy the machine,
        // all of it falls in the interval.
        let sending = try NICRun(namespace: pair.sender, ["-n", "va", "60", "1", "--json"])
        let receiving = try NICRun(namespace: pair.receiver, ["-n", "vb", "60", "1", "--json"])
        let before = (try pair.statistic("tx_packets", onReceiver: false), try pair.statistic("tx_bytes", onReceiver: false),
                      try pair.statistic("rx_packets", onReceiver: true), try pair.statistic("rx_bytes", onReceiver: true))
        try pair.send(20, bytes: 200, cpu: 1)
        try pair.send(10, bytes: 200, cpu: 0)
        let after = (try pair.statistic("tx_packets", onReceiver: false), try pair.statistic("tx_bytes", onReceiver: false),
                     try pair.statistic("rx_packets", onReceiver: true), try pair.statistic("rx_bytes", onReceiver: true))
        sending.interrupt()
        receiving.interrupt()
        let (txStatus, txOut) = sending.finish()
        let (rxStatus, rxOut) = receiving.finish()
        #expect(txStatus == 0 && rxStatus == 0)

        func interface(_ line: String) throws -> [String: Any] {
            let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            let interfaces = try #require(object["interfaces"] as? [[String: Any]])
            #expect(interfaces.count == 1)
            return try #require(interfaces.first)
        }
        func counts(_ direction: [String: Any]?) -> [[Int]] {
            ((direction?["queues"] as? [[String: Any]]) ?? []).map { [$0["queue"], $0["packets"], $0["bytes"], $0["segments"]].map { $0 as? Int ?? -1 } }
        }
        func total(_ direction: [String: Any]?) -> [Int] {
            let total = direction?["total"] as? [String: Any]
            return ["packets", "bytes", "segments"].map { total?[$0] as? Int ?? -1 }
        }
        let va = try interface(try #require(txOut.split(separator: "\n").first.map(String.init)))
        #expect(va["name"] as? String == "va")
        // XPS put CPU 1's 20 frames on tx-1 and CPU 0's 10 on tx-0: exactly, nothing else.
        #expect(counts(va["tx"] as? [String: Any]) == [[0, 10, 10 * Self.frame, 10], [1, 20, 20 * Self.frame, 20], [2, 0, 0, 0], [3, 0, 0, 0]])
        #expect(total(va["tx"] as? [String: Any]) == [after.0 - before.0, after.1 - before.1, 30])
        #expect(after.0 - before.0 == 30 && after.1 - before.1 == 30 * Self.frame)
        #expect(total(va["rx"] as? [String: Any]) == [0, 0, 0])
        // The receiving end, in the other namespace (the same ifindex may exist in both).
        let vb = try interface(try #require(rxOut.split(separator: "\n").first.map(String.init)))
        #expect(vb["name"] as? String == "vb")
        #expect(total(vb["rx"] as? [String: Any]) == [after.2 - before.2, after.3 - before.3, 30])
        #expect(total(vb["tx"] as? [String: Any]) == [0, 0, 0])
    }

    @Test func theTableShowsAverageSizesAndRates() throws {
        let pair = try VethPair()
        let run = try NICRun(namespace: pair.sender, ["-n", "va", "60", "1"])
        try pair.send(20, bytes: 200, cpu: 1)
        run.interrupt()
        let (status, out) = run.finish()
        #expect(status == 0)
        let lines = out.split(separator: "\n").map(String.init)
        let ifindex = try VethPair.sh("ip netns exec \(pair.sender) cat /sys/class/net/va/ifindex").trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(lines.contains("va (ifindex \(ifindex))"), "\(lines.prefix(3))")
        let tx = try #require(lines.firstIndex(of: "TX")), rx = try #require(lines.firstIndex(of: "RX"))
        let queue1 = try #require(lines[tx..<rx].first { $0.split(separator: " ").first == "1" }).split(separator: " ")
        #expect(queue1[1] == "242.0") // average frame size
        // The interval's length is on the first line, "HH:MM:SS  (1.23s)": 20 frames in it.
        let seconds = try #require(Double(lines[0].split(separator: "(").last?.dropLast(2) ?? ""))
        let pps = try #require(Double(queue1[3]))
        // (shown to 1/100 s: the rate lies between what the rounded ends give)
        #expect(pps >= 20 / (seconds + 0.006) - 0.1 && pps <= 20 / max(seconds - 0.006, 0.001) + 0.1, "\(pps) frames/s in \(seconds) s")
        let bps = try #require(Double(queue1[2]))
        // Bytes/s over frames/s: the frame size again, within what rounding both to 0.1 allows
        // (at 4 frames/s, a slow interval of 5 s, that is 3 bytes).
        #expect(abs(bps / pps - 242) <= (242 * 0.05 + 0.05) / (pps - 0.05) + 0.01, "\(bps) B/s, \(pps) frames/s")
        let totalRow = try #require(lines[tx..<rx].first { $0.split(separator: " ").first == "Total" }).split(separator: " ")
        #expect(totalRow[1] == "242.0")
    }

    @Test func theDaemonServesNICCountersWithNIC() throws {
        let pair = try VethPair()
        let daemon = try DaemonProcess(extra: ["--nic"], namespace: pair.sender)
        try pair.send(20, bytes: 200, cpu: 1)
        try pair.send(10, bytes: 200, cpu: 0)
        let api = try DaemonAPI.Connection(path: daemon.api)
        let line = try api.request("nic")
        let object = try #require(try JSONSerialization.jsonObject(with: line) as? [String: Any])
        #expect(object["version"] as? Int == 1 && object["verb"] as? String == "nic")
        let interfaces = try #require(object["interfaces"] as? [[String: Any]])
        let va = try #require(interfaces.first { $0["name"] as? String == "va" })
        let queues = try #require((va["tx"] as? [String: Any])?["queues"] as? [[String: Any]])
        // Cumulative since the daemon started; nothing else crossed va.
        #expect(queues.map { $0["packets"] as? Int ?? -1 } == [10, 20, 0, 0])
        #expect(queues.map { $0["bytes"] as? Int ?? -1 } == [10 * Self.frame, 20 * Self.frame, 0, 0])
        // Accounting is served beside it: the two senders, exited, with exactly what they sent.
        let senders = try api.processes().processes.filter { $0.exited && $0.comm == "python3" }.map(\.total)
        #expect(senders.contains(Traffic(udpTxPackets: 20, udpTxBytes: 20 * 200)))
        #expect(senders.contains(Traffic(udpTxPackets: 10, udpTxBytes: 10 * 200)))
        let unknown = try #require(try JSONSerialization.jsonObject(with: try api.request("what")) as? [String: Any])
        #expect(unknown["error"] as? String == "unknown request \"what\" (requests: processes, nic)")
        #expect(daemon.stop().status == 0)
    }

    @Test func anInterfaceThatGoesAwayIsReportedOnceAndTheOthersGoOn() throws {
        let pair = try VethPair()
        let run = try NICRun(namespace: pair.sender, ["-n", "va", "-n", "lo", "0.4", "4", "--json"])
        let lines = LineReader(run.out.fileHandleForReading)
        let first = try #require(lines.next())
        #expect(first.contains(#""name":"va""#) && first.contains(#""name":"lo""#))
        try VethPair.sh("ip -n \(pair.sender) link del va")
        var rest: [String] = []
        while let line = lines.next() { rest.append(line) }
        run.process.waitUntilExit()
        #expect(run.process.terminationStatus == 0)
        #expect(rest.count == 3)
        #expect(rest.allSatisfy { !$0.contains(#""name":"va""#) && $0.contains(#""name":"lo""#) })
        let log = String(decoding: run.err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(log.components(separatedBy: "interface va has gone").count - 1 == 1)
    }

    @Test func aQueueThatAppearsIsShown() throws {
        let pair = try VethPair()
        try VethPair.sh("ip netns exec \(pair.sender) ethtool -L va tx 2 rx 2")
        let run = try NICRun(namespace: pair.sender, ["-n", "va", "0.4", "3", "--json"])
        let lines = LineReader(run.out.fileHandleForReading)
        func txQueues(_ line: String?) throws -> Int {
            let object = try #require(try JSONSerialization.jsonObject(with: Data((line ?? "").utf8)) as? [String: Any])
            let interface = try #require((object["interfaces"] as? [[String: Any]])?.first)
            return ((interface["tx"] as? [String: Any])?["queues"] as? [Any])?.count ?? -1
        }
        #expect(try txQueues(lines.next()) == 2)
        try VethPair.sh("ip netns exec \(pair.sender) ethtool -L va tx 4")
        _ = lines.next()
        #expect(try txQueues(lines.next()) == 4)
        run.process.waitUntilExit()
    }

    @Test func anUnknownInterfaceIsAnErrorThatListsTheInterfaces() throws {
        let result = try Binary.run(["nic", "-n", "no-such-nic0", "1", "1"])
        #expect(result.status == 1)
        #expect(result.err.contains("No interface no-such-nic0 in this network namespace; its interfaces: "))
        #expect(result.err.contains("lo"))
    }
}
