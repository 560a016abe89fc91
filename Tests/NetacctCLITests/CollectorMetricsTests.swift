import DaemonProtocol
import Foundation
import Glibc
@testable import NetacctServers
import Testing

/// The daemon's drops and connection-events collectors against the real kernel, scraped by a
/// real Prometheus (as MetricsTests does) and asked through both APIs: drops a veth pair's
/// sender causes in the receiver's namespace, where the daemon runs, per reason and the socket
/// owner's cgroup and process group, exactly as the kernel's own counters have them; refused,
/// established and closed connections of a process in a cgroup, exactly.
@Suite(.serialized, .enabled(if: isRoot && FileManager.default.isExecutableFile(atPath: "/usr/bin/prometheus"),
                             "needs root and Debian's prometheus package (scripts/test installs it)"))
struct CollectorMetricsTests {
    /// Of their own (MetricsTests' run at the same time): the daemon's and Prometheus's ports.
    static let port = 19300 + Int(getpid() % 300)
    static let prometheusPort = 29700 + Int(getpid() % 300)
    static var address: String { "127.0.0.1:\(port)" }

    /// A reply's row for `key` (a group or cgroup row's first field), from an API's JSON.
    static func row(_ body: String, _ list: String, _ field: String, _ key: String) throws -> [String: Any] {
        let object = try #require(try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any], "\(body)")
        let rows = try #require(object[list] as? [[String: Any]], "\(body)")
        return try #require(rows.first { $0.string(field) == key }, "no \(field) \(key) in \(body)")
    }

    @Test func dropsInTheDaemonsNamespaceAreCountedPerReasonAndOwnersCgroupExactly() throws {
        let cgroups = try TestCgroups()
        let maker = try DropMaker()
        // Bound before the daemon starts, by nacct-early in the container's cgroup: its owner
        // comes from /proc (its cgroup from /proc/PID/cgroup).
        let early = try maker.deafReceiver(port: 9101, named: "nacct-early", cgroup: cgroups.root + cgroups.container)
        // Through nsenter: `ip netns exec` would hide the cgroup file system (its own /sys).
        let daemon = try DaemonProcess(extra: ["--listen", Self.address, "--drops"], namespace: maker.receiver, keepingMounts: true)
        defer { daemon.stopExpectingSuccess() }
        let prometheus = try PrometheusServer(target: Self.address, namespace: maker.receiver, port: Self.prometheusPort)
        // Bound by nacct-deaf in the unit's cgroup once the daemon runs: its owner recorded at bind.
        let deaf = try maker.deafReceiver(port: 9100, named: "nacct-deaf", cgroup: cgroups.root + cgroups.unit)
        let noPorts = try maker.snmp("Udp", "NoPorts")
        try maker.datagrams(25, to: 7)
        /// The drops of a flood of `port`, as the kernel counted them.
        func flood(_ port: Int) throws -> Int {
            let before = try maker.snmp("Udp", "RcvbufErrors")
            try maker.datagrams(40, to: port, bytes: 1000)
            usleep(300_000) // the last of them through the receiver's softirq
            return try maker.snmp("Udp", "RcvbufErrors") - before
        }
        let (dropped, droppedEarly) = (try flood(9100), try flood(9101))
        #expect(try maker.snmp("Udp", "NoPorts") - noPorts == 25)
        try #require(dropped > 0 && droppedEarly > 0, "the deaf sockets' buffers overflowed")
        let expected = Double(dropped)
        #expect(try prometheus.await(#"netacct_cgroup_drops_total{cgroup="\#(cgroups.container)",kind="container",reason="SOCKET_RCVBUFF",protocol="udp"}"#, Double(droppedEarly)) == Double(droppedEarly))
        #expect(try prometheus.await(#"netacct_process_group_drops_total{group="nacct-early",reason="SOCKET_RCVBUFF",protocol="udp"}"#, Double(droppedEarly)) == Double(droppedEarly))
        // The owner's cgroup (by path, with its unit name) and process group, exactly the kernel's count.
        let rcvbuffLabels = #"reason="SOCKET_RCVBUFF",protocol="udp""#
        #expect(try prometheus.await(#"netacct_cgroup_drops_total{cgroup="\#(cgroups.unit)",name="web.service",kind="unit",\#(rcvbuffLabels)}"#, expected) == expected)
        #expect(try prometheus.await(#"netacct_process_group_drops_total{group="nacct-deaf",\#(rcvbuffLabels)}"#, expected) == expected)
        #expect(try prometheus.await(#"netacct_drops_total{\#(rcvbuffLabels)}"#, expected + Double(droppedEarly)) == expected + Double(droppedEarly))
        // No socket: nobody's, in the "-" rows.
        #expect(try prometheus.await(#"netacct_cgroup_drops_total{cgroup="-",name="-",kind="none",reason="NO_SOCKET",protocol="udp"}"#, 25) == 25)
        #expect(try prometheus.await(#"netacct_process_group_drops_total{group="-",reason="NO_SOCKET",protocol="udp"}"#, 25) == 25)
        #expect(try prometheus.await(#"sum(netacct_process_group_drops_total{reason="NO_SOCKET",protocol="udp"})"#, 25) == 25)
        #expect(try prometheus.await(#"netacct_drops_unkeyed_total"#, 0) == 0)

        // The same through the HTTP API and the local API (whose socket is a file: any namespace).
        let http = try Curl.get("http://\(Self.address)/api/v1/drops", namespace: maker.receiver)
        #expect(http.status == 200)
        let unit = try Self.row(http.body, "cgroups", "cgroup", cgroups.unit)
        #expect(unit.string("name") == "web.service" && unit.string("kind") == "unit")
        let counts = try #require(unit["counts"] as? [[String: Any]])
        #expect(counts.count == 1 && counts.first?.string("reason") == "SOCKET_RCVBUFF" && counts.first?.int("count") == dropped, "\(counts)")
        let reply = try DaemonAPI.Connection(path: daemon.api).request(DropsReply.self)
        #expect(reply.cgroups.first { $0.cgroup == cgroups.unit }?.counts == [DropCount(reason: "SOCKET_RCVBUFF", protocol: "udp", count: UInt64(dropped))])
        #expect(reply.processGroups.first { $0.group == "-" }?.counts.first { $0.reason == "NO_SOCKET" && $0.protocol == "udp" }?.count == 25)
        #expect(reply.total.first { $0.reason == "SOCKET_RCVBUFF" }?.count == UInt64(dropped + droppedEarly))
        #expect(reply.unkeyedDrops == 0)
        let scrape = try Curl.get("http://\(Self.address)/metrics", namespace: maker.receiver)
        #expect(scrape.status == 200)
        try MetricsTests.expectPromtoolPasses(scrape.body)
        // Idle for the collector's idleSeconds, the sockets' counts leave the kernel's table:
        // a socket dropping again counts from zero there, and its series goes on from its total.
        usleep(UInt32((DropsCollector.idleSeconds + 2) * 1_000_000))
        let again = Double(try flood(9100))
        #expect(try prometheus.await(#"netacct_cgroup_drops_total{cgroup="\#(cgroups.unit)",\#(rcvbuffLabels)}"#, expected + again) == expected + again)
        withExtendedLifetime((early, deaf, cgroups)) {}
    }

    /// A process named nacct-conn in the container's cgroup: `refused` connects to a port that
    /// is bound but not listening (each refused with a RST), then `accepted` connections to a
    /// server of its own that accepts each, both ends closed.
    static func connect(in cgroup: String, refused: Int, accepted: Int) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", """
            echo $$ > \(cgroup)/cgroup.procs && exec /usr/bin/python3 -c "
            import ctypes, socket, sys
            ctypes.CDLL(None).prctl(15, b'nacct-conn', 0, 0, 0)
            closed = socket.socket(); closed.bind(('127.0.0.1', 0))
            for _ in range(\(refused)):
                c = socket.socket()
                try:
                    c.connect(closed.getsockname()); sys.exit('connected to a closed port')
                except ConnectionRefusedError:
                    c.close()
            server = socket.socket(); server.bind(('127.0.0.1', 0)); server.listen(8)
            for _ in range(\(accepted)):
                c = socket.create_connection(server.getsockname()); a, _ = server.accept()
                a.close(); c.close()
            "
            """]
        try process.run()
        process.waitUntilExit()
        try #require(process.terminationStatus == 0)
    }

    @Test func connectionFailuresToAClosedPortAreCountedPerCgroupExactly() throws {
        let cgroups = try TestCgroups()
        // The daemon counts every process on the machine: with more than --metrics-top busier
        // groups (other suites' clients, at once), nacct-conn would rightly lose its series to
        // `other` and start from zero on re-entering it. With the largest bound (100000), every group
        // and cgroup keeps a series of its own, so theirs are exact whatever else runs.
        let daemon = try DaemonProcess(extra: ["--listen", Self.address, "--connection-events", "--metrics-top", "100000"])
        defer { daemon.stopExpectingSuccess() }
        let prometheus = try PrometheusServer(target: Self.address, port: Self.prometheusPort)
        try Self.connect(in: cgroups.root + cgroups.container, refused: 7, accepted: 3)
        let cgroup = #"cgroup="\#(cgroups.container)""#
        #expect(try prometheus.await(#"netacct_cgroup_connection_failures_total{\#(cgroup),kind="container",errno="ECONNREFUSED"}"#, 7) == 7)
        #expect(try prometheus.await(#"netacct_process_group_connection_failures_total{group="nacct-conn",errno="ECONNREFUSED"}"#, 7) == 7)
        #expect(try prometheus.await(#"sum(netacct_cgroup_connection_failures_total{\#(cgroup)})"#, 7) == 7, "no other errno")
        for direction in ["connect", "accept"] {
            #expect(try prometheus.await(#"netacct_cgroup_connections_opened_total{\#(cgroup),direction="\#(direction)"}"#, 3) == 3)
        }
        #expect(try prometheus.await(#"netacct_cgroup_connections_closed_total{\#(cgroup)}"#, 6) == 6, "both ends of each")
        #expect(try prometheus.await(#"netacct_cgroup_connect_duration_seconds_count{\#(cgroup)}"#, 3) == 3)
        #expect(try prometheus.await(#"netacct_cgroup_connect_duration_seconds_bucket{\#(cgroup),le="+Inf"}"#, 3) == 3)
        #expect(try prometheus.await(#"netacct_connection_events_lost_total"#, 0) == 0)

        let http = try Curl.get("http://\(Self.address)/api/v1/connection_events")
        #expect(http.status == 200)
        let missing = try Curl.get("http://\(Self.address)/api/v1/nothing")
        #expect(missing.status == 404 && missing.body.contains("/api/v1/connection_events"), "\(missing.body)")
        let row = try Self.row(http.body, "cgroups", "cgroup", cgroups.container)
        let counts = try #require(row["counts"] as? [String: Any])
        #expect(counts.int("connects") == 3 && counts.int("accepts") == 3 && counts.int("closes") == 6, "\(counts)")
        #expect((counts["failures"] as? [[String: Any]])?.map { "\($0.string("error") ?? "?") \($0.int("count") ?? -1)" } == ["ECONNREFUSED 7"])
        #expect((counts["connect_latency"] as? [String: Any])?.int("count") == 3)
        let reply = try DaemonAPI.Connection(path: daemon.api).request(ConnectionEventsReply.self)
        let group = try #require(reply.processGroups.first { $0.group == "nacct-conn" })
        #expect(group.counts.failures == [.init(error: "ECONNREFUSED", count: 7)] && group.counts.connects == 3 && group.counts.accepts == 3)
        #expect(group.counts.closes == 6 && group.counts.connectLatency.count == 3 && group.counts.connectLatency.buckets.reduce(0) { $0 + $1.count } == 3)
        #expect(reply.lostEvents == 0)
        let scrape = try Curl.get("http://\(Self.address)/metrics")
        #expect(scrape.status == 200)
        try MetricsTests.expectPromtoolPasses(scrape.body)
        withExtendedLifetime(cgroups) {}
    }
}
