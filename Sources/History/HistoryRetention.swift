import GRDBSQLite
import DaemonProtocol
import NetacctKit

/// How long the history keeps each resolution, and how large it may grow: full resolution for
/// `full`, then each tier's resolution until its age, then nothing (as Netdata's dbengine tiers
/// and RRD archives keep coarser data for longer). Merging sums the fine intervals' rows, so
/// the totals stay exact; past `maximumBytes` the oldest intervals go first, counted.
public struct HistoryRetention: Sendable, Equatable {
    public struct Tier: Sendable, Equatable {
        /// Seconds per interval.
        public var resolution: Int64
        /// Nanoseconds of age until which intervals are kept at this resolution.
        public var until: Int64
        public init(resolution: Int64, until: Int64) { (self.resolution, self.until) = (resolution, until) }
    }

    /// Nanoseconds of age until which intervals are kept as recorded.
    public var full: Int64
    public var tiers: [Tier]
    public var maximumBytes: Int64

    static let day: Int64 = 86_400_000_000_000
    public static let standard = HistoryRetention(full: day, tiers: [Tier(resolution: 60, until: 7 * day), Tier(resolution: 600, until: 90 * day)],
                                                  maximumBytes: 256 << 20)

    public init(full: Int64, tiers: [Tier], maximumBytes: Int64) {
        (self.full, self.tiers, self.maximumBytes) = (full, tiers, maximumBytes)
    }

    /// Nanoseconds of age past which nothing is kept.
    public var keep: Int64 { tiers.last?.until ?? full }

    /// Bytes written as `300M`, `1G`, `65536`, `512K` (powers of 1024).
    public static func size(_ text: String) throws -> Int64 {
        let units: [Character: Int64] = ["K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40]
        let unit = text.last.flatMap { units[Character($0.uppercased())] }
        guard let number = Int64(unit == nil ? text : String(text.dropLast())), number > 0,
              case let (bytes, overflow) = number.multipliedReportingOverflow(by: unit ?? 1), !overflow else {
            throw NetacctError("'\(text)' is not a size: give bytes, or a number with K, M, G or T (300M).")
        }
        return bytes
    }

    /// `1d,60s:7d,600s:90d`: full resolution for a day, 60 s intervals until 7 days old, 600 s
    /// until 90 days; each resolution coarser and each age older than the one before.
    public static func parse(_ text: String, interval: Double, maximumBytes: Int64) throws -> HistoryRetention {
        let bad = "--history-retention takes FULL[,RESOLUTION:UNTIL...] (such as 1d,60s:7d,600s:90d), each resolution coarser and each age older than the one before"
        let parts = text.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        do {
            var retention = HistoryRetention(full: try HistoryTime.duration(parts[0]), tiers: [], maximumBytes: maximumBytes)
            var (finest, oldest) = (Int64(interval.rounded(.up)), retention.full)
            for part in parts.dropFirst() {
                let pair = part.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
                guard pair.count == 2 else { throw NetacctError("\(bad), not \(text).") }
                let tier = Tier(resolution: try HistoryTime.duration(pair[0]) / 1_000_000_000, until: try HistoryTime.duration(pair[1]))
                guard tier.resolution > finest, tier.until > oldest else { throw NetacctError("\(bad), not \(text).") }
                (finest, oldest) = (tier.resolution, tier.until)
                retention.tiers.append(tier)
            }
            return retention
        } catch let error as NetacctError where !error.message.hasPrefix("--history-retention") {
            throw NetacctError("\(bad), not \(text): \(error.message)")
        }
    }
}

/// What one maintenance did.
public struct HistoryMaintenance: Sendable, Equatable {
    /// Fine intervals merged into coarser ones, and the coarser ones made.
    public var merged = 0, made = 0
    /// Intervals older than the last tier, gone.
    public var expired = 0
    /// Intervals gone, oldest first, to keep the file under its size.
    public var droppedForSize = 0

    public init(merged: Int = 0, made: Int = 0, expired: Int = 0, droppedForSize: Int = 0) {
        (self.merged, self.made, self.expired, self.droppedForSize) = (merged, made, expired, droppedForSize)
    }
}

extension HistoryStore {
    /// Merges, expires and trims the history as `retention` says, as of `now` (wall-clock ns).
    /// At most `limit` merges per call, so that one call never holds the file long.
    public func maintain(_ retention: HistoryRetention, now: Int64, limit: Int = 256) throws -> HistoryMaintenance {
        var done = HistoryMaintenance()
        // A merge that fails is said by the caller, after the expiry and the size cap, which
        // must go on whatever happens to merging.
        var failure: (any Error)?
        do { try merge(retention, now: now, limit: limit, into: &done) } catch { failure = error }
        try database.transaction {
            try database.prepare("DELETE FROM intervals WHERE end_ns <= ?1").run(.integer(now - retention.keep))
            done.expired = Int(sqlite3_changes(database.handle))
            try forgetProcesses()
        }
        done.droppedForSize = try trim(to: retention.maximumBytes)
        if let failure { throw failure }
        return done
    }

    /// Each tier's merges due by `now`.
    private func merge(_ retention: HistoryRetention, now: Int64, limit: Int, into done: inout HistoryMaintenance) throws {
        var age = retention.full
        for tier in retention.tiers {
            let bucket = tier.resolution * 1_000_000_000
            let cutoff = (now - age) / bucket * bucket
            age = tier.until
            let buckets = try database.prepare("""
                SELECT DISTINCT start_ns / ?1 FROM intervals WHERE resolution_s < ?2 AND end_ns <= ?3 ORDER BY 1 LIMIT ?4
                """)
            try buckets.bind(.integer(bucket), .integer(tier.resolution), .integer(cutoff), .integer(Int64(limit - done.made)))
            var numbers: [Int64] = []
            while try buckets.step() { numbers.append(buckets.int64(0)) }
            for number in numbers {
                done.merged += try merge(bucket: number, of: bucket, into: tier.resolution, cutoff: cutoff)
                done.made += 1
            }
        }
    }

    /// One coarse interval from the fine ones that start in `number`'s bucket: their entries and
    /// series summed per process and per counter.
    private func merge(bucket number: Int64, of bucket: Int64, into resolution: Int64, cutoff: Int64) throws -> Int {
        try database.transaction {
            try database.execute("CREATE TEMP TABLE IF NOT EXISTS merging(id INTEGER PRIMARY KEY); DELETE FROM merging")
            try database.prepare("INSERT INTO merging SELECT id FROM intervals WHERE resolution_s < ?1 AND end_ns <= ?2 AND start_ns / ?3 = ?4")
                .run(.integer(resolution), .integer(cutoff), .integer(bucket), .integer(number))
            let count = Int(sqlite3_changes(database.handle))
            var sums: [Int64: IntervalEntries.Entry] = [:]
            let fine = try database.prepare("SELECT min(start_ns) OVER (), max(end_ns) OVER (), processes FROM intervals WHERE id IN merging")
            var (start, end): (Int64, Int64) = (0, 0)
            while try fine.step() {
                (start, end) = (fine.int64(0), fine.int64(1))
                fine.blob(2) { bytes in
                    IntervalEntries.decode(bytes) { entry in
                        var sum = sums[entry.process] ?? IntervalEntries.Entry(process: entry.process, counters: Counters(), exited: false)
                        sum.counters.add(entry.counters)
                        sum.exited = sum.exited || entry.exited
                        sums[entry.process] = sum
                    }
                }
            }
            try database.prepare("INSERT INTO intervals(start_ns, end_ns, resolution_s, processes) VALUES (?1, ?2, ?3, ?4)")
                .run(.integer(start), .integer(end), .integer(resolution), .blob(IntervalEntries.encode(Array(sums.values))))
            let id = sqlite3_last_insert_rowid(database.handle)
            // A process the coarse interval names lasts as long as it.
            let last = try database.prepare("UPDATE processes SET last_ns = max(last_ns, ?1) WHERE id = ?2")
            for process in sums.keys { try last.run(.integer(end), .integer(process)) }
            try database.prepare("""
                INSERT INTO series(interval, source, labels, name, value) SELECT ?1, source, labels, name, sum(value) FROM series
                WHERE interval IN merging GROUP BY source, labels, name
                """).run(.integer(id))
            try database.execute("DELETE FROM intervals WHERE id IN merging")
            return count
        }
    }

    /// The bytes the history's pages hold (the file less its free pages).
    public func usedBytes() throws -> Int64 {
        let pages = try database.integer("PRAGMA page_count") ?? 0, free = try database.integer("PRAGMA freelist_count") ?? 0
        return (pages - free) * (try database.integer("PRAGMA page_size") ?? 4096)
    }

    /// Drops the oldest intervals until the history holds at most nine tenths of `maximum`
    /// bytes; counts them in the file (`droppedForSize`), and gives the free pages back.
    private func trim(to maximum: Int64) throws -> Int {
        var dropped = 0
        while try usedBytes() > maximum {
            let count = try database.integer("SELECT count(*) FROM intervals") ?? 0
            guard count > 0 else { break }
            // A tenth of what is over, as a share of the intervals (at least one).
            let over = Double(try usedBytes() - maximum * 9 / 10) / Double(max(1, try usedBytes()))
            let batch = max(1, Int64((Double(count) * over).rounded(.up)))
            try database.transaction {
                try database.prepare("DELETE FROM intervals WHERE id IN (SELECT id FROM intervals ORDER BY start_ns LIMIT ?1)").run(.integer(batch))
                let gone = Int(sqlite3_changes(database.handle))
                try forgetProcesses()
                dropped += gone
                try database.prepare("""
                    INSERT INTO losses(name, count) VALUES ('dropped_for_size', ?1) ON CONFLICT(name) DO UPDATE SET count = count + ?1
                    """).run(.integer(Int64(gone)))
            }
        }
        if dropped > 0 { try database.execute("PRAGMA incremental_vacuum") }
        return dropped
    }

    /// Forgets the processes no interval names any more (those whose last interval ended
    /// before the oldest one kept), and the paths of cgroups no process kept is in.
    private func forgetProcesses() throws {
        try database.execute("""
            DELETE FROM processes WHERE last_ns < coalesce((SELECT min(end_ns) FROM intervals), 9223372036854775807);
            DELETE FROM cgroup_paths WHERE cgroup NOT IN (SELECT cgroup FROM processes)
            """)
    }

    /// Intervals dropped since the file was made, to keep it under its size.
    public func droppedForSize() throws -> UInt64 {
        UInt64(try database.integer("SELECT count FROM losses WHERE name = 'dropped_for_size'") ?? 0)
    }
}
