import Foundation
@testable import NIC
import NetacctKit
import Testing

/// The nic tool's model and rendering, without a kernel: interfaces read from a made-up
/// /sys/class/net, an interval rendered as the table and the JSON line.
struct NICModelTests {
    @Test func interfacesComeFromSysfs() throws {
        let root = NSTemporaryDirectory() + "nic-sysfs-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: root) }
        func make(_ name: String, ifindex: Int, flags: String, tx: Int, rx: Int) throws {
            let base = "\(root)/\(name)"
            try FileManager.default.createDirectory(atPath: base + "/queues", withIntermediateDirectories: true)
            try "\(ifindex)\n".write(toFile: base + "/ifindex", atomically: true, encoding: .utf8)
            try "\(flags)\n".write(toFile: base + "/flags", atomically: true, encoding: .utf8)
            for queue in 0..<tx { try FileManager.default.createDirectory(atPath: base + "/queues/tx-\(queue)", withIntermediateDirectories: true) }
            for queue in 0..<rx { try FileManager.default.createDirectory(atPath: base + "/queues/rx-\(queue)", withIntermediateDirectories: true) }
        }
        try make("eth0", ifindex: 2, flags: "0x1003", tx: 4, rx: 2)
        try make("down0", ifindex: 3, flags: "0x1002", tx: 1, rx: 1)
        let all = NetworkInterface.all(sysfs: root)
        #expect(all == [NetworkInterface(name: "down0", ifindex: 3, txQueues: 1, rxQueues: 1, isUp: false),
                        NetworkInterface(name: "eth0", ifindex: 2, txQueues: 4, rxQueues: 2, isUp: true)])
        #expect(NetworkInterface.named("nope", sysfs: root) == nil)
    }

    static let interval = NICInterval(time: Date(timeIntervalSince1970: 0), seconds: 2, interfaces: [
        NICInterval.Interface(name: "va", ifindex: 5,
                              tx: .init(queues: [QueueCounters(packets: 10, bytes: 2420, segments: 10),
                                                 QueueCounters(packets: 20, bytes: 4840, segments: 40)]),
                              rx: .init(queues: [QueueCounters()])),
    ])

    @Test func theJSONLineHasCountsInTheInterval() throws {
        let line = NICRenderer.json(Self.interval)
        #expect(line == #"{"time":"1970-01-01T00:00:00.000Z","interval_s":2.000,"interfaces":[{"name":"va","ifindex":5,"tx":{"queues":[{"queue":0,"packets":10,"bytes":2420,"segments":10},{"queue":1,"packets":20,"bytes":4840,"segments":40}],"total":{"packets":30,"bytes":7260,"segments":50}},"rx":{"queues":[{"queue":0,"packets":0,"bytes":0,"segments":0}],"total":{"packets":0,"bytes":0,"segments":0}}}]}"#)
        #expect(try JSONSerialization.jsonObject(with: Data(line.utf8)) is [String: Any])
    }

    @Test func theTableDerivesAverageSizesAndRates() {
        let lines = NICRenderer.table(Self.interval).split(separator: "\n").map(String.init)
        #expect(lines[1] == "va (ifindex 5)")
        #expect(lines[2] == "TX")
        #expect(lines[3] == " QueueID    avg_size   BPS        PPS        segments/s")
        #expect(lines[4] == " 0          242.0      1210.0     5.0        5.0")
        #expect(lines[5] == " 1          242.0      2420.0     10.0       20.0")
        #expect(lines[6] == " Total      242.0      3630.0     15.0       25.0")
        #expect(lines[7] == "RX")
        #expect(lines[9] == " 0          0.0        0.0        0.0        0.0")
    }
}
