import FoundationEssentials
@testable import NetacctServers
import Accounting
import DaemonProtocol
import Latency
import NIC
import NetacctKit
import Testing

/// The collectors' records, built from the tools' models, written by the protocol: the exact
/// bytes the daemon wrote for the same models before its replies were records (taken from
/// that code).
struct ProtocolRecordsTests {
    static let traffic = Traffic(tcpTxPackets: 1, tcpTxBytes: 2, tcpRxPackets: 3, tcpRxBytes: 4, udpTxPackets: 5, udpTxBytes: 6, udpRxPackets: 7, udpRxBytes: .max)
    static let pid = ProcessID(pid: 42, startNanoseconds: 5_685_494_157_865)
    static let processes = [
        ProcessTable.ProcessSample(id: pid, comm: "python3 /x\t", cgroupID: 1234, exited: false, total: traffic, delta: .zero, threads: [
            ProcessTable.ThreadSample(id: ThreadID(tid: 43, startNanoseconds: 5_685_494_157_999, process: pid), comm: "worker\"\\\u{1}é",
                                      exited: true, total: traffic, delta: .zero),
        ]),
        ProcessTable.ProcessSample(id: ProcessID(pid: 7, startNanoseconds: 1), comm: "", cgroupID: 1, exited: true, total: .zero, delta: .zero, threads: []),
    ]
    static let losses = Snapshot.Losses(uncountedCalls: 1, droppedExits: 2, unregisteredProcesses: 3, lateThreadExits: 4, forgottenExits: 5, uncountedSocketCalls: 6)

    static func line(_ reply: some DaemonReply) throws -> String { String(decoding: try DaemonAPI.line(reply), as: UTF8.self) }

    @Test func processes() throws {
        for (threads, expected) in [(false, #"{"version":1,"verb":"processes","threads_kept":false,"processes":[{"pid":42,"start_ns":5685494157865,"comm":"python3 /x\t","cgroup_id":1234,"exited":false,"tcp_tx_packets":1,"tcp_tx_bytes":2,"tcp_rx_packets":3,"tcp_rx_bytes":4,"udp_tx_packets":5,"udp_tx_bytes":6,"udp_rx_packets":7,"udp_rx_bytes":18446744073709551615},{"pid":7,"start_ns":1,"comm":"","cgroup_id":1,"exited":true,"tcp_tx_packets":0,"tcp_tx_bytes":0,"tcp_rx_packets":0,"tcp_rx_bytes":0,"udp_tx_packets":0,"udp_tx_bytes":0,"udp_rx_packets":0,"udp_rx_bytes":0}],"losses":{"uncounted_calls":1,"dropped_exits":2,"unregistered_processes":3,"late_thread_exits":4,"forgotten_exits":5,"uncounted_socket_calls":6}}"#), (true, #"{"version":1,"verb":"processes","threads_kept":true,"processes":[{"pid":42,"start_ns":5685494157865,"comm":"python3 /x\t","cgroup_id":1234,"exited":false,"tcp_tx_packets":1,"tcp_tx_bytes":2,"tcp_rx_packets":3,"tcp_rx_bytes":4,"udp_tx_packets":5,"udp_tx_bytes":6,"udp_rx_packets":7,"udp_rx_bytes":18446744073709551615,"threads":[{"tid":43,"start_ns":5685494157999,"comm":"worker\"\\\u0001é","exited":true,"tcp_tx_packets":1,"tcp_tx_bytes":2,"tcp_rx_packets":3,"tcp_rx_bytes":4,"udp_tx_packets":5,"udp_tx_bytes":6,"udp_rx_packets":7,"udp_rx_bytes":18446744073709551615}]},{"pid":7,"start_ns":1,"comm":"","cgroup_id":1,"exited":true,"tcp_tx_packets":0,"tcp_tx_bytes":0,"tcp_rx_packets":0,"tcp_rx_bytes":0,"udp_tx_packets":0,"udp_tx_bytes":0,"udp_rx_packets":0,"udp_rx_bytes":0,"threads":[]}],"losses":{"uncounted_calls":1,"dropped_exits":2,"unregistered_processes":3,"late_thread_exits":4,"forgotten_exits":5,"uncounted_socket_calls":6}}"#)] {
            let reply = ProcessesReply(threadsKept: threads, processes: Self.processes.map { ProcessRecord($0, threads: threads) }, losses: Losses(Self.losses))
            #expect(try Self.line(reply) == expected + "\n")
        }
        #expect(try Self.line(ProcessesReply(threadsKept: false, processes: [], losses: Losses(.init()))) == #"{"version":1,"verb":"processes","threads_kept":false,"processes":[],"losses":{"uncounted_calls":0,"dropped_exits":0,"unregistered_processes":0,"late_thread_exits":0,"forgotten_exits":0,"uncounted_socket_calls":0}}"# + "\n")
    }

    @Test func sockets() throws {
        let samples = [
            SocketSample(id: .init(cookie: 9_000_000_001, process: Self.pid), transport: .tcp, family: .ipv4, localAddress: "127.0.0.1", localPort: 36346,
                         remoteAddress: "127.0.0.1", remotePort: 49331, total: SocketTraffic(txPackets: 1, txBytes: 5000, rxPackets: 2, rxBytes: 10), closed: true),
            SocketSample(id: .init(cookie: 3, process: ProcessID(pid: 8, startNanoseconds: 2)), transport: .udp, family: .ipv6, localAddress: "::", localPort: 38964,
                         remoteAddress: nil, remotePort: 0, total: SocketTraffic(txPackets: 1, txBytes: 100), closed: false),
        ]
        #expect(try Self.line(SocketsReply(sockets: samples.map(SocketRecord.init))) == #"{"version":1,"verb":"sockets","sockets":[{"pid":42,"start_ns":5685494157865,"cookie":9000000001,"protocol":"tcp","family":"ipv4","laddr":"127.0.0.1","lport":36346,"raddr":"127.0.0.1","rport":49331,"tx_packets":1,"tx_bytes":5000,"rx_packets":2,"rx_bytes":10,"closed":true},{"pid":8,"start_ns":2,"cookie":3,"protocol":"udp","family":"ipv6","laddr":"::","lport":38964,"raddr":"*","rport":null,"tx_packets":1,"tx_bytes":100,"rx_packets":0,"rx_bytes":0,"closed":false}]}"# + "\n")
    }

    @Test func nic() throws {
        let interfaces = [
            NICInterval.Interface(name: "va", ifindex: 2,
                                  tx: .init(queues: [QueueCounters(packets: 10, bytes: 2420, segments: 10), QueueCounters(packets: 20, bytes: 4840, segments: 25)]),
                                  rx: .init(queues: [QueueCounters(packets: 1, bytes: 60, segments: 1)])),
            NICInterval.Interface(name: "lo", ifindex: 1, tx: .init(queues: []), rx: .init(queues: [])),
        ]
        #expect(try Self.line(NICReply(interfaces: interfaces.map(InterfaceRecord.init))) == #"{"version":1,"verb":"nic","interfaces":[{"name":"va","ifindex":2,"tx":{"queues":[{"queue":0,"packets":10,"bytes":2420,"segments":10},{"queue":1,"packets":20,"bytes":4840,"segments":25}],"total":{"packets":30,"bytes":7260,"segments":35}},"rx":{"queues":[{"queue":0,"packets":1,"bytes":60,"segments":1}],"total":{"packets":1,"bytes":60,"segments":1}}},{"name":"lo","ifindex":1,"tx":{"queues":[],"total":{"packets":0,"bytes":0,"segments":0}},"rx":{"queues":[],"total":{"packets":0,"bytes":0,"segments":0}}}]}"# + "\n")
    }

    @Test func latency() throws {
        let directions = LatencyDirection.allCases.map { direction in
            LatencyReply.Direction(direction, (0...direction.stages.count).map { index in
                var histogram = LatencyHistogram()
                if index != 1 { for value: UInt64 in [1000, 1500, 2_000_000, 123_456_789] { histogram.add(value + UInt64(index)) } }
                return histogram
            })
        }
        #expect(try Self.line(LatencyReply(directions: directions)) == #"{"version":1,"verb":"latency","directions":[{"direction":"in","stages":[{"stage":"mac","count":4,"p50_us":1.536,"p90_us":123456.789,"p99_us":123456.789,"max_us":123456.789,"sum_us":125459.289,"buckets":[{"le_us":1.024,"count":1},{"le_us":2.048,"count":1},{"le_us":4.096,"count":0},{"le_us":8.192,"count":0},{"le_us":16.384,"count":0},{"le_us":32.768,"count":0},{"le_us":65.536,"count":0},{"le_us":131.072,"count":0},{"le_us":262.144,"count":0},{"le_us":524.288,"count":0},{"le_us":1048.576,"count":0},{"le_us":2097.152,"count":1},{"le_us":4194.304,"count":0},{"le_us":8388.608,"count":0},{"le_us":16777.216,"count":0},{"le_us":33554.432,"count":0},{"le_us":67108.864,"count":0},{"le_us":134217.728,"count":1}]},{"stage":"ip","count":0,"p50_us":null,"p90_us":null,"p99_us":null,"max_us":null,"sum_us":0.000,"buckets":[]},{"stage":"tcp","count":4,"p50_us":1.536,"p90_us":123456.791,"p99_us":123456.791,"max_us":123456.791,"sum_us":125459.297,"buckets":[{"le_us":1.024,"count":1},{"le_us":2.048,"count":1},{"le_us":4.096,"count":0},{"le_us":8.192,"count":0},{"le_us":16.384,"count":0},{"le_us":32.768,"count":0},{"le_us":65.536,"count":0},{"le_us":131.072,"count":0},{"le_us":262.144,"count":0},{"le_us":524.288,"count":0},{"le_us":1048.576,"count":0},{"le_us":2097.152,"count":1},{"le_us":4194.304,"count":0},{"le_us":8388.608,"count":0},{"le_us":16777.216,"count":0},{"le_us":33554.432,"count":0},{"le_us":67108.864,"count":0},{"le_us":134217.728,"count":1}]},{"stage":"total","count":4,"p50_us":1.536,"p90_us":123456.792,"p99_us":123456.792,"max_us":123456.792,"sum_us":125459.301,"buckets":[{"le_us":1.024,"count":1},{"le_us":2.048,"count":1},{"le_us":4.096,"count":0},{"le_us":8.192,"count":0},{"le_us":16.384,"count":0},{"le_us":32.768,"count":0},{"le_us":65.536,"count":0},{"le_us":131.072,"count":0},{"le_us":262.144,"count":0},{"le_us":524.288,"count":0},{"le_us":1048.576,"count":0},{"le_us":2097.152,"count":1},{"le_us":4194.304,"count":0},{"le_us":8388.608,"count":0},{"le_us":16777.216,"count":0},{"le_us":33554.432,"count":0},{"le_us":67108.864,"count":0},{"le_us":134217.728,"count":1}]}]},{"direction":"out","stages":[{"stage":"tcp","count":4,"p50_us":1.536,"p90_us":123456.789,"p99_us":123456.789,"max_us":123456.789,"sum_us":125459.289,"buckets":[{"le_us":1.024,"count":1},{"le_us":2.048,"count":1},{"le_us":4.096,"count":0},{"le_us":8.192,"count":0},{"le_us":16.384,"count":0},{"le_us":32.768,"count":0},{"le_us":65.536,"count":0},{"le_us":131.072,"count":0},{"le_us":262.144,"count":0},{"le_us":524.288,"count":0},{"le_us":1048.576,"count":0},{"le_us":2097.152,"count":1},{"le_us":4194.304,"count":0},{"le_us":8388.608,"count":0},{"le_us":16777.216,"count":0},{"le_us":33554.432,"count":0},{"le_us":67108.864,"count":0},{"le_us":134217.728,"count":1}]},{"stage":"ip","count":0,"p50_us":null,"p90_us":null,"p99_us":null,"max_us":null,"sum_us":0.000,"buckets":[]},{"stage":"qdisc","count":4,"p50_us":1.536,"p90_us":123456.791,"p99_us":123456.791,"max_us":123456.791,"sum_us":125459.297,"buckets":[{"le_us":1.024,"count":1},{"le_us":2.048,"count":1},{"le_us":4.096,"count":0},{"le_us":8.192,"count":0},{"le_us":16.384,"count":0},{"le_us":32.768,"count":0},{"le_us":65.536,"count":0},{"le_us":131.072,"count":0},{"le_us":262.144,"count":0},{"le_us":524.288,"count":0},{"le_us":1048.576,"count":0},{"le_us":2097.152,"count":1},{"le_us":4194.304,"count":0},{"le_us":8388.608,"count":0},{"le_us":16777.216,"count":0},{"le_us":33554.432,"count":0},{"le_us":67108.864,"count":0},{"le_us":134217.728,"count":1}]},{"stage":"total","count":4,"p50_us":1.536,"p90_us":123456.792,"p99_us":123456.792,"max_us":123456.792,"sum_us":125459.301,"buckets":[{"le_us":1.024,"count":1},{"le_us":2.048,"count":1},{"le_us":4.096,"count":0},{"le_us":8.192,"count":0},{"le_us":16.384,"count":0},{"le_us":32.768,"count":0},{"le_us":65.536,"count":0},{"le_us":131.072,"count":0},{"le_us":262.144,"count":0},{"le_us":524.288,"count":0},{"le_us":1048.576,"count":0},{"le_us":2097.152,"count":1},{"le_us":4194.304,"count":0},{"le_us":8388.608,"count":0},{"le_us":16777.216,"count":0},{"le_us":33554.432,"count":0},{"le_us":67108.864,"count":0},{"le_us":134217.728,"count":1}]}]}]}"# + "\n")
    }
}
