import CNetacct
import CTestSupport
import Connections
import Foundation
import Glibc
import Testing

/// The renderer on records made here: the documented JSON line and table row, exactly.
struct ConnectionsRendererTests {
    static func record(kind: netacct_connection_kind, known: Int, family: Int32 = AF_INET) -> netacct_connection_event {
        var record = netacct_connection_event()
        record.time_ns = 1_500_000          // 1.5 ms after the offset below
        record.kind = UInt8(kind.rawValue)
        record.direction = UInt8(NETACCT_CONNECTION_OUTBOUND.rawValue)
        record.known = UInt8(known)
        record.pid = 4242
        record.tid = 4243
        record.cgroup = 0                   // no cgroup id: the path is null
        record.latency_us = 1234
        record.family = UInt16(family)
        withUnsafeMutableBytes(of: &record.laddr) { $0.copyBytes(from: [127, 0, 0, 1] + [UInt8](repeating: 0, count: 12)) }
        withUnsafeMutableBytes(of: &record.raddr) { $0.copyBytes(from: [10, 1, 2, 3] + [UInt8](repeating: 0, count: 12)) }
        record.lport = 40000
        record.rport = 443
        withUnsafeMutableBytes(of: &record.comm) { $0.copyBytes(from: Array("cur\"l\u{1}".utf8)) }
        return record
    }

    /// 2026-12-01T12:00:00Z, minus the record's 1.5 ms.
    static let offset: Int64 = 1_796_126_400_000_000_000 - 1_500_000

    @Test func aCloseIsOneJSONLineWithEveryKeyInTheDocumentedOrder() {
        var record = Self.record(kind: NETACCT_CONNECTION_CLOSE, known: NETACCT_CONNECTION_HAS_PROCESS | NETACCT_CONNECTION_HAS_LATENCY | NETACCT_CONNECTION_HAS_DURATION)
        record.duration_ns = 2_500_123_456
        record.tx_bytes = 100_000
        record.rx_bytes = 7_777
        var renderer = ConnectionsRenderer(showsOutcomes: true)
        let line = renderer.json(ConnectionEvent(record, wallClockOffset: Self.offset + 1_500_000))
        #expect(line == #"{"time":"2026-12-01T12:00:00.001500Z","event":"close","direction":"connect","pid":4242,"tid":4243,"comm":"cur\"l\u0001","cgroup":null,"family":4,"laddr":"127.0.0.1","lport":40000,"raddr":"10.1.2.3","rport":443,"latency_us":1234,"error":null,"duration_ms":2500.123,"tx_bytes":100000,"rx_bytes":7777}"# + "\n")
    }

    @Test func aFailedConnectOfNobodyKnownHasNullsAndTheErrnoName() {
        var record = Self.record(kind: NETACCT_CONNECTION_FAILED, known: 0, family: AF_INET6)
        record.error = ETIMEDOUT
        withUnsafeMutableBytes(of: &record.raddr) { $0.copyBytes(from: [0x20, 0x01, 0x0d, 0xb8] + [UInt8](repeating: 0, count: 11) + [1]) }
        var renderer = ConnectionsRenderer(showsOutcomes: true)
        let event = ConnectionEvent(record, wallClockOffset: Self.offset)
        #expect(renderer.json(event) == #"{"time":"2026-12-01T12:00:00.000000Z","event":"failed","direction":"connect","pid":null,"tid":null,"comm":null,"cgroup":null,"family":6,"laddr":"7f00:1::","lport":40000,"raddr":"2001:db8::1","rport":443,"latency_us":null,"error":"ETIMEDOUT","duration_ms":null,"tx_bytes":null,"rx_bytes":null}"# + "\n")
        let row = renderer.row(event).split(separator: " ", omittingEmptySubsequences: true)
        #expect(Array(row.dropFirst()) == ["failed", "-", "-", "6", "7f00:1::", "40000", "2001:db8::1", "443", "connect", "-", "timed", "out", "(ETIMEDOUT)\n"])
    }

    @Test func aFailedConnectWithNoErrorIsAborted() {
        #expect(ConnectionEvent.errorName(0) == "ECONNABORTED")
        #expect(ConnectionEvent.reason(ECONNREFUSED) == "refused")
        #expect(ConnectionEvent.reason(EHOSTUNREACH) == "unreachable")
    }
}

/// The engine with the real programs: lost events are counted exactly.
@Suite(.enabled(if: geteuid() == 0, "loads BPF programs: needs root"))
struct ConnectionsEngineTests {
    @Test func everyEventIsDeliveredOrCountedAsLost() throws {
        var port: UInt16 = 0
        let listener = test_tcp_listen(AF_INET, 0, &port)
        try #require(listener >= 0)
        defer { close(listener) }
        var filter = ConnectionFilter()
        filter.ports = [port]
        filter.direction = .connect
        // One page: room for about 30 events, and nobody reads while 200 connections are made.
        let engine = try ConnectionsEngine(filter: filter, ringBufferBytes: UInt32(sysconf(Int32(_SC_PAGESIZE))))
        for _ in 0..<200 {
            let client = test_tcp_connect(AF_INET, port, nil)
            try #require(client >= 0)
            let server = test_tcp_accept(listener)
            close(client)
            close(server)
        }
        let delivered = try engine.drain().count
        let lost = try engine.lostEvents()
        #expect(delivered > 0 && lost > 0)
        #expect(delivered + Int(lost) == 200, "\(delivered) delivered, \(lost) lost")
        #expect(try engine.untrackedConnections() == 0)
    }
}
