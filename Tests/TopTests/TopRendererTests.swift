import Foundation
import Accounting
import NetacctKit
import Top
import Testing

/// The `--json` line: keys in the documented order, values escaped, valid JSON.
struct TopRendererTests {
    @Test func jsonKeepsTheDocumentedOrderAndEscapes() throws {
        let id = ProcessID(pid: 7, startNanoseconds: 1)
        let thread = ProcessTable.ThreadSample(id: ThreadID(tid: 8, startNanoseconds: 2, process: id), comm: "w\"1",
                                               exited: true, total: .zero, delta: Traffic(udpTxPackets: 1, udpTxBytes: 9))
        let process = ProcessTable.ProcessSample(id: id, comm: "a\\b\n\"c\"", cgroupID: 0, exited: false,
                                                 total: .zero, delta: Traffic(tcpRxPackets: 2, tcpRxBytes: 20, udpTxPackets: 1, udpTxBytes: 9),
                                                 threads: [thread])
        let interval = TopInterval(time: Date(timeIntervalSince1970: 0), seconds: 1.5, samples: [process])
        var renderer = TopRenderer(threads: true, summary: true, cgroups: CgroupNames(mountInfo: ""))
        let line = try renderer.json(interval)
        #expect(line.hasPrefix(#"{"time":"1970-01-01T00:00:00.000Z","interval_s":1.500,"processes":[{"pid":7,"comm":"a\\b\n\"c\"","cgroup":null,"exited":false,"tcp_tx_packets":0,"tcp_tx_bytes":0,"tcp_rx_packets":2,"tcp_rx_bytes":20,"udp_tx_packets":1,"udp_tx_bytes":9,"udp_rx_packets":0,"udp_rx_bytes":0,"threads":[{"tid":8,"comm":"w\"1","exited":true,"#))
        let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        let processes = try #require(object["processes"] as? [[String: Any]])
        #expect(processes.first?["comm"] as? String == "a\\b\n\"c\"")
        #expect((processes.first?["threads"] as? [[String: Any]])?.first?["udp_tx_bytes"] as? Int == 9)
    }

    /// A socket's traffic is shown under its process even in an interval where the process's own
    /// counters moved nothing (a call made between the two reads of a sample counts in the
    /// process's delta of one interval and the socket's of the next); an idle socket is not.
    @Test func aProcessWhoseSocketMovedIsShownEvenWhenItsOwnCountersDidNot() {
        let id = ProcessID(pid: 7, startNanoseconds: 1), idle = ProcessID(pid: 8, startNanoseconds: 1)
        let quiet = ProcessTable.ProcessSample(id: id, comm: "talker", cgroupID: 0, exited: false,
                                               total: Traffic(tcpTxPackets: 2, tcpTxBytes: 3000), delta: .zero, threads: [])
        let other = ProcessTable.ProcessSample(id: idle, comm: "idle", cgroupID: 0, exited: false,
                                               total: Traffic(tcpTxPackets: 1, tcpTxBytes: 10), delta: .zero, threads: [])
        var moved = SocketSample(id: .init(cookie: 1, process: id), transport: .tcp, family: .ipv4, localAddress: "127.0.0.1",
                                 localPort: 40000, remoteAddress: "127.0.0.1", remotePort: 80,
                                 total: SocketTraffic(txPackets: 2, txBytes: 3000), closed: false)
        moved.delta = SocketTraffic(txPackets: 1, txBytes: 1500)
        let still = SocketSample(id: .init(cookie: 2, process: idle), transport: .tcp, family: .ipv4, localAddress: "127.0.0.1",
                                 localPort: 40001, remoteAddress: "127.0.0.1", remotePort: 80,
                                 total: SocketTraffic(txPackets: 1, txBytes: 10), closed: false)
        let interval = TopInterval(time: Date(timeIntervalSince1970: 0), seconds: 1, samples: [quiet, other], sockets: [moved, still])
        #expect(interval.processes.map(\.id) == [id])
    }

    @Test func theSummarySaysEveryLossSinceStart() {
        var renderer = TopRenderer(threads: false, summary: true, cgroups: CgroupNames(mountInfo: ""))
        let interval = TopInterval(time: Date(timeIntervalSince1970: 0), seconds: 1, samples: [])
        #expect(!renderer.table(interval).contains("WARNING"))
        let losses = Snapshot.Losses(uncountedCalls: 1, droppedExits: 2, unregisteredProcesses: 3, lateThreadExits: 4, forgottenExits: 5)
        let warning = renderer.table(interval, losses: losses).split(separator: "\n").first { $0.hasPrefix("WARNING") }
        #expect(warning == """
            WARNING since start: 1 calls not counted (no room for thread counters); 2 thread exits lost (exit ledger full); \
            3 processes unregistered (registry full; their exits found through /proc); 4 thread exits after their process's; \
            5 exited processes forgotten before delivery (exit backlog full)
            """)
    }
}
