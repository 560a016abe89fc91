import CNetacct
@testable import Drops
import Foundation
import Glibc
import NetacctKit
import Testing

/// A kernel's reasons, made up: numbers that differ from any real kernel's.
let reasons = DropReasons(enumerators: [
    ("SKB_NOT_DROPPED_YET", 0), ("SKB_DROP_REASON_NOT_SPECIFIED", 2), ("SKB_DROP_REASON_NO_SOCKET", 3),
    ("SKB_DROP_REASON_SOCKET_RCVBUFF", 7), ("SKB_DROP_REASON_TCP_CSUM", 9), ("SKB_DROP_REASON_MAX", 10),
])
let udp = UInt8(IPPROTO_UDP), tcp = UInt8(IPPROTO_TCP)
let deaf = SocketOwners.Owner(pid: 100, comm: "deaf"), other = SocketOwners.Owner(pid: 200, comm: "other")

/// --summary's arithmetic on made-up cumulative counts, as the kernel's maps would give them.
struct DropsSummaryTests {
    /// Sockets 10 and 11 are deaf's, 20 other's, 30 nobody's now; 0 is no socket.
    static let owners: [UInt64: SocketOwners.Owner] = [10: deaf, 11: deaf, 20: other]

    static func row(_ reason: String, _ proto: String, _ owner: SocketOwners.Owner?, unattributed: Bool = false,
                    _ count: UInt64) -> DropsRenderer.Interval.Row {
        .init(reason: reason, reasonWords: reason.lowercased().replacingOccurrences(of: "_", with: " "), proto: proto,
              owner: owner, unattributed: unattributed, count: count)
    }

    static func start(pids: [Int32] = []) -> DropsSummary {
        DropsSummary(reasons: reasons, pids: pids,
                     counted: [DropKey(inode: 10, reason: 7, proto: udp): 5, DropKey(inode: 40, reason: 7, proto: udp): 9],
                     totals: [DropKey(inode: 0, reason: 7, proto: udp): 14, DropKey(inode: 0, reason: 3, proto: udp): 2])
    }

    /// The interval after `start`: deaf's two sockets 7 + 3 more, other's 4 checksum errors,
    /// 6 with no socket, 2 that only the totals hold, and socket 40 unchanged.
    static let counted: [DropKey: UInt64] = [
        DropKey(inode: 10, reason: 7, proto: udp): 12, DropKey(inode: 11, reason: 7, proto: udp): 3,
        DropKey(inode: 20, reason: 9, proto: tcp): 4, DropKey(inode: 0, reason: 3, proto: udp): 6,
        DropKey(inode: 40, reason: 7, proto: udp): 9,
    ]
    static let totals: [DropKey: UInt64] = [
        DropKey(inode: 0, reason: 7, proto: udp): 14 + 10 + 2, DropKey(inode: 0, reason: 3, proto: udp): 2 + 6,
        DropKey(inode: 0, reason: 9, proto: tcp): 4,
    ]

    @Test func anIntervalHasTheDeltasByReasonProtocolAndOwnerBusiestFirst() {
        var summary = Self.start()
        var asked: [UInt64] = []
        let rows = summary.interval(counted: Self.counted, totals: Self.totals) { inode in
            asked.append(inode)
            return Self.owners[inode]
        }
        #expect(rows == [Self.row("SOCKET_RCVBUFF", "udp", deaf, 10), Self.row("NO_SOCKET", "udp", nil, 6),
                         Self.row("TCP_CSUM", "tcp", other, 4), Self.row("SOCKET_RCVBUFF", "udp", nil, unattributed: true, 2)])
        #expect(Set(asked) == [0, 10, 11, 20] && asked.count == 4, "only sockets with drops in the interval: \(asked)")
    }

    @Test func theNextIntervalCountsFromThisOneAndACountThatGoesBackGivesNothing() {
        var summary = Self.start()
        _ = summary.interval(counted: Self.counted, totals: Self.totals) { Self.owners[$0] }
        #expect(summary.interval(counted: Self.counted, totals: Self.totals) { Self.owners[$0] }.isEmpty)
        var fewer = Self.counted
        fewer[DropKey(inode: 10, reason: 7, proto: udp)] = 1   // the socket's entry made again
        #expect(summary.interval(counted: fewer, totals: Self.totals) { Self.owners[$0] }.isEmpty)
        var more = fewer
        more[DropKey(inode: 10, reason: 7, proto: udp)] = 4
        var moreTotals = Self.totals
        moreTotals[DropKey(inode: 0, reason: 7, proto: udp)]! += 3
        #expect(summary.interval(counted: more, totals: moreTotals) { Self.owners[$0] } == [Self.row("SOCKET_RCVBUFF", "udp", deaf, 3)])
    }

    /// The daemon takes a socket's idle count out of the kernel's table; made again by a new
    /// drop before the next reading, it counts from zero.
    @Test func aForgottenCountThatComesBackCountsFromZero() {
        var summary = Self.start()
        _ = summary.interval(counted: Self.counted, totals: Self.totals) { Self.owners[$0] }
        let key = DropKey(inode: 10, reason: 7, proto: udp)
        summary.forget([key])
        #expect(summary.counted[key] == nil)
        var again = Self.counted, moreTotals = Self.totals
        again[key] = 2
        moreTotals[DropKey(inode: 0, reason: 7, proto: udp)]! += 2
        #expect(summary.interval(counted: again, totals: moreTotals) { Self.owners[$0] } == [Self.row("SOCKET_RCVBUFF", "udp", deaf, 2)])
    }

    @Test func underPidsOnlyThoseProcessesRowsAreLeft() {
        var summary = Self.start(pids: [200])
        #expect(summary.interval(counted: Self.counted, totals: Self.totals) { Self.owners[$0] } == [Self.row("TCP_CSUM", "tcp", other, 4)])
    }

    @Test func equalCountsGoInTheOrderOfTheirReasons() {
        var summary = DropsSummary(reasons: reasons, pids: [], counted: [:], totals: [:])
        let rows = summary.interval(counted: [DropKey(inode: 20, reason: 9, proto: tcp): 4, DropKey(inode: 0, reason: 3, proto: udp): 4],
                                    totals: [:]) { Self.owners[$0] }
        #expect(rows.map(\.reason) == ["NO_SOCKET", "TCP_CSUM"])
        #expect(rows.map(\.proto) == ["udp", "tcp"])
    }
}

/// The kernel's reasons and TCP states as the tool names them.
struct DropReasonsTests {
    @Test func reasonsAreTheEnumeratorsWithTheirPrefixOnly() {
        #expect(reasons.names == [2: "NOT_SPECIFIED", 3: "NO_SOCKET", 7: "SOCKET_RCVBUFF", 9: "TCP_CSUM"])
        #expect(reasons.name(7) == "SOCKET_RCVBUFF" && reasons.words(7) == "socket rcvbuff")
        #expect(reasons.name(42) == "REASON_42" && reasons.words(42) == "reason 42", "a reason this kernel does not name")
    }

    @Test func aReasonIsFoundByAnyOfItsSpellings() throws {
        for given in ["NO_SOCKET", "no_socket", "no-socket", "no socket", "SKB_DROP_REASON_NO_SOCKET", "skb_drop_reason_no_socket"] {
            #expect(try reasons.number(of: given) == 3, "\(given)")
        }
    }

    @Test func anUnknownReasonIsAnErrorListingThisKernelsInNumberOrder() {
        do {
            _ = try reasons.number(of: "NO_SUCH_REASON")
            Issue.record("an unknown reason was accepted")
        } catch let error as NetacctError {
            #expect(error.kind == .badInput)
            #expect(error.message.hasSuffix("has no drop reason NO_SUCH_REASON; its reasons: NOT_SPECIFIED, NO_SOCKET, SOCKET_RCVBUFF, TCP_CSUM."), "\(error.message)")
        } catch {
            Issue.record("\(error)")
        }
    }

    @Test func tcpStatesAreNamedAsTheKernelDoes() {
        #expect(TCPStates.name(0) == nil, "no socket, or not TCP")
        #expect(TCPStates.name(1) == "ESTABLISHED" && TCPStates.name(10) == "LISTEN" && TCPStates.name(12) == "NEW_SYN_RECV")
        #expect(TCPStates.name(99) == "STATE_99")
    }
}

/// Drops and intervals exactly as the tool prints them.
struct DropsRendererTests {
    /// 2026-12-01T12:00:00Z, minus the record's 1.5 ms.
    static let offset: Int64 = 1_796_126_400_000_000_000 - 1_500_000

    static func record(ipv6: Bool) -> netacct_drop_event {
        var record = netacct_drop_event()
        record.time_ns = 1_500_000
        record.socket_inode = 10
        record.reason = ipv6 ? 9 : 7
        record.ifindex = 0  // none: no interface name
        record.family = UInt16(ipv6 ? AF_INET6 : AF_INET)
        record.protocol = ipv6 ? tcp : udp
        record.state = ipv6 ? 1 : 0
        record.sport = ipv6 ? 443 : 33333
        record.dport = ipv6 ? 40000 : 9999
        let (source, destination): ([UInt8], [UInt8]) = ipv6
            ? ([0x20, 0x01, 0x0d, 0xb8] + [UInt8](repeating: 0, count: 11) + [1], [UInt8](repeating: 0, count: 15) + [1])
            : ([10, 0, 0, 1] + [UInt8](repeating: 0, count: 12), [10, 0, 0, 2] + [UInt8](repeating: 0, count: 12))
        withUnsafeMutableBytes(of: &record.saddr) { $0.copyBytes(from: source) }
        withUnsafeMutableBytes(of: &record.daddr) { $0.copyBytes(from: destination) }
        return record
    }

    static func text(_ body: (inout TextBuffer) -> Void) -> String {
        var out = TextBuffer()
        body(&out)
        return String(decoding: out.bytes, as: UTF8.self)
    }

    @Test func aDropIsOneJSONLineWithTheDocumentedKeys() {
        var renderer = DropsRenderer(reasons: reasons, wallClockOffset: Self.offset)
        #expect(Self.text { renderer.json(Self.record(ipv6: false), owner: deaf, into: &$0) }
            == #"{"time":"2026-12-01T12:00:00.000000Z","pid":100,"comm":"deaf","family":4,"protocol":"udp","saddr":"10.0.0.1","sport":33333,"daddr":"10.0.0.2","dport":9999,"reason":"SOCKET_RCVBUFF","state":null,"ifname":null}"# + "\n")
        #expect(Self.text { renderer.json(Self.record(ipv6: true), owner: nil, into: &$0) }
            == #"{"time":"2026-12-01T12:00:00.000000Z","pid":null,"comm":null,"family":6,"protocol":"tcp","saddr":"2001:db8::1","sport":443,"daddr":"::1","dport":40000,"reason":"TCP_CSUM","state":"ESTABLISHED","ifname":null}"# + "\n")
    }

    @Test func aDropIsATableRowUnderTheHeader() {
        var renderer = DropsRenderer(reasons: reasons, wallClockOffset: Self.offset)
        let v4 = Self.text { renderer.row(Self.record(ipv6: false), owner: deaf, into: &$0) }
        let v6 = Self.text { renderer.row(Self.record(ipv6: true), owner: nil, into: &$0) }
        // The time is local: everything after it, in the header's columns.
        #expect(v4.dropFirst(9) == "100     deaf             4  10.0.0.1:33333 > 10.0.0.2:9999           udp   socket rcvbuff            -\n")
        #expect(v6.dropFirst(9) == "-       -                6  [2001:db8::1]:443 > [::1]:40000          tcp   tcp csum                  ESTABLISHED\n")
        // Each heading stands over its column: the protocol, the reason and the state start where theirs do.
        let header = DropsRenderer.header
        for (heading, value) in [("PROTO", "udp"), ("REASON", "socket rcvbuff"), ("STATE", "-\n")] {
            let column = header.distance(from: header.startIndex, to: header.range(of: heading)!.lowerBound)
            let start = v4.distance(from: v4.startIndex, to: v4.range(of: value)!.lowerBound)
            #expect(column == start, "\(heading)")
        }
    }

    static let interval = DropsRenderer.Interval(time: Date(timeIntervalSince1970: 0), seconds: 1.5, rows: [
        DropsSummaryTests.row("SOCKET_RCVBUFF", "udp", deaf, 10), DropsSummaryTests.row("NO_SOCKET", "udp", nil, 6),
        DropsSummaryTests.row("SOCKET_RCVBUFF", "udp", nil, unattributed: true, 2),
    ])

    @Test func anIntervalIsOneJSONLine() throws {
        let line = DropsRenderer.summaryJSON(Self.interval)
        #expect(line == #"{"time":"1970-01-01T00:00:00.000Z","interval_s":1.500,"drops":[{"reason":"SOCKET_RCVBUFF","protocol":"udp","pid":100,"comm":"deaf","count":10},{"reason":"NO_SOCKET","protocol":"udp","pid":null,"comm":null,"count":6},{"reason":"SOCKET_RCVBUFF","protocol":"udp","pid":null,"comm":null,"count":2}]}"# + "\n")
        #expect(try JSONSerialization.jsonObject(with: Data(line.utf8)) is [String: Any])
    }

    @Test func anIntervalIsATableWithItsTotal() {
        let lines = DropsRenderer.summaryTable(Self.interval).split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        #expect(lines == ["\(Units.clock(Self.interval.time))  (1.50s)  18 drops",
                          "  COUNT PROTO REASON                    PID     COMM",
                          "     10 udp   socket rcvbuff            100     deaf",
                          "      6 udp   no socket                 -       -",
                          "      2 udp   socket rcvbuff            ?       -",
                          "", ""])
    }
}

/// Sockets' owners from /proc, as they are found for this process's own sockets (no root).
struct SocketOwnersTests {
    static func socketInode() throws -> (fd: Int32, inode: UInt64) {
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        try #require(fd >= 0)
        var status = stat()
        try #require(fstat(fd, &status) == 0)
        return (fd, UInt64(status.st_ino))
    }

    @Test func aSocketsOwnerIsTheProcessHoldingItAndUnknownOnesWaitForTheRescanInterval() throws {
        let comm = try String(contentsOfFile: "/proc/self/comm", encoding: .utf8).trimmingCharacters(in: .newlines)
        let first = try Self.socketInode()
        defer { close(first.fd) }
        var owners = SocketOwners(rescanInterval: 1000)
        let cgroup = CgroupNames.mountPoint().flatMap { CgroupNames.id(ofProcess: getpid(), root: $0) } ?? 0
        #expect(owners.owner(of: first.inode, now: 0) == SocketOwners.Owner(pid: getpid(), comm: comm, cgroup: cgroup), "the first question scans, with its cgroup")
        #expect(owners.known[first.inode]?.pid == getpid())
        let second = try Self.socketInode()
        defer { close(second.fd) }
        #expect(owners.owner(of: second.inode, now: 1) == nil, "made after the scan, and no rescan within the interval")
        #expect(owners.owner(of: second.inode, now: 1001)?.pid == getpid(), "found by the rescan after it")
        #expect(owners.owner(of: 0, now: 5000) == nil, "no socket")
    }
}
