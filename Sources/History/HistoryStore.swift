import Glibc
import GRDBSQLite
import DaemonProtocol
import NetacctKit

/// The history file: an SQLite database in WAL mode (a crash or kill -9 loses at most the
/// interval being written; readers never block the writer), never readable by other users.
/// It says what it is (`application_id` "nact") and which schema it has (`user_version`): a
/// file of another program, or of a newer netacct, is refused with that said; an older schema
/// is migrated.
public final class HistoryStore {
    public static let defaultPath = "/var/lib/netacct/history.db"
    /// "nact", SQLite's application id of netacct's files.
    public static let applicationID: Int64 = 0x6E61_6374
    /// The schema this netacct writes; `migrations[n]` brings schema n to n + 1.
    public static let schemaVersion: Int64 = 2
    public static let migrations: [String] = [
        // 0 -> 1: a new file. Each interval's processes are one BLOB (IntervalEntries) naming
        // them by their row in `processes` (never reused), whose `last_ns` is the end of the
        // last interval that names them (what expiry goes by; it never goes back).
        """
        CREATE TABLE intervals(id INTEGER PRIMARY KEY, start_ns INTEGER NOT NULL, end_ns INTEGER NOT NULL,
                               resolution_s INTEGER NOT NULL, processes BLOB NOT NULL);
        CREATE INDEX intervals_by_end ON intervals(end_ns);
        CREATE TABLE processes(id INTEGER PRIMARY KEY AUTOINCREMENT, pid INTEGER NOT NULL, start_ns INTEGER NOT NULL, comm TEXT NOT NULL,
                               cgroup INTEGER NOT NULL, last_ns INTEGER NOT NULL, UNIQUE(pid, start_ns));
        CREATE INDEX processes_by_last ON processes(last_ns);
        CREATE TABLE cgroup_paths(cgroup INTEGER PRIMARY KEY, path TEXT NOT NULL);
        CREATE TABLE losses(name TEXT PRIMARY KEY, count INTEGER NOT NULL) WITHOUT ROWID;
        """,
        // 1 -> 2: the other collectors' counters.
        """
        CREATE TABLE series(interval INTEGER NOT NULL REFERENCES intervals(id) ON DELETE CASCADE,
                            source TEXT NOT NULL, labels TEXT NOT NULL, name TEXT NOT NULL, value INTEGER NOT NULL,
                            PRIMARY KEY(interval, source, labels, name)) WITHOUT ROWID;
        """,
    ]


    public let database: SQLiteDatabase
    public var path: String { database.path }
    private var insertInterval: SQLiteStatement?, upsertProcess: SQLiteStatement?, insertPath: SQLiteStatement?, insertSeries: SQLiteStatement?

    /// Opens (`.readWrite`: creates, with its directory, 0700, and the file 0600) the history at
    /// `path`, checking what it is.
    public init(path: String, mode: SQLiteDatabase.Mode) throws {
        if mode == .readWrite {
            try Self.makeDirectory(of: path)
            var system = statvfs()
            let directory = path.lastIndex(of: "/").map { String(path[..<$0]) }.flatMap { $0.isEmpty ? "/" : $0 } ?? "."
            if statvfs(directory, &system) == 0, system.f_flag & UInt(ST_RDONLY) != 0 {
                throw NetacctError("Cannot record the history in \(path): its file system is read-only (give --history-file on a writable one).", kind: .failure)
            }
        } else if access(path, F_OK) != 0 {
            throw NetacctError("No history at \(path): \(String(cString: strerror(errno))) (netacct daemon --history records one; --file names another).")
        }
        // The file and its -wal and -shm are made 0600 whatever the umask.
        let previous = umask(0o077)
        defer { umask(previous) }
        database = try SQLiteDatabase(path: path, mode: mode)
        try check(mode: mode)
        if mode == .readWrite {
            var info = stat()
            if stat(path, &info) == 0, info.st_mode & 0o077 != 0 { chmod(path, 0o600) }
            try database.execute("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON")
        }
    }

    /// Makes the directory of `path` (0700) if it is missing.
    static func makeDirectory(of path: String) throws {
        guard let slash = path.lastIndex(of: "/"), slash != path.startIndex else { return }
        let directory = String(path[..<slash])
        var info = stat()
        if stat(directory, &info) == 0 { return }
        try makeDirectory(of: directory)
        guard mkdir(directory, 0o700) == 0 || errno == EEXIST else {
            throw NetacctError("Cannot make \(directory) for the history: \(String(cString: strerror(errno))).", kind: .failure)
        }
    }

    /// What the file is: netacct's (migrated if older), new (the schema made), or refused.
    private func check(mode: SQLiteDatabase.Mode) throws {
        let application: Int64, version: Int64, tables: Int64
        do {
            application = try database.integer("PRAGMA application_id") ?? 0
            version = try database.integer("PRAGMA user_version") ?? 0
            tables = try database.integer("SELECT count(*) FROM sqlite_schema") ?? 0
        } catch let error as SQLiteError where error.primary == SQLITE_NOTADB || error.primary == SQLITE_CORRUPT {
            throw NetacctError("\(path) is not a netacct history: not an SQLite database, or a damaged one (\(error.message)). Move it away or give another path.",
                               kind: .badInput)
        }
        if application != Self.applicationID && !(application == 0 && tables == 0) {
            throw NetacctError("\(path) is not a netacct history: an SQLite database of another program (application id \(application), \(tables) tables). Give another path.",
                               kind: .badInput)
        }
        if version > Self.schemaVersion {
            throw NetacctError("\(path) was written by a newer netacct (history schema \(version); this one knows up to \(Self.schemaVersion)).",
                               kind: .badInput)
        }
        guard version < Self.schemaVersion else { return }
        guard mode == .readWrite else {
            if tables == 0 { throw NetacctError("\(path) is an empty history: nothing recorded yet.", kind: .badInput) }
            throw NetacctError("\(path) has history schema \(version); the daemon brings it to \(Self.schemaVersion) when it next records.", kind: .badInput)
        }
        // Deleted intervals' pages go back to the file system (only settable while it is empty).
        if tables == 0 { try database.execute("PRAGMA auto_vacuum=INCREMENTAL") }
        try database.transaction {
            for step in Int(version)..<Int(Self.schemaVersion) { try database.execute(Self.migrations[step]) }
            try database.execute("PRAGMA application_id=\(Self.applicationID); PRAGMA user_version=\(Self.schemaVersion)")
        }
    }

    /// Writes one interval, all of it or nothing.
    public func append(_ interval: HistoryInterval, resolution: Int64) throws {
        if insertInterval == nil {
            insertInterval = try database.prepare("INSERT INTO intervals(start_ns, end_ns, resolution_s, processes) VALUES (?1, ?2, ?3, ?4)")
            upsertProcess = try database.prepare("""
                INSERT INTO processes(pid, start_ns, comm, cgroup, last_ns) VALUES (?1, ?2, ?3, ?4, ?5)
                ON CONFLICT(pid, start_ns) DO UPDATE SET comm = excluded.comm, cgroup = excluded.cgroup, last_ns = max(last_ns, excluded.last_ns)
                RETURNING id
                """)
            insertPath = try database.prepare("INSERT OR REPLACE INTO cgroup_paths(cgroup, path) VALUES (?1, ?2)")
            insertSeries = try database.prepare("INSERT OR REPLACE INTO series(interval, source, labels, name, value) VALUES (?1, ?2, ?3, ?4, ?5)")
        }
        try database.transaction {
            var entries: [IntervalEntries.Entry] = []
            entries.reserveCapacity(interval.processes.count)
            var cgroups = Set<UInt64>()
            for process in interval.processes {
                try upsertProcess!.bind(.integer(Int64(process.pid)), .unsigned(process.startNs), .text(process.comm), .unsigned(process.cgroup),
                                        .integer(interval.end))
                guard try upsertProcess!.step() else { throw SQLiteError(code: SQLITE_ERROR, message: "Writing \(path) failed: no row for process \(process.pid)") }
                entries.append(.init(process: upsertProcess!.int64(0), counters: process.counters, exited: process.exited))
                while try upsertProcess!.step() {}
                cgroups.insert(process.cgroup)
            }
            try insertInterval!.run(.integer(interval.start), .integer(interval.end), .integer(resolution), .blob(IntervalEntries.encode(entries)))
            let id = sqlite3_last_insert_rowid(database.handle)
            for (cgroup, path) in interval.cgroupPaths where cgroups.contains(cgroup) {
                try insertPath!.run(.unsigned(cgroup), .text(path))
            }
            for series in interval.series {
                try insertSeries!.run(.integer(id), .text(series.source), .text(series.labels), .text(series.name), .unsigned(series.value))
            }
        }
    }

    /// The first and last instants recorded, and how many intervals (nil: none).
    public func span() throws -> (start: Int64, end: Int64, intervals: Int)? {
        let statement = try database.prepare("SELECT min(start_ns), max(end_ns), count(*) FROM intervals")
        guard try statement.step(), statement.int64(2) > 0 else { return nil }
        return (statement.int64(0), statement.int64(1), Int(statement.int64(2)))
    }

    /// The intervals recorded that overlap [from, until), oldest first.
    public func intervals(overlapping from: Int64, _ until: Int64) throws -> [(start: Int64, end: Int64)] {
        let statement = try database.prepare("SELECT start_ns, end_ns FROM intervals WHERE end_ns > ?1 AND start_ns < ?2 ORDER BY start_ns")
        try statement.bind(.integer(from), .integer(until))
        var result: [(start: Int64, end: Int64)] = []
        while try statement.step() { result.append((statement.int64(0), statement.int64(1))) }
        return result
    }

    /// The intervals that overlap the query's range, each process's (or cgroup's) traffic in them.
    public func report(_ query: HistoryQuery) throws -> HistoryReport {
        let range = try database.prepare("""
            SELECT min(start_ns), max(end_ns), count(*), max(resolution_s), min(resolution_s) FROM intervals WHERE end_ns > ?1 AND start_ns < ?2
            """)
        try range.bind(.integer(query.from), .integer(query.until))
        _ = try range.step()
        let count = Int(range.int64(2))
        var report = HistoryReport(query: query, span: count > 0 ? (range.int64(0), range.int64(1)) : nil, intervals: count,
                                   resolution: range.int64(3), finest: range.int64(4), droppedForSize: try droppedForSize(), rows: [])
        guard count > 0 else { return report }
        switch query.grouping {
        case .process, .cgroup:
            // Each process's sum over the intervals, then its name and cgroup from its row.
            var sums: [Int64: (counters: Counters, exited: Bool)] = [:]
            let blobs = try database.prepare("SELECT processes FROM intervals WHERE end_ns > ?1 AND start_ns < ?2")
            try blobs.bind(.integer(query.from), .integer(query.until))
            while try blobs.step() {
                blobs.blob(0) { bytes in
                    IntervalEntries.decode(bytes) { entry in
                        var sum = sums[entry.process] ?? (Counters(), false)
                        sum.counters.add(entry.counters)
                        sum.exited = sum.exited || entry.exited
                        sums[entry.process] = sum
                    }
                }
            }
            let named = try database.prepare("""
                SELECT p.pid, p.start_ns, p.comm, p.cgroup, c.path FROM processes p LEFT JOIN cgroup_paths c ON c.cgroup = p.cgroup WHERE p.id = ?1
                """)
            var cgroups: [UInt64: HistoryReport.Row] = [:]
            for (process, sum) in sums {
                try named.bind(.integer(process))
                guard try named.step() else { continue }
                let pid = Int32(truncatingIfNeeded: named.int64(0))
                let row = HistoryReport.Row(pid: pid, startNs: named.uint64(1), comm: named.text(2), cgroup: named.uint64(3),
                                            cgroupPath: named.text(4).nilIfEmpty, exited: sum.exited, counters: sum.counters)
                if query.grouping == .process {
                    if query.pid == nil || query.pid == pid { report.rows.append(row) }
                } else {
                    var total = cgroups[row.cgroup] ?? HistoryReport.Row(pid: nil, startNs: nil, comm: nil, cgroup: row.cgroup, cgroupPath: row.cgroupPath,
                                                                       exited: false, counters: Counters())
                    total.counters.add(row.counters)
                    cgroups[row.cgroup] = total
                }
            }
            if query.grouping == .cgroup { report.rows = Array(cgroups.values) }
            report.rows.sort { a, b in
                let (x, y) = (a.counters.bytes, b.counters.bytes)
                return x != y ? x > y : (a.pid ?? 0, a.startNs ?? 0, a.cgroup) < (b.pid ?? 0, b.startNs ?? 0, b.cgroup)
            }
        case .interface, .series:
            // nic's rows: frames, bytes and segments per queue and direction, busiest first;
            // every other collector's: each counter, by collector and labels.
            let nic = query.grouping == .interface
            let statement = try database.prepare("""
                SELECT t.source, t.labels, t.name, sum(t.value) FROM series t JOIN intervals i ON t.interval = i.id
                WHERE i.end_ns > ?1 AND i.start_ns < ?2 AND (t.source = 'nic') = ?3 GROUP BY t.source, t.labels, t.name
                ORDER BY t.source, t.labels, t.name
                """)
            try statement.bind(.integer(query.from), .integer(query.until), .integer(nic ? 1 : 0))
            while try statement.step() {
                let (source, labels) = (statement.text(0), statement.text(1))
                if let last = report.seriesRows.last, last.source == source, last.labels == labels {
                    report.seriesRows[report.seriesRows.count - 1].values.append((statement.text(2), statement.uint64(3)))
                } else {
                    report.seriesRows.append(.init(source: source, labels: labels, values: [(statement.text(2), statement.uint64(3))]))
                }
            }
            if nic {
                func bytes(_ row: HistoryReport.SeriesRow) -> UInt64 { row.values.first { $0.name == "bytes" }?.value ?? 0 }
                report.seriesRows.sort { bytes($0) != bytes($1) ? bytes($0) > bytes($1) : $0.labels < $1.labels }
            }
        }
        return report
    }
}

extension String {
    var nilIfEmpty: String? { isEmpty ? nil : self }
}
