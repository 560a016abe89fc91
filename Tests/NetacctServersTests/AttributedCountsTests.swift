import CNetacct
import Connections
import DaemonProtocol
@testable import Drops
import Foundation
import Glibc
@testable import NetacctServers
import NetacctKit
import Testing

/// The drops and connection-events collectors' aggregation on made-up records, without a kernel:
/// counts per process group and per cgroup (named from a cgroup tree made in a temporary
/// directory), the `-` rows, the bound with `other`, the families' samples and the API's records.
struct AttributedCountsTests {
    /// A cgroup2 tree in a temporary directory, and a mountinfo line that mounts it: its
    /// directories' inodes are the cgroup ids.
    final class FakeCgroups {
        let root = NSTemporaryDirectory() + "netacct-cgroups-\(UUID().uuidString.prefix(8))"
        static let nginx = "/system.slice/nginx.service"
        static let container = "/docker/" + String(repeating: "ab", count: 32)

        init() throws {
            for path in [Self.nginx, Self.container] {
                try FileManager.default.createDirectory(atPath: root + path, withIntermediateDirectories: true)
            }
        }
        deinit { try? FileManager.default.removeItem(atPath: root) }

        var names: CgroupNames { CgroupNames(mountInfo: "36 25 0:30 / \(root) rw,relatime shared:9 - cgroup2 cgroup2 rw\n") }
        func id(_ path: String) -> UInt64 {
            var info = stat()
            return stat(root + path, &info) == 0 ? UInt64(info.st_ino) : 0
        }
    }

    /// A family's sample lines in a scrape.
    static func samples(_ out: PrometheusText, _ name: String) -> [String] {
        String(decoding: out.bytes, as: UTF8.self).split(separator: "\n").map(String.init).filter { $0.hasPrefix(name + "{") || $0.hasPrefix(name + " ") }
    }

    static func row(_ reason: String, _ proto: String, _ owner: SocketOwners.Owner?, _ count: UInt64) -> DropsRenderer.Interval.Row {
        .init(reason: reason, reasonWords: reason, proto: proto, owner: owner, unattributed: owner == nil, count: count)
    }

    @Test func dropsArePerReasonAndProtocolInAllPerGroupAndPerCgroupWithNobodysInDash() throws {
        let cgroups = try FakeCgroups()
        let nginx = SocketOwners.Owner(pid: 10, comm: "nginx", cgroup: cgroups.id(FakeCgroups.nginx))
        let named = SocketOwners.Owner(pid: 11, comm: "other", cgroup: cgroups.id(FakeCgroups.container))
        var counts = AttributedCounts<DropLabel>(top: 3, pids: false, cgroupNames: cgroups.names)
        counts.add(DropsCollector.tally([Self.row("SOCKET_RCVBUFF", "udp", nginx, 5), Self.row("TCP_CSUM", "tcp", named, 2),
                                         Self.row("NO_SOCKET", "udp", nil, 7), Self.row("SOCKET_RCVBUFF", "udp", nil, 1)]))
        var out = PrometheusText()
        DropsCollector.write(counts, into: &out)
        let text = String(decoding: out.bytes, as: UTF8.self)
        #expect(text.contains("# TYPE netacct_cgroup_drops_total counter\n") && text.contains("(netacct drops), since the daemon started\n"))
        #expect(Self.samples(out, "netacct_drops_total") == [#"netacct_drops_total{reason="NO_SOCKET",protocol="udp"} 7"#,
                                                            #"netacct_drops_total{reason="SOCKET_RCVBUFF",protocol="udp"} 6"#,
                                                            #"netacct_drops_total{reason="TCP_CSUM",protocol="tcp"} 2"#])
        // Busiest first; a process named "other" cannot pass for the rest, nor "-" for nobody.
        #expect(Self.samples(out, "netacct_process_group_drops_total") == [
            #"netacct_process_group_drops_total{group="-",reason="NO_SOCKET",protocol="udp"} 7"#,
            #"netacct_process_group_drops_total{group="-",reason="SOCKET_RCVBUFF",protocol="udp"} 1"#,
            #"netacct_process_group_drops_total{group="nginx",reason="SOCKET_RCVBUFF",protocol="udp"} 5"#,
            #"netacct_process_group_drops_total{group="other (process name)",reason="TCP_CSUM",protocol="tcp"} 2"#,
        ])
        let container = String(repeating: "ab", count: 6)
        #expect(Self.samples(out, "netacct_cgroup_drops_total") == [
            #"netacct_cgroup_drops_total{cgroup="-",name="-",kind="none",reason="NO_SOCKET",protocol="udp"} 7"#,
            #"netacct_cgroup_drops_total{cgroup="-",name="-",kind="none",reason="SOCKET_RCVBUFF",protocol="udp"} 1"#,
            #"netacct_cgroup_drops_total{cgroup="/system.slice/nginx.service",name="nginx.service",kind="unit",reason="SOCKET_RCVBUFF",protocol="udp"} 5"#,
            #"netacct_cgroup_drops_total{cgroup="\#(FakeCgroups.container)",name="\#(container)",kind="container",reason="TCP_CSUM",protocol="tcp"} 2"#,
        ])
        // The API's rows are the families' rows.
        let (groups, cgroupRows) = counts.records(\.dropCounts)
        #expect(groups.map(\.group) == ["-", "nginx", "other (process name)", "other"])
        #expect(groups[1].counts == [DropCount(reason: "SOCKET_RCVBUFF", protocol: "udp", count: 5)] && groups[3].counts.isEmpty)
        #expect(cgroupRows.map(\.kind) == ["none", "unit", "container", "other"] && cgroupRows[2].name == container)
    }

    /// Beyond the bound, the rest is `other`'s; every family adds up to the machine's counts, and
    /// no value goes back as readings come.
    @Test func theBoundKeepsTheSumsAndNoSeriesGoesBack() throws {
        let cgroups = try FakeCgroups()
        var counts = AttributedCounts<DropLabel>(top: 2, pids: true, cgroupNames: cgroups.names)
        var seen: [String: UInt64] = [:]
        for reading in 0..<30 {
            let rows = (0..<5).map { index in
                Self.row("NO_SOCKET", "udp", SocketOwners.Owner(pid: Int32(100 + index), comm: "p\(index)", cgroup: index == 0 ? cgroups.id(FakeCgroups.nginx) : 99_000 + UInt64(index)),
                         UInt64(index == 4 ? 3 * reading : 1 + index))
            }
            counts.add(DropsCollector.tally(rows))
            var out = PrometheusText()
            counts.write(&out, "drops_total", .counter, help: "drops") { out, name, labels, tally in
                out.sample(name, labels, tally[DropLabel(reason: "NO_SOCKET", proto: "udp")])
            }
            let total = Self.samples(out, "netacct_drops_total").first.flatMap { UInt64($0.split(separator: " ").last ?? "") } ?? 0
            for family in ["netacct_process_group_drops_total", "netacct_cgroup_drops_total"] {
                let lines = Self.samples(out, family)
                #expect(lines.count == 3, "two series and other: \(lines)")
                let values = lines.map { (String($0.split(separator: " ").first!), UInt64($0.split(separator: " ").last!)!) }
                #expect(values.reduce(0) { $0 + $1.1 } == total, "\(family) adds up to the machine's")
                for (series, value) in values {
                    #expect(value >= seen[series] ?? 0 || seen[series] == nil, "\(series) went back")
                    seen[series] = value
                }
            }
        }
        // p4 overtook everyone; with --metrics-pids its PID is a label, the rest's pid is empty.
        let (groups, _) = counts.records { $0[DropLabel(reason: "NO_SOCKET", proto: "udp")] }
        #expect(groups.first?.group == "p4" && groups.first?.pid == 104 && groups.last?.group == "other" && groups.last?.pid == nil)
    }

    static func event(_ kind: netacct_connection_kind, process: Bool = true, latency: UInt32? = nil, error: Int32 = 0, cgroup: UInt64 = 0) -> ConnectionEvent {
        var record = netacct_connection_event()
        record.kind = UInt8(kind.rawValue)
        record.known = UInt8((process ? NETACCT_CONNECTION_HAS_PROCESS : 0) | (latency == nil ? 0 : NETACCT_CONNECTION_HAS_LATENCY))
        record.pid = 4242
        record.cgroup = cgroup
        record.latency_us = latency ?? 0
        record.error = error
        withUnsafeMutableBytes(of: &record.comm) { $0.copyBytes(from: Array("worker-3".utf8)) }
        withUnsafeMutableBytes(of: &record.process_comm) { $0.copyBytes(from: Array("curl".utf8)) }
        return ConnectionEvent(record, wallClockOffset: 0)
    }

    @Test func connectionEventsAreCountedByKindErrnoAndHandshakeUnderTheProcessName() throws {
        let cgroups = try FakeCgroups()
        let nginx = cgroups.id(FakeCgroups.nginx)
        var counts = AttributedCounts<ConnectionLabel>(top: 5, pids: false, cgroupNames: cgroups.names)
        counts.add(ConnectionEventsCollector.tally([
            Self.event(NETACCT_CONNECTION_CONNECT, latency: 40, cgroup: nginx), Self.event(NETACCT_CONNECTION_CONNECT, latency: 3000, cgroup: nginx),
            Self.event(NETACCT_CONNECTION_CONNECT, latency: 20_000_000, cgroup: nginx), Self.event(NETACCT_CONNECTION_CONNECT, cgroup: nginx),
            Self.event(NETACCT_CONNECTION_ACCEPT, latency: 7, cgroup: nginx),
            Self.event(NETACCT_CONNECTION_FAILED, latency: 30, error: ECONNREFUSED, cgroup: nginx),
            Self.event(NETACCT_CONNECTION_FAILED, latency: 30, error: ECONNREFUSED, cgroup: nginx),
            Self.event(NETACCT_CONNECTION_FAILED, error: 0, cgroup: nginx),
            Self.event(NETACCT_CONNECTION_CLOSE, cgroup: nginx), Self.event(NETACCT_CONNECTION_CLOSE, process: false),
        ]))
        // The group is the process's name, not the thread's; a close of nobody known is "-"'s.
        let (groups, cgroupRows) = counts.records(ConnectionCounts.init)
        #expect(groups.map(\.group) == ["curl", "-", "other"])
        let histogram = ConnectionCounts.Histogram(count: 3, sumUs: 20_003_040, buckets: [.init(leUs: 50, count: 1), .init(leUs: 5000, count: 1), .init(leUs: nil, count: 1)])
        #expect(groups[0].counts == ConnectionCounts(connects: 4, accepts: 1, failures: [.init(error: "ECONNABORTED", count: 1), .init(error: "ECONNREFUSED", count: 2)],
                                                     closes: 1, connectLatency: histogram))
        #expect(groups[1].counts == ConnectionCounts(connects: 0, accepts: 0, failures: [], closes: 1, connectLatency: .init(count: 0, sumUs: 0, buckets: [])))
        #expect(cgroupRows.map(\.cgroup) == [FakeCgroups.nginx, "-", "other"])
        #expect(ConnectionCounts(counts.total).closes == 2 && counts.total.weight == 4 + 1 + 3 + 2, "the handshakes do not rank")

        let collector = ConnectionEventsCollectorFamilies(counts: counts)
        #expect(collector.samples("netacct_connect_duration_seconds_bucket") == [
            #"netacct_connect_duration_seconds_bucket{le="5e-05"} 1"#, #"netacct_connect_duration_seconds_bucket{le="0.0001"} 1"#,
            #"netacct_connect_duration_seconds_bucket{le="0.00025"} 1"#, #"netacct_connect_duration_seconds_bucket{le="0.0005"} 1"#,
            #"netacct_connect_duration_seconds_bucket{le="0.001"} 1"#, #"netacct_connect_duration_seconds_bucket{le="0.0025"} 1"#,
            #"netacct_connect_duration_seconds_bucket{le="0.005"} 2"#, #"netacct_connect_duration_seconds_bucket{le="0.01"} 2"#,
            #"netacct_connect_duration_seconds_bucket{le="0.025"} 2"#, #"netacct_connect_duration_seconds_bucket{le="0.05"} 2"#,
            #"netacct_connect_duration_seconds_bucket{le="0.1"} 2"#, #"netacct_connect_duration_seconds_bucket{le="0.25"} 2"#,
            #"netacct_connect_duration_seconds_bucket{le="0.5"} 2"#, #"netacct_connect_duration_seconds_bucket{le="1.0"} 2"#,
            #"netacct_connect_duration_seconds_bucket{le="2.5"} 2"#, #"netacct_connect_duration_seconds_bucket{le="5.0"} 2"#,
            #"netacct_connect_duration_seconds_bucket{le="10.0"} 2"#, #"netacct_connect_duration_seconds_bucket{le="+Inf"} 3"#,
        ])
        #expect(collector.samples("netacct_connect_duration_seconds_sum") == ["netacct_connect_duration_seconds_sum 20.00304"])
        #expect(collector.samples("netacct_connect_duration_seconds_count") == ["netacct_connect_duration_seconds_count 3"])
        #expect(collector.samples("netacct_process_group_connect_duration_seconds_count") == [#"netacct_process_group_connect_duration_seconds_count{group="curl"} 3"#],
                "a histogram only for the rows with connects")
        #expect(collector.samples("netacct_cgroup_connection_failures_total") == [
            #"netacct_cgroup_connection_failures_total{cgroup="/system.slice/nginx.service",name="nginx.service",kind="unit",errno="ECONNABORTED"} 1"#,
            #"netacct_cgroup_connection_failures_total{cgroup="/system.slice/nginx.service",name="nginx.service",kind="unit",errno="ECONNREFUSED"} 2"#,
        ])
        #expect(collector.samples("netacct_process_group_connections_opened_total").prefix(2) == [
            #"netacct_process_group_connections_opened_total{group="curl",direction="connect"} 4"#,
            #"netacct_process_group_connections_opened_total{group="curl",direction="accept"} 1"#,
        ])
        #expect(collector.samples("netacct_connections_closed_total") == ["netacct_connections_closed_total 2"])
    }
}

/// The connection-events collector's families, written from counts made up (no engine).
struct ConnectionEventsCollectorFamilies {
    let out: PrometheusText
    init(counts: AttributedCounts<ConnectionLabel>) {
        var out = PrometheusText()
        ConnectionEventsCollector.write(counts, into: &out)
        self.out = out
    }
    func samples(_ name: String) -> [String] { AttributedCountsTests.samples(out, name) }
}
