import Foundation
import Glibc
import DaemonProtocol
@testable import History
import Testing

/// The history file without a daemon: what it writes and reads back, what it refuses, and the
/// times and durations `netacct history` takes.
struct HistoryStoreTests {
    final class Directory {
        let path = NSTemporaryDirectory() + "netacct-store-\(getpid())-\(UUID().uuidString.prefix(6))"
        deinit { try? FileManager.default.removeItem(atPath: path) }
    }

    static func process(_ pid: Int32, _ comm: String, cgroup: UInt64, udpTx: UInt64, tcpRx: UInt64 = 0) -> HistoryInterval.Process {
        HistoryInterval.Process(pid: pid, startNs: UInt64(pid) * 1000, comm: comm, cgroup: cgroup, exited: false,
                                counters: Counters(tcpRxPackets: tcpRx > 0 ? 1 : 0, tcpRxBytes: tcpRx, udpTxPackets: 1, udpTxBytes: udpTx))
    }

    @Test func intervalsAreReadBackSummedPerProcessAndPerCgroupBusiestFirst() throws {
        let directory = Directory()
        let path = directory.path + "/a/b/history.db"
        let store = try HistoryStore(path: path, mode: .readWrite)
        let second: Int64 = 1_000_000_000
        try store.append(HistoryInterval(start: 100 * second, end: 110 * second, processes: [
            Self.process(10, "web", cgroup: 7, udpTx: 300), Self.process(11, "db", cgroup: 8, udpTx: 50, tcpRx: 1000),
        ], cgroupPaths: [7: "/system.slice/web.service", 8: "/system.slice/db.service"]), resolution: 10)
        try store.append(HistoryInterval(start: 110 * second, end: 120 * second, processes: [
            Self.process(10, "web", cgroup: 7, udpTx: 200), Self.process(12, "web", cgroup: 7, udpTx: 5),
        ], cgroupPaths: [7: "/system.slice/web.service"]), resolution: 10)

        let reader = try HistoryStore(path: path, mode: .readOnly)
        let all = try reader.report(HistoryQuery(from: 0, until: 200 * second))
        #expect(all.intervals == 2 && all.resolution == 10 && all.span?.start == 100 * second && all.span?.end == 120 * second)
        #expect(all.rows.map(\.pid) == [11, 10, 12], "busiest first: 1050, 500, 5 bytes")
        #expect(all.rows.first { $0.pid == 10 }?.counters.udpTxBytes == 500 && all.rows.first { $0.pid == 10 }?.counters.udpTxPackets == 2)
        #expect(all.rows.first { $0.pid == 10 }?.cgroupPath == "/system.slice/web.service")
        // One interval: those that overlap [from, until).
        let second2 = try reader.report(HistoryQuery(from: 110 * second, until: 110 * second + 1))
        #expect(second2.intervals == 1 && second2.rows.map(\.pid) == [10, 12] && second2.rows[0].counters.udpTxBytes == 200)
        let onePID = try reader.report(HistoryQuery(from: 0, until: 200 * second, pid: 12))
        #expect(onePID.rows.map(\.pid) == [12])
        // The cgroups' rows are their processes' sums.
        let cgroups = try reader.report(HistoryQuery(from: 0, until: 200 * second, grouping: .cgroup))
        #expect(cgroups.rows.map(\.cgroup) == [8, 7])
        #expect(cgroups.rows.first { $0.cgroup == 7 }?.counters.udpTxBytes == 505 && cgroups.rows.first { $0.cgroup == 7 }?.cgroupPath == "/system.slice/web.service")
        #expect(try reader.report(HistoryQuery(from: 0, until: 100 * second)).intervals == 0)
        #expect(try reader.intervals(overlapping: 0, 200 * second).map(\.start) == [100 * second, 110 * second])

        // Private: the directory made 0700, the file 0600.
        var info = stat()
        #expect(stat(path, &info) == 0 && info.st_mode & 0o777 == 0o600)
        #expect(stat(directory.path + "/a/b", &info) == 0 && info.st_mode & 0o777 == 0o700)
    }

    @Test func aNewerSchemaAnotherProgramsFileAndAMissingFileAreRefusedWithWhy() throws {
        let directory = Directory()
        let path = directory.path + "/history.db"
        _ = try HistoryStore(path: path, mode: .readWrite)
        let newer = try SQLiteDatabase(path: path, mode: .readWrite)
        try newer.execute("PRAGMA user_version=\(HistoryStore.schemaVersion + 1)")
        for mode in [SQLiteDatabase.Mode.readOnly, .readWrite] {
            let error = #expect(throws: (any Error).self) { try HistoryStore(path: path, mode: mode) }
            #expect("\(error.map { "\($0)" } ?? "")".contains("was written by a newer netacct (history schema \(HistoryStore.schemaVersion + 1); this one knows up to \(HistoryStore.schemaVersion))"))
        }
        let other = directory.path + "/other.db"
        try SQLiteDatabase(path: other, mode: .readWrite).execute("PRAGMA application_id=1234; CREATE TABLE t(x)")
        let foreign = #expect(throws: (any Error).self) { try HistoryStore(path: other, mode: .readWrite) }
        #expect("\(foreign.map { "\($0)" } ?? "")".contains("an SQLite database of another program (application id 1234"))
        let missing = #expect(throws: (any Error).self) { try HistoryStore(path: directory.path + "/none.db", mode: .readOnly) }
        #expect("\(missing.map { "\($0)" } ?? "")".contains("No history at"))
        #expect(!FileManager.default.fileExists(atPath: directory.path + "/none.db"), "reading creates nothing")
    }

    @Test func timesAreLocalAndDurationsTakeUnits() throws {
        var day = tm()
        var now = time_t(1_765_000_000)
        localtime_r(&now, &day)
        (day.tm_hour, day.tm_min, day.tm_sec, day.tm_isdst) = (3, 12, 0, -1)
        let expected = Int64(mktime(&day)) * 1_000_000_000
        #expect(try HistoryTime.moment("03:12", now: 1_765_000_000 * 1_000_000_000) == expected)
        #expect(try HistoryTime.moment("03:12:30", now: 1_765_000_000 * 1_000_000_000) == expected + 30 * 1_000_000_000)
        let dated = try HistoryTime.moment("2026-12-07 03:12")
        #expect(try HistoryTime.moment("2026-12-07T03:12:00") == dated)
        #expect(HistoryTime.describe(dated, withDate: true) == "2026-12-07 03:12:00")
        #expect(try HistoryTime.moment("@1765000000.25") == 1_765_000_000_250_000_000)
        for bad in ["", "25:00", "03:61", "3", "2026-13-01", "2026-02-31", "3000-01-01", "1600-01-01 00:00", "03:12 extra", "@", "@1.", "@1.1234567890"] {
            #expect(throws: (any Error).self, "\(bad)") { try HistoryTime.moment(bad) }
        }
        #expect(try HistoryTime.duration("90") == 90_000_000_000)
        #expect(try HistoryTime.duration("1h30m") == 5400_000_000_000)
        #expect(try HistoryTime.duration("2d") == 172_800_000_000_000)
        for bad in ["", "h", "10x", "0", "-5m", "1h30", "99999999999999999999d", "9999999999999999d", "9223372036854775807s1s"] {
            #expect(throws: (any Error).self, "\(bad)") { try HistoryTime.duration(bad) }
        }
    }

    static func totals(_ store: HistoryStore) throws -> [Int32: UInt64] {
        Dictionary(uniqueKeysWithValues: try store.report(HistoryQuery(from: 0, until: .max)).rows.map { ($0.pid!, $0.counters.udpTxBytes) })
    }

    @Test func mergingIntoCoarserIntervalsKeepsTotalsExactAndOldIntervalsExpire() throws {
        let directory = Directory()
        let store = try HistoryStore(path: directory.path + "/history.db", mode: .readWrite)
        let second: Int64 = 1_000_000_000
        for i in 0..<120 {
            try store.append(HistoryInterval(start: (1000 + Int64(i)) * second, end: (1001 + Int64(i)) * second, processes: [
                Self.process(1, "a", cgroup: 7, udpTx: UInt64(i + 1)), Self.process(2, "b", cgroup: 7, udpTx: 2),
            ], cgroupPaths: [:]), resolution: 1)
        }
        let before = try Self.totals(store)
        #expect(before == [1: 7260, 2: 240])
        // Full resolution for 30 s, 10 s intervals until 60 s old, 60 s ones until 1000 s old.
        let retention = HistoryRetention(full: 30 * second, tiers: [.init(resolution: 10, until: 60 * second), .init(resolution: 60, until: 1000 * second)],
                                         maximumBytes: 1 << 30)
        let done = try store.maintain(retention, now: 1120 * second)
        // 1 s intervals ending by 1090 s: 90 of them, into nine 10 s ones; the two of those that
        // end by 1020 s, into one 60 s interval.
        #expect(done == HistoryMaintenance(merged: 92, made: 10, expired: 0, droppedForSize: 0), "\(done)")
        #expect(try Self.totals(store) == before, "the totals are the same")
        let cgroups = try store.report(HistoryQuery(from: 0, until: .max, grouping: .cgroup))
        #expect(cgroups.rows.map(\.counters.udpTxBytes) == [7500] && cgroups.intervals == 38 && cgroups.finest == 1 && cgroups.resolution == 60)
        let coarse = try store.report(HistoryQuery(from: 1000 * second, until: 1000 * second + 1))
        #expect(coarse.span?.start == 1000 * second && coarse.span?.end == 1020 * second && coarse.resolution == 60)
        #expect(coarse.rows.first { $0.pid == 1 }?.counters.udpTxBytes == (1...20).reduce(0, +) && coarse.rows.first { $0.pid == 1 }?.counters.udpTxPackets == 20)
        // Nothing to do twice; and past the last tier's age everything goes.
        #expect(try store.maintain(retention, now: 1120 * second) == HistoryMaintenance())
        #expect(try store.maintain(retention, now: 3000 * second).expired > 0)
        #expect(try store.span() == nil)
        #expect(try store.database.integer("SELECT count(*) FROM processes") == 0, "the processes no interval names are forgotten")
        #expect(try store.database.integer("SELECT count(*) FROM cgroup_paths") == 0, "and their cgroups' paths")
    }

    @Test func pastItsSizeTheOldestIntervalsGoFirstAndAreCounted() throws {
        let directory = Directory()
        let store = try HistoryStore(path: directory.path + "/history.db", mode: .readWrite)
        let second: Int64 = 1_000_000_000
        for i in 0..<400 {
            try store.append(HistoryInterval(start: Int64(i) * second, end: Int64(i + 1) * second,
                                             processes: (1...20).map { Self.process(Int32($0), "p\($0)", cgroup: 7, udpTx: 100) }, cgroupPaths: [:]), resolution: 1)
        }
        let limit: Int64 = 64 << 10
        #expect(try store.usedBytes() > limit)
        let retention = HistoryRetention(full: 1 << 62, tiers: [], maximumBytes: limit)
        let done = try store.maintain(retention, now: 400 * second)
        #expect(done.droppedForSize > 0 && done.merged == 0 && done.expired == 0)
        #expect(try store.usedBytes() <= limit)
        let span = try #require(try store.span())
        #expect(span.end == 400 * second && span.intervals == 400 - done.droppedForSize && span.start == Int64(done.droppedForSize) * second,
                "the oldest went: \(span)")
        #expect(try store.droppedForSize() == UInt64(done.droppedForSize))
        #expect(try store.report(HistoryQuery(from: 0, until: .max)).droppedForSize == UInt64(done.droppedForSize))
    }

    @Test func retentionAndSizesAreParsedAndCheckedInOrder() throws {
        let standard = try HistoryRetention.parse("1d,60s:7d,600s:90d", interval: 10, maximumBytes: 256 << 20)
        #expect(standard == .standard)
        #expect(try HistoryRetention.parse("2h", interval: 10, maximumBytes: 1).tiers.isEmpty)
        for bad in ["", "1d,60s", "1d,5s:7d", "1d,60s:12h", "1d,60s:7d,30s:90d", "1d,x:7d"] {
            #expect(throws: (any Error).self, "\(bad)") { try HistoryRetention.parse(bad, interval: 10, maximumBytes: 1) }
        }
        #expect(try HistoryRetention.size("300M") == 300 << 20 && HistoryRetention.size("65536") == 65536 && HistoryRetention.size("1g") == 1 << 30)
        for bad in ["", "M", "-1M", "1.5G", "99999999999T"] {
            #expect(throws: (any Error).self, "\(bad)") { try HistoryRetention.size(bad) }
        }
    }

    @Test func otherCollectorsCountersAreSummedPerLabelsAndMergedExactly() throws {
        let directory = Directory()
        let store = try HistoryStore(path: directory.path + "/history.db", mode: .readWrite)
        let second: Int64 = 1_000_000_000
        let rx = #"interface="eth0",queue="0",direction="rx""#, tx = #"interface="eth0",queue="0",direction="tx""#
        for i in 0..<20 {
            try store.append(HistoryInterval(start: Int64(i) * second, end: Int64(i + 1) * second, processes: [], cgroupPaths: [:], series: [
                HistorySeries(source: "nic", labels: rx, name: "frames", value: 10), HistorySeries(source: "nic", labels: rx, name: "bytes", value: 1000),
                HistorySeries(source: "nic", labels: tx, name: "frames", value: 1), HistorySeries(source: "nic", labels: tx, name: "bytes", value: 60),
                HistorySeries(source: "tcp", labels: #"cause="timeout""#, name: "retransmitted_segments", value: UInt64(i)),
            ]), resolution: 1)
        }
        func check(_ what: String) throws {
            let interfaces = try store.report(HistoryQuery(from: 0, until: .max, grouping: .interface))
            #expect(interfaces.seriesRows.map(\.labels) == [rx, tx], "busiest first (\(what))")
            #expect(interfaces.seriesRows[0].values.map(\.name) == ["bytes", "frames"] && interfaces.seriesRows[0].values.map(\.value) == [20_000, 200], "\(what)")
            let others = try store.report(HistoryQuery(from: 0, until: .max, grouping: .series))
            #expect(others.seriesRows.count == 1 && others.seriesRows[0].source == "tcp" && others.seriesRows[0].values[0].value == 190, "\(what)")
        }
        try check("as recorded")
        let done = try store.maintain(HistoryRetention(full: 5 * second, tiers: [.init(resolution: 10, until: 1000 * second)], maximumBytes: 1 << 30), now: 25 * second)
        #expect(done.made == 2 && done.merged == 20)
        try check("merged")
    }

    /// A file of schema 1 (before the other collectors' counters) is brought to the current
    /// schema when the daemon opens it, its intervals kept; a reader asks for the daemon.
    @Test func anOlderSchemaIsMigratedKeepingWhatItHolds() throws {
        let directory = Directory()
        let path = directory.path + "/history.db"
        try FileManager.default.createDirectory(atPath: directory.path, withIntermediateDirectories: true)
        let old = try SQLiteDatabase(path: path, mode: .readWrite)
        try old.execute(HistoryStore.migrations[0])
        try old.execute("""
            INSERT INTO intervals VALUES (1, 0, 10000000000, 10, X'010264');
            INSERT INTO processes VALUES (1, 42, 7, 'old', 3, 10000000000);
            PRAGMA application_id=\(HistoryStore.applicationID); PRAGMA user_version=1
            """)
        let reading = #expect(throws: (any Error).self) { try HistoryStore(path: path, mode: .readOnly) }
        #expect("\(reading.map { "\($0)" } ?? "")".contains("has history schema 1; the daemon brings it to \(HistoryStore.schemaVersion)"))
        let store = try HistoryStore(path: path, mode: .readWrite)
        #expect(try store.database.integer("PRAGMA user_version") == HistoryStore.schemaVersion)
        let report = try store.report(HistoryQuery(from: 0, until: .max))
        #expect(report.rows.map(\.pid) == [42] && report.rows[0].counters.tcpTxBytes == 100)
        try store.append(HistoryInterval(start: 10_000_000_000, end: 20_000_000_000, processes: [], cgroupPaths: [:],
                                         series: [HistorySeries(source: "nic", labels: "", name: "frames", value: 3)]), resolution: 10)
        #expect(try store.report(HistoryQuery(from: 0, until: .max, grouping: .interface)).seriesRows.first?.values.first?.value == 3)
    }

    @Test func anIntervalsEntriesRoundTripAndADamagedBlobGivesWhatCameBefore() {
        let entries = [
            IntervalEntries.Entry(process: 900, counters: Counters(tcpTxPackets: 1, tcpTxBytes: .max), exited: true),
            IntervalEntries.Entry(process: 3, counters: Counters(udpRxPackets: 127, udpRxBytes: 128), exited: false),
            IntervalEntries.Entry(process: 70_000, counters: Counters(), exited: false),
        ]
        let bytes = IntervalEntries.encode(entries)
        var decoded: [IntervalEntries.Entry] = []
        bytes.withUnsafeBytes { IntervalEntries.decode($0) { decoded.append($0) } }
        #expect(decoded == entries.sorted { $0.process < $1.process })
        #expect(bytes.count == (1 + 2 + 1 + 2) + (2 + 2 + 1 + 10) + (3 + 1), "varints: \(bytes.count) bytes")
        var prefix: [IntervalEntries.Entry] = []
        Array(bytes.dropLast(3)).withUnsafeBytes { IntervalEntries.decode($0) { prefix.append($0) } }
        #expect(prefix == Array(decoded.prefix(2)))
    }

    /// The wall clock stepped back: an interval that ends before one already written names the
    /// same process; when it expires, the later one still names the process.
    @Test func aClockSteppedBackNeverForgetsAProcessAnIntervalNames() throws {
        let directory = Directory()
        let store = try HistoryStore(path: directory.path + "/history.db", mode: .readWrite)
        let second: Int64 = 1_000_000_000
        try store.append(HistoryInterval(start: 100 * second, end: 110 * second, processes: [Self.process(7, "web", cgroup: 1, udpTx: 70)],
                                         cgroupPaths: [1: "/web"]), resolution: 10)
        try store.append(HistoryInterval(start: 50 * second, end: 60 * second, processes: [Self.process(7, "web", cgroup: 1, udpTx: 5)],
                                         cgroupPaths: [1: "/web"]), resolution: 10)
        // Keep 100 s: the interval that ends at 60 s goes, the one at 110 s stays.
        let done = try store.maintain(HistoryRetention(full: 100 * second, tiers: [], maximumBytes: 1 << 30), now: 160 * second)
        #expect(done.expired == 1)
        let report = try store.report(HistoryQuery(from: 0, until: .max))
        #expect(report.rows.map(\.pid) == [7] && report.rows.first?.counters.udpTxBytes == 70 && report.rows.first?.cgroupPath == "/web")
    }
}
