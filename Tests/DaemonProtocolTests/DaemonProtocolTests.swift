import DaemonProtocol
import FoundationEssentials
import NetacctKit
import Testing

/// The local API's records, kernel-free: each verb's reply written and read back equal, the
/// exact bytes of the replies the daemon wrote before the records existed, the envelope
/// (version, verb, error), the request words.
struct DaemonProtocolTests {
    static let counters = Counters(tcpTxPackets: 1, tcpTxBytes: 2, tcpRxPackets: 3, tcpRxBytes: 4, udpTxPackets: 5, udpTxBytes: 6,
                                   udpRxPackets: 7, udpRxBytes: .max)
    static let processes = ProcessesReply(threadsKept: true, processes: [
        ProcessRecord(pid: 42, startNs: 5_685_494_157_865, comm: "python3 /x\t", cgroupId: 1234, exited: false, counters: counters, threads: [
            ThreadRecord(tid: 43, startNs: 5_685_494_157_999, comm: "worker\"\\\u{1}é", exited: true, counters: counters),
        ]),
        ProcessRecord(pid: 7, startNs: 1, comm: "", cgroupId: 1, exited: true, counters: Counters(), threads: []),
    ], losses: Losses(uncountedCalls: 1, droppedExits: 2, unregisteredProcesses: 3, lateThreadExits: 4, forgottenExits: 5, uncountedSocketCalls: 6))
    static let sockets = SocketsReply(sockets: [
        SocketRecord(pid: 42, startNs: 5_685_494_157_865, cookie: 9_000_000_001, protocol: "tcp", family: "ipv4", laddr: "127.0.0.1", lport: 36346,
                     raddr: "127.0.0.1", rport: 49331, txPackets: 1, txBytes: 5000, rxPackets: 2, rxBytes: 10, closed: true),
        SocketRecord(pid: 8, startNs: 2, cookie: 3, protocol: "udp", family: "ipv6", laddr: "::", lport: 38964,
                     raddr: "*", rport: nil, txPackets: 1, txBytes: 100, rxPackets: 0, rxBytes: 0, closed: false),
    ])
    static let nic = NICReply(interfaces: [
        InterfaceRecord(name: "va", ifindex: 2,
                        tx: QueuesRecord(queues: [.init(queue: 0, packets: 10, bytes: 2420, segments: 10), .init(queue: 1, packets: 20, bytes: 4840, segments: 25)],
                                         total: .init(queue: nil, packets: 30, bytes: 7260, segments: 35)),
                        rx: QueuesRecord(queues: [.init(queue: 0, packets: 1, bytes: 60, segments: 1)], total: .init(queue: nil, packets: 1, bytes: 60, segments: 1))),
    ])
    static func us(_ nanoseconds: UInt64) -> Microseconds { Microseconds(nanoseconds: nanoseconds) }
    static let latency = LatencyReply(directions: [
        .init(direction: "in", stages: [
            .init(stage: "mac", count: 4, p50Us: us(1536), p90Us: us(123_456_789), p99Us: us(123_456_789), maxUs: us(123_456_789),
                  sumUs: us(125_459_289), buckets: [.init(leUs: us(1024), count: 1), .init(leUs: us(2048), count: 0)]),
            .init(stage: "ip", count: 0, p50Us: nil, p90Us: nil, p99Us: nil, maxUs: nil, sumUs: us(0), buckets: []),
        ]),
        .init(direction: "out", stages: [
            .init(stage: "total", count: 1, p50Us: us(.max), p90Us: us(1), p99Us: us(10), maxUs: us(.max), sumUs: us(.max), buckets: []),
        ]),
    ])

    static let drops = DropsReply(total: [DropCount(reason: "NO_SOCKET", protocol: "udp", count: 25), DropCount(reason: "SOCKET_RCVBUFF", protocol: "udp", count: .max)],
                                  processGroups: [GroupCounts(group: "nacct-deaf", counts: [DropCount(reason: "SOCKET_RCVBUFF", protocol: "udp", count: 39)]),
                                                  GroupCounts(group: "-", counts: [DropCount(reason: "NO_SOCKET", protocol: "udp", count: 25)]),
                                                  GroupCounts(group: "other", pid: nil, counts: []), GroupCounts(group: "web\"\\", pid: 42, counts: [])],
                                  cgroups: [CgroupCounts(cgroup: "/system.slice/web.service", name: "web.service", kind: "unit",
                                                         counts: [DropCount(reason: "SOCKET_RCVBUFF", protocol: "udp", count: 39)]),
                                            CgroupCounts(cgroup: "-", name: "-", kind: "none", counts: [])],
                                  unkeyedDrops: 3)
    static let connectionEvents = ConnectionEventsReply(
        total: ConnectionCounts(connects: 3, accepts: 3, failures: [.init(error: "ECONNREFUSED", count: 7)], closes: 6,
                                connectLatency: .init(count: 3, sumUs: 20_000_100, buckets: [.init(leUs: 50, count: 2), .init(leUs: nil, count: 1)])),
        processGroups: [GroupCounts(group: "nacct-conn", pid: 4242, counts: ConnectionCounts(connects: 0, accepts: 1, failures: [], closes: .max,
                                                                                              connectLatency: .init(count: 0, sumUs: 0, buckets: [])))],
        cgroups: [], lostEvents: 1, unfollowedConnections: 2)

    /// Writes and reads back `reply` through the API's line, and returns the line.
    static let wire = WireReply(
        interfaces: [WireInterfaceRecord(netns: 4_026_531_840, ifindex: 2, name: "eth0",
                                         totals: WireCounts(txPackets: 2005, txBytes: 232_338, rxPackets: 2003, rxBytes: 232_206),
                                         unattributed: WireCounts(txPackets: 1, txBytes: 66))],
        processes: [WireProcessRecord(pid: 4242, startNs: 7, comm: "curl", cgroupId: 1, exited: true,
                                      counts: WireCounts(txPackets: 2004, txBytes: 232_272, rxPackets: 2003, rxBytes: 232_206,
                                                         retransmittedSegments: 2, retransmittedBytes: 100, udpTxPackets: 1, udpTxBytes: 90),
                                      interfaces: [WireOnInterface(netns: 4_026_531_840, ifindex: 2, counts: WireCounts(txPackets: 2004))]),
                    WireProcessRecord(pid: 7, startNs: nil, comm: nil, cgroupId: nil, exited: false, counts: WireCounts(), interfaces: [])],
        processGroups: [GroupCounts(group: "curl", counts: WireCounts(txPackets: 2004))],
        cgroups: [CgroupCounts(cgroup: "/", name: "/", kind: "other", counts: WireCounts(txPackets: 2004))],
        losses: WireLosses(ownersFull: 0, interfacesFull: 0, storageFull: 3))

    static var tcp: TCPHealthReply {
        var counts = TCPHealthCounters()
        counts.retransmittedSegments.fast = 7
        counts.retransmittedBytes.fast = 10_136
        counts.resetsSent = 1
        counts.rtt.buckets[13] = 200
        counts.rtt.sumMicroseconds = 2_000_123
        return TCPHealthReply(
            processes: [TCPHealthProcessRecord(pid: 4242, startNs: 7, comm: "curl", cgroupId: 1, exited: true, counts: counts)],
            connections: [TCPConnectionRecord(cookie: 99, pid: 4242, startNs: 7, family: "ipv6", state: 1, localAddress: "::1", localPort: 40_000,
                                              remoteAddress: "::1", remotePort: 443, srttUs: 10_250, rttvarUs: 1_500, kernelTotalRetrans: 7,
                                              closed: false, counts: counts)],
            unattributed: TCPHealthCounters(), losses: TCPHealthLosses(storageFull: 0, closedLost: 2))
    }

    func roundTrip<Reply: DaemonReply & Equatable>(_ reply: Reply) throws -> String {
        let line = try DaemonAPI.line(reply)
        #expect(line.last == 0x0A && line.dropLast().allSatisfy { $0 != 0x0A })
        #expect(try DaemonAPI.decode(Reply.self, from: Data(line.dropLast())) == reply)
        return String(decoding: line, as: UTF8.self)
    }

    @Test func everyVerbsReplyIsReadBackEqual() throws {
        _ = try roundTrip(Self.processes)
        var withoutThreads = Self.processes
        withoutThreads.threadsKept = false
        for index in withoutThreads.processes.indices { withoutThreads.processes[index].threads = nil }
        _ = try roundTrip(withoutThreads)
        _ = try roundTrip(ProcessesReply(threadsKept: false, processes: [], losses: Losses()))
        _ = try roundTrip(Self.sockets)
        _ = try roundTrip(Self.nic)
        _ = try roundTrip(Self.latency)
        _ = try roundTrip(NICReply(interfaces: []))
        _ = try roundTrip(Self.drops)
        _ = try roundTrip(Self.connectionEvents)
        _ = try roundTrip(DropsReply(total: [], processGroups: [], cgroups: [], unkeyedDrops: 0))
        _ = try roundTrip(Self.wire)
        _ = try roundTrip(Self.tcp)
        _ = try roundTrip(WireReply(interfaces: [], processes: [], processGroups: [], cgroups: [],
                                    losses: WireLosses(ownersFull: 0, interfacesFull: 0, storageFull: 0)))
    }

    /// The drops and connection-events replies, field by field: a group's `pid` only with
    /// `--metrics-pids`, the beyond-the-last bucket's `le_us` null.
    @Test func theDropsAndConnectionEventsLinesAreAsDocumented() throws {
        #expect(try roundTrip(Self.drops) == #"{"version":1,"verb":"drops","total":[{"reason":"NO_SOCKET","protocol":"udp","count":25},{"reason":"SOCKET_RCVBUFF","protocol":"udp","count":18446744073709551615}],"process_groups":[{"group":"nacct-deaf","counts":[{"reason":"SOCKET_RCVBUFF","protocol":"udp","count":39}]},{"group":"-","counts":[{"reason":"NO_SOCKET","protocol":"udp","count":25}]},{"group":"other","counts":[]},{"group":"web\"\\","pid":42,"counts":[]}],"cgroups":[{"cgroup":"/system.slice/web.service","name":"web.service","kind":"unit","counts":[{"reason":"SOCKET_RCVBUFF","protocol":"udp","count":39}]},{"cgroup":"-","name":"-","kind":"none","counts":[]}],"unkeyed_drops":3}"# + "\n")
        #expect(try roundTrip(Self.connectionEvents) == #"{"version":1,"verb":"connection_events","total":{"connects":3,"accepts":3,"failures":[{"error":"ECONNREFUSED","count":7}],"closes":6,"connect_latency":{"count":3,"sum_us":20000100,"buckets":[{"le_us":50,"count":2},{"le_us":null,"count":1}]}},"process_groups":[{"group":"nacct-conn","pid":4242,"counts":{"connects":0,"accepts":1,"failures":[],"closes":18446744073709551615,"connect_latency":{"count":0,"sum_us":0,"buckets":[]}}}],"cgroups":[],"lost_events":1,"unfollowed_connections":2}"# + "\n")
    }

    /// The lines as the daemon wrote them before its replies were records (taken from that
    /// code with these values): the same bytes.
    @Test func theLinesAreTheBytesOfBefore() throws {
        var withoutThreads = Self.processes
        withoutThreads.threadsKept = false
        for index in withoutThreads.processes.indices { withoutThreads.processes[index].threads = nil }
        #expect(try roundTrip(withoutThreads) == #"{"version":1,"verb":"processes","threads_kept":false,"processes":[{"pid":42,"start_ns":5685494157865,"comm":"python3 /x\t","cgroup_id":1234,"exited":false,"tcp_tx_packets":1,"tcp_tx_bytes":2,"tcp_rx_packets":3,"tcp_rx_bytes":4,"udp_tx_packets":5,"udp_tx_bytes":6,"udp_rx_packets":7,"udp_rx_bytes":18446744073709551615},{"pid":7,"start_ns":1,"comm":"","cgroup_id":1,"exited":true,"tcp_tx_packets":0,"tcp_tx_bytes":0,"tcp_rx_packets":0,"tcp_rx_bytes":0,"udp_tx_packets":0,"udp_tx_bytes":0,"udp_rx_packets":0,"udp_rx_bytes":0}],"losses":{"uncounted_calls":1,"dropped_exits":2,"unregistered_processes":3,"late_thread_exits":4,"forgotten_exits":5,"uncounted_socket_calls":6}}"# + "\n")
        #expect(try roundTrip(Self.processes) == #"{"version":1,"verb":"processes","threads_kept":true,"processes":[{"pid":42,"start_ns":5685494157865,"comm":"python3 /x\t","cgroup_id":1234,"exited":false,"tcp_tx_packets":1,"tcp_tx_bytes":2,"tcp_rx_packets":3,"tcp_rx_bytes":4,"udp_tx_packets":5,"udp_tx_bytes":6,"udp_rx_packets":7,"udp_rx_bytes":18446744073709551615,"threads":[{"tid":43,"start_ns":5685494157999,"comm":"worker\"\\\u0001é","exited":true,"tcp_tx_packets":1,"tcp_tx_bytes":2,"tcp_rx_packets":3,"tcp_rx_bytes":4,"udp_tx_packets":5,"udp_tx_bytes":6,"udp_rx_packets":7,"udp_rx_bytes":18446744073709551615}]},{"pid":7,"start_ns":1,"comm":"","cgroup_id":1,"exited":true,"tcp_tx_packets":0,"tcp_tx_bytes":0,"tcp_rx_packets":0,"tcp_rx_bytes":0,"udp_tx_packets":0,"udp_tx_bytes":0,"udp_rx_packets":0,"udp_rx_bytes":0,"threads":[]}],"losses":{"uncounted_calls":1,"dropped_exits":2,"unregistered_processes":3,"late_thread_exits":4,"forgotten_exits":5,"uncounted_socket_calls":6}}"# + "\n")
        #expect(try roundTrip(ProcessesReply(threadsKept: false, processes: [], losses: Losses())) == #"{"version":1,"verb":"processes","threads_kept":false,"processes":[],"losses":{"uncounted_calls":0,"dropped_exits":0,"unregistered_processes":0,"late_thread_exits":0,"forgotten_exits":0,"uncounted_socket_calls":0}}"# + "\n")
        #expect(try roundTrip(Self.sockets) == #"{"version":1,"verb":"sockets","sockets":[{"pid":42,"start_ns":5685494157865,"cookie":9000000001,"protocol":"tcp","family":"ipv4","laddr":"127.0.0.1","lport":36346,"raddr":"127.0.0.1","rport":49331,"tx_packets":1,"tx_bytes":5000,"rx_packets":2,"rx_bytes":10,"closed":true},{"pid":8,"start_ns":2,"cookie":3,"protocol":"udp","family":"ipv6","laddr":"::","lport":38964,"raddr":"*","rport":null,"tx_packets":1,"tx_bytes":100,"rx_packets":0,"rx_bytes":0,"closed":false}]}"# + "\n")
        #expect(try roundTrip(Self.nic) == #"{"version":1,"verb":"nic","interfaces":[{"name":"va","ifindex":2,"tx":{"queues":[{"queue":0,"packets":10,"bytes":2420,"segments":10},{"queue":1,"packets":20,"bytes":4840,"segments":25}],"total":{"packets":30,"bytes":7260,"segments":35}},"rx":{"queues":[{"queue":0,"packets":1,"bytes":60,"segments":1}],"total":{"packets":1,"bytes":60,"segments":1}}}]}"# + "\n")
        #expect(try roundTrip(Self.latency) == #"{"version":1,"verb":"latency","directions":[{"direction":"in","stages":[{"stage":"mac","count":4,"p50_us":1.536,"p90_us":123456.789,"p99_us":123456.789,"max_us":123456.789,"sum_us":125459.289,"buckets":[{"le_us":1.024,"count":1},{"le_us":2.048,"count":0}]},{"stage":"ip","count":0,"p50_us":null,"p90_us":null,"p99_us":null,"max_us":null,"sum_us":0.000,"buckets":[]}]},{"direction":"out","stages":[{"stage":"total","count":1,"p50_us":18446744073709551.615,"p90_us":0.001,"p99_us":0.010,"max_us":18446744073709551.615,"sum_us":18446744073709551.615,"buckets":[]}]}]}"# + "\n")
        #expect(String(decoding: try DaemonAPI.errorLine(DaemonAPI.unknownRequest("what", hosted: [.processes])), as: UTF8.self)
                == #"{"version":1,"error":"unknown request \"what\" (requests: processes)"}"# + "\n")
    }

    /// The HTTP API's `/api/v1/processes` and `/api/v1/cgroups`: read back equal, the bytes of before.
    @Test func theHTTPRecordsAreReadBackEqualWithTheBytesOfBefore() throws {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        func line(_ value: some Encodable) throws -> String {
            var out = JSONWriter()
            try out.encode(value)
            return out.text
        }
        for (path, expected) in [("/system.slice/nginx.service", #""/system.slice/nginx.service""#), (nil, "null")] as [(String?, String)] {
            let reply = LiveProcessesReply(processes: [LiveProcessRecord(pid: 42, startNs: 5_685_494_157_865, comm: "python3 /x\t", cgroup: path,
                                                                         exited: false, counters: Self.counters)])
            let text = try line(reply)
            #expect(text == #"{"processes":[{"pid":42,"start_ns":5685494157865,"comm":"python3 /x\t","cgroup":"# + expected + #","exited":false,"tcp_tx_packets":1,"tcp_tx_bytes":2,"tcp_rx_packets":3,"tcp_rx_bytes":4,"udp_tx_packets":5,"udp_tx_bytes":6,"udp_rx_packets":7,"udp_rx_bytes":18446744073709551615}]}"#)
            #expect(try decoder.decode(LiveProcessesReply.self, from: Data(text.utf8)) == reply)
        }
        let docker = "/system.slice/docker-0123456789abcdef0123.scope"
        let cgroups = CgroupsReply(cgroups: [CgroupRecord(cgroup: docker, workload: Workload(path: docker), processes: 3, counters: Self.counters),
                                             CgroupRecord(cgroup: nil, workload: Workload(kind: .other, name: "#77"), processes: 0, counters: Counters())])
        let text = try line(cgroups)
        #expect(text == ##"{"cgroups":[{"cgroup":"/system.slice/docker-0123456789abcdef0123.scope","name":"docker-0123456789abcdef0123.scope","kind":"unit","processes":3,"tcp_tx_packets":1,"tcp_tx_bytes":2,"tcp_rx_packets":3,"tcp_rx_bytes":4,"udp_tx_packets":5,"udp_tx_bytes":6,"udp_rx_packets":7,"udp_rx_bytes":18446744073709551615},{"cgroup":null,"name":"#77","kind":"other","processes":0,"tcp_tx_packets":0,"tcp_tx_bytes":0,"tcp_rx_packets":0,"tcp_rx_bytes":0,"udp_tx_packets":0,"udp_tx_bytes":0,"udp_rx_packets":0,"udp_rx_bytes":0}]}"##)
        #expect(try decoder.decode(CgroupsReply.self, from: Data(text.utf8)) == cgroups)
    }

    func refusal<Reply: DaemonReply>(_ line: String, as _: Reply.Type, refused: ErrorKind = .failure) -> NetacctError? {
        do {
            _ = try DaemonAPI.decode(Reply.self, from: Data(line.utf8), refused: refused)
            return nil
        } catch let error as NetacctError {
            return error
        } catch {
            return NetacctError("\(error)", kind: .badInput)
        }
    }

    @Test func anotherVersionAnErrorAndGarbageAreRefusedInWords() throws {
        // Another version, whatever its layout: said as such, before its fields are read.
        let other = try #require(refusal(#"{"version":2,"verb":"processes","processes":"elsewhere"}"#, as: ProcessesReply.self))
        #expect(other.kind == .failure)
        #expect(other.message == "The netacct daemon speaks version 2 of its API, this netacct version 1: use the same netacct for both.")
        // An error reply: refused, of the kind the caller gives.
        let refused = try #require(refusal(#"{"version":1,"error":"unknown request \"sockets\" (requests: processes)"}"#, as: SocketsReply.self, refused: .unsupported))
        #expect(refused.kind == .unsupported)
        #expect(refused.message == #"The netacct daemon refused the request: unknown request "sockets" (requests: processes)"#)
        #expect(try JSONDecoder().decode(ErrorReply.self, from: Data(try DaemonAPI.errorLine("no").dropLast())) == ErrorReply(error: "no"))
        // Not JSON, no version, a field of another type.
        for garbage in ["", "{", #"{"verb":"processes"}"#, #"{"version":1,"verb":"sockets","sockets":[{"pid":"one"}]}"#] {
            let error = try #require(refusal(garbage, as: SocketsReply.self), "\(garbage)")
            #expect(error.kind == .failure && error.message.hasPrefix("The netacct daemon sent a reply this netacct does not understand"), "\(garbage)")
        }
    }

    @Test func aRequestIsAWordOnALine() {
        #expect(DaemonAPI.Verb.allCases.map(\.line) == ["processes\n", "sockets\n", "nic\n", "latency\n", "drops\n", "connection_events\n", "wire\n", "tcp\n"])
        #expect(DaemonAPI.word(of: " \tprocesses \t\r") == "processes")
        #expect(DaemonAPI.Verb(rawValue: DaemonAPI.word(of: "nic\r")) == .nic)
        #expect(DaemonAPI.Verb(rawValue: "Processes") == nil)
        #expect("\(DaemonAPI.Verb.connectionEvents)" == "connection_events", "as requests and paths name it")
        #expect(DaemonAPI.unknownRequest(String(repeating: "x", count: 65), hosted: [.processes, .nic])
                == "unknown request \"\(String(repeating: "x", count: 64))…\" (requests: processes, nic)")
        #expect(DaemonAPI.defaultSocket == "/run/netacct.sock" && DaemonAPI.version == 1)
    }

    /// Microseconds keep every nanosecond both ways, past what a Double holds.
    @Test func microsecondsAreExact() throws {
        for nanoseconds: UInt64 in [0, 1, 999, 1000, 1_000_001, 9_007_199_254_740_993, .max] {
            var out = JSONWriter()
            try out.encode([Microseconds(nanoseconds: nanoseconds)])
            #expect(try JSONDecoder().decode([Microseconds].self, from: Data(out.bytes)) == [Microseconds(nanoseconds: nanoseconds)], "\(out.text)")
        }
        // Only JSONWriter writes them as they are.
        #expect(throws: EncodingError.self) { try JSONEncoder().encode([Microseconds(nanoseconds: 1)]) }
    }
}

/// JSONWriter's values and its encoder: the rules the records rely on.
struct JSONWriterTests {
    struct Sample: Encodable {
        var startNs: UInt64
        var maybe: Int?
        var ratio: Double
        var tags: [String]
        func encode(to encoder: any Encoder) throws {
            var fields = encoder.container(keyedBy: CodingKeys.self)
            try fields.encode(startNs, forKey: .startNs)
            try fields.encodeIfPresent(maybe, forKey: .maybe)
            try fields.encode(maybe, forKey: .maybe)
            try fields.encode(ratio, forKey: .ratio)
            try fields.encode(tags, forKey: .tags)
        }
        enum CodingKeys: CodingKey { case startNs, maybe, ratio, tags }
    }

    @Test func valuesFieldsAndEncodedValuesShareOneText() throws {
        var out = JSONWriter()
        out.begin("{")
        out.field("a", bool: true)
        out.key("b")
        out.null()
        out.field("c", number: Int32(-5))
        out.field("d", number: "1.500")
        out.field("e", string: nil)
        out.key("f")
        try out.encode(Sample(startNs: 7, maybe: nil, ratio: 0.25, tags: ["x\"", ""]))
        try out.fields(of: Sample(startNs: 1, maybe: 2, ratio: -1, tags: []))
        out.key("g")
        out.begin("[")
        out.raw("{}")
        try out.encode(false)
        out.end("]")
        out.end("}")
        #expect(out.text == #"{"a":true,"b":null,"c":-5,"d":1.500,"e":null,"f":{"start_ns":7,"maybe":null,"ratio":0.25,"tags":["x\"",""]},"start_ns":1,"maybe":2,"maybe":2,"ratio":-1.0,"tags":[],"g":[{},false]}"#)
        var infinite = JSONWriter()
        #expect(throws: EncodingError.self) { try infinite.encode(Double.infinity) }
    }
}
