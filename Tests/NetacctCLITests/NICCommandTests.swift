import Accounting
import DaemonProtocol
import Foundation
import Glibc
import Testing

/// `netacct nic` in a namespace the test made: started with -v, it says on standard error when
/// its programs are attached; only then does the test send. One that ends, or stays silent for a
/// minute, before it is ready fails the test with what it said.
final class NICRun {
    let tool: NetacctProcess

    init(namespace: String, _ arguments: [String]) throws {
        tool = try NetacctProcess(["nic", "-v"] + arguments, namespace: namespace)
        try tool.awaitErr("nic programs attached")
    }

    /// Ends the interval now (SIGINT: netacct prints the interval so far, then exits).
    func interrupt() {
        tool.signal(SIGINT)
    }

    /// Its exit status (128 + the signal, if one ended it) and standard output.
    func finish() -> (status: Int32, out: String) {
        let status = tool.wait()
        return (status, tool.out)
    }
}

@Suite(.serialized, .enabled(if: isRoot, "makes network namespaces and loads BPF programs: needs root"))
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
        #expect(txStatus == 0 && rxStatus == 0, "\(sending.tool.err) \(receiving.tool.err)")

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
        #expect(status == 0, "\(run.tool.err)")
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
        let va = try #require(try DaemonAPI.decode(NICReply.self, from: line).interfaces.first { $0.name == "va" })
        // Cumulative since the daemon started; nothing else crossed va.
        #expect(va.tx.queues.map(\.queue) == [0, 1, 2, 3])
        #expect(va.tx.queues.map(\.packets) == [10, 20, 0, 0])
        #expect(va.tx.queues.map(\.bytes) == [10 * UInt64(Self.frame), 20 * UInt64(Self.frame), 0, 0])
        // Accounting is served beside it: the two senders, exited, with exactly what they sent.
        let senders = try api.processes().processes.filter { $0.exited && $0.comm == "python3" }.map(\.counters)
        #expect(senders.contains(Counters(udpTxPackets: 20, udpTxBytes: 20 * 200)))
        #expect(senders.contains(Counters(udpTxPackets: 10, udpTxBytes: 10 * 200)))
        let unknown = try #require(try JSONSerialization.jsonObject(with: try api.request("what")) as? [String: Any])
        #expect(unknown["error"] as? String == "unknown request \"what\" (requests: processes, nic)")
        daemon.stopExpectingSuccess()
    }

    @Test func anInterfaceThatGoesAwayIsReportedOnceAndTheOthersGoOn() throws {
        let pair = try VethPair()
        let run = try NICRun(namespace: pair.sender, ["-n", "va", "-n", "lo", "0.4", "4", "--json"])
        let first = try run.tool.line("its first interval")
        #expect(first.contains(#""name":"va""#) && first.contains(#""name":"lo""#))
        try VethPair.sh("ip -n \(pair.sender) link del va")
        var rest: [String] = []
        while let line = run.tool.nextLine() { rest.append(line) }
        run.tool.expectExit(0)
        #expect(rest.count == 3)
        #expect(rest.allSatisfy { !$0.contains(#""name":"va""#) && $0.contains(#""name":"lo""#) })
        #expect(run.tool.err.components(separatedBy: "interface va has gone").count - 1 == 1)
    }

    @Test func aQueueThatAppearsIsShown() throws {
        let pair = try VethPair()
        try VethPair.sh("ip netns exec \(pair.sender) ethtool -L va tx 2 rx 2")
        let run = try NICRun(namespace: pair.sender, ["-n", "va", "0.4", "3", "--json"])
        func txQueues(_ line: String) throws -> Int {
            let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            let interface = try #require((object["interfaces"] as? [[String: Any]])?.first)
            return ((interface["tx"] as? [String: Any])?["queues"] as? [Any])?.count ?? -1
        }
        #expect(try txQueues(run.tool.line("its first interval")) == 2)
        try VethPair.sh("ip netns exec \(pair.sender) ethtool -L va tx 4")
        _ = try run.tool.line("its second interval")
        #expect(try txQueues(run.tool.line("its third interval")) == 4)
        run.tool.expectExit(0)
    }

    @Test func anUnknownInterfaceIsAnErrorThatListsTheInterfaces() throws {
        let result = try Binary.run(["nic", "-n", "no-such-nic0", "1", "1"])
        #expect(result.status == 1)
        #expect(result.err.contains("No interface no-such-nic0 in this network namespace; its interfaces: "))
        #expect(result.err.contains("lo"))
    }
}
