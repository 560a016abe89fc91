import Foundation
import Glibc
import Testing

/// `netacct daemon --history` and `netacct history`, on a real daemon and a real SQLite file:
/// processes with known traffic in a cgroup of their own, read back exactly, per interval, at
/// a moment, per cgroup; the file's permissions; files that are not a history.
@Suite(.serialized, .enabled(if: isRoot, "runs the daemon, which loads BPF programs: needs root"))
struct HistoryCommandTests {
    /// A directory of the test's own, removed at the end.
    final class Directory {
        let path = NSTemporaryDirectory() + "netacct-history-\(getpid())-\(UUID().uuidString.prefix(6))"
        deinit { try? FileManager.default.removeItem(atPath: path) }
    }

    /// `netacct history --json …` on `file`: each answer's object.
    static func history(_ file: String, _ arguments: [String], sourceLocation: SourceLocation = #_sourceLocation) throws -> [[String: Any]] {
        let result = try Binary.run(["history", "--file", file, "--json"] + arguments)
        #expect(result.status == 0, "netacct history \(arguments): \(result.err)", sourceLocation: sourceLocation)
        return try result.out.split(separator: "\n").map {
            try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
        }
    }

    static func rows(_ answer: [String: Any], comm: String) -> [[String: Any]] {
        (answer["rows"] as? [[String: Any]] ?? []).filter { $0["comm"] as? String == comm }
    }

    static func number(_ row: [String: Any]?, _ key: String) -> UInt64? { (row?[key] as? NSNumber)?.uint64Value }

    static let port = 23100 + Int(getpid() % 300)

    /// A daemon recording into `file` every `interval` seconds, once it says so.
    static func recording(_ file: String, every interval: String, extra: [String] = []) throws -> DaemonProcess {
        let daemon = try DaemonProcess(extra: ["--history", "--history-file", file, "--history-interval", interval] + extra)
        try daemon.awaitLog("recording history")
        return daemon
    }

    @Test func eachIntervalsTrafficIsReadBackExactlyPerProcessPerIntervalAtAMomentAndPerCgroup() throws {
        let directory = Directory()
        let file = directory.path + "/state/history.db"
        let cgroups = try TestCgroups()
        let address = "127.0.0.1:\(Self.port)"
        let daemon = try Self.recording(file, every: "2", extra: ["--listen", address])
        // Two bursts, by processes that exit, an interval or more apart.
        try MetricsTests.send(named: ["nacct-hist-a"], in: cgroups.root + cgroups.unit, count: 5, bytes: 300)
        usleep(2_500_000)
        try MetricsTests.send(named: ["nacct-hist-b", "nacct-hist-b"], in: cgroups.root + cgroups.unit, count: 3, bytes: 70)
        usleep(2_500_000)

        // While it records: the HTTP API answers what the command answers, byte for byte, for a
        // range of intervals already written.
        let written = try #require(try Self.history(file, ["--since", "5m"]).first)
        let (from, until) = (try #require(Self.number(written, "from_ns")), try #require(Self.number(written, "until_ns")))
        func at(_ ns: UInt64) -> String { "@\(ns / 1_000_000_000).\(String(format: "%09llu", ns % 1_000_000_000))" }
        for (parameters, options) in [("from=\(at(from))&to=\(at(until))", ["--from", at(from), "--until", at(until)]),
                                      ("from=\(at(from))&to=\(at(until))&by=cgroup&per_interval=1", ["--from", at(from), "--until", at(until), "--by", "cgroup", "--per-interval"])] {
            let http = try Curl.get("http://\(address)/api/v1/history?\(parameters)")
            let command = try Binary.run(["history", "--file", file, "--json"] + options)
            #expect(http.status == 200 && command.status == 0 && http.body == command.out && !http.body.isEmpty, "\(parameters): \(http.body) \(command.out)")
        }
        // /metrics counts what it wrote, and nothing lost.
        let scrape = try Curl.get("http://\(address)/metrics")
        let line = scrape.body.split(separator: "\n").first { $0.hasPrefix("netacct_history_intervals_total{outcome=\"written\"} ") }
        let recorded = try #require(written["intervals"] as? Int)
        #expect(line.flatMap { UInt64($0.split(separator: " ").last ?? "") }.map { $0 >= UInt64(recorded) } == true, "\(scrape.body.suffix(800))")
        for lost in ["dropped", "failed", "dropped_for_size"] {
            #expect(scrape.body.contains("netacct_history_intervals_total{outcome=\"\(lost)\"} 0\n"), "\(lost)")
        }
        try MetricsTests.expectPromtoolPasses(scrape.body)
        for (parameters, status, said) in [("at=25:00", 400, "is not a time"), ("since=1h&by=thread", 400, "by is process or cgroup"),
                                           ("at=@1000000000", 404, "Nothing recorded at")] {
            let refused = try Curl.get("http://\(address)/api/v1/history?\(parameters)")
            #expect(refused.status == status && refused.body.contains(said), "\(parameters): \(refused.status) \(refused.body)")
        }
        _ = daemon.stopExpectingSuccess()

        // The file and its directory are the owner's only.
        var info = stat()
        #expect(stat(file, &info) == 0 && info.st_mode & 0o777 == 0o600, "the file is 0600")
        #expect(stat(directory.path + "/state", &info) == 0 && info.st_mode & 0o777 == 0o700, "its directory is 0700")

        let whole = try #require(try Self.history(file, ["--since", "5m"]).first)
        #expect(whole["resolution_s"] as? Int == 2 && (whole["intervals"] as? Int ?? 0) >= 3, "\(whole)")
        let a = Self.rows(whole, comm: "nacct-hist-a"), b = Self.rows(whole, comm: "nacct-hist-b")
        #expect(a.count == 1 && b.count == 2, "one row per process: \(a) \(b)")
        #expect(Self.number(a.first, "udp_tx_bytes") == 1500 && Self.number(a.first, "udp_tx_packets") == 5)
        #expect(b.compactMap { Self.number($0, "udp_tx_bytes") } == [210, 210] && b.allSatisfy { $0["exited"] as? Bool == true })

        // Interval by interval: the intervals' rows add up to the whole, and a burst 2.5 s after
        // another, with 2 s intervals, is in a later interval.
        let intervals = try Self.history(file, ["--since", "5m", "--per-interval"])
        #expect(intervals.count == whole["intervals"] as? Int)
        func sent(_ answers: [[String: Any]], _ comm: String) -> UInt64 {
            answers.flatMap { Self.rows($0, comm: comm) }.compactMap { Self.number($0, "udp_tx_bytes") }.reduce(0, +)
        }
        #expect(sent(intervals, "nacct-hist-a") == 1500 && sent(intervals, "nacct-hist-b") == 420)
        let lastA = try #require(intervals.last { !Self.rows($0, comm: "nacct-hist-a").isEmpty })
        let firstB = try #require(intervals.first { !Self.rows($0, comm: "nacct-hist-b").isEmpty })
        let bInterval = try #require(intervals.last { !Self.rows($0, comm: "nacct-hist-b").isEmpty })
        #expect(try #require(Self.number(lastA, "until_ns")) <= (try #require(Self.number(firstB, "from_ns"))), "A's intervals come before B's")

        // --at the middle of an interval with B's traffic: that interval, and only it.
        let startNs = try #require(Self.number(bInterval, "from_ns")), endNs = try #require(Self.number(bInterval, "until_ns"))
        let middle = (startNs + endNs) / 2
        let moment = "@\(middle / 1_000_000_000).\(String(format: "%09llu", middle % 1_000_000_000))"
        let at = try #require(try Self.history(file, ["--at", moment]).first)
        #expect(Self.number(at, "from_ns") == startNs && Self.number(at, "until_ns") == endNs && at["intervals"] as? Int == 1, "\(at)")
        #expect(sent([at], "nacct-hist-b") == sent([bInterval], "nacct-hist-b") && Self.rows(at, comm: "nacct-hist-a").isEmpty)

        // Per cgroup: the unit's row is the sum of its processes'.
        let byCgroup = try #require(try Self.history(file, ["--since", "5m", "--by", "cgroup"]).first)
        let unit = (byCgroup["rows"] as? [[String: Any]] ?? []).first { $0["cgroup"] as? String == cgroups.unit }
        #expect(Self.number(unit, "udp_tx_bytes") == 1920 && Self.number(unit, "udp_tx_packets") == 11, "\(byCgroup)")

        // The table says the span and the resolution, and marks the exited.
        let table = try Binary.run(["history", "--file", file, "--since", "5m"])
        #expect(table.status == 0 && table.out.contains("intervals of 2 s, by process") && table.out.contains("nacct-hist-b*"), "\(table.out)\(table.err)")
        // A time with nothing recorded: said, with what the file covers.
        let empty = try Binary.run(["history", "--file", file, "--at", "@1000000000"])
        #expect(empty.status == 1 && empty.err.contains("Nothing recorded at") && empty.err.contains("it covers"), "\(empty.err)")
    }

    @Test func aFileThatIsNotAHistoryIsRefusedAndTheDaemonServesWithoutIt() throws {
        let directory = Directory()
        try FileManager.default.createDirectory(atPath: directory.path, withIntermediateDirectories: true)
        let foreign = directory.path + "/foreign.db", garbage = directory.path + "/garbage.db"
        let made = try Binary.run(URL(fileURLWithPath: "/usr/bin/python3"), ["-c", "import sqlite3; c = sqlite3.connect('\(foreign)'); c.execute('CREATE TABLE t(x)'); c.commit()"])
        try #require(made.status == 0, "\(made.err)")
        try Data((0..<8192).map { UInt8(truncatingIfNeeded: $0 &* 7919) }).write(to: URL(fileURLWithPath: garbage))
        for (file, said) in [(foreign, "is not a netacct history: an SQLite database of another program"),
                             (garbage, "is not a netacct history: not an SQLite database, or a damaged one")] {
            let before = try Data(contentsOf: URL(fileURLWithPath: file))
            let read = try Binary.run(["history", "--file", file])
            #expect(read.status == 1 && read.err.contains(said), "\(read.err)")
            let daemon = try DaemonProcess(extra: ["--history", "--history-file", file, "--history-interval", "1"])
            try daemon.awaitLog("not recording history (counting and serving go on)")
            // It serves atop's and top's sockets all the same.
            let top = try Binary.run(["top", "--json", "--daemon-socket", daemon.api, "0.2", "1"])
            #expect(top.status == 0, "\(top.err)")
            let log = daemon.stopExpectingSuccess()
            #expect(log.contains(said), "\(log.suffix(2000))")
            #expect(try Data(contentsOf: URL(fileURLWithPath: file)) == before, "the file is left as it was")
        }
        let missing = try Binary.run(["history", "--file", directory.path + "/none.db"])
        #expect(missing.status == 1 && missing.err.contains("No history at \(directory.path)/none.db"), "\(missing.err)")
    }

    static func sh(_ command: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let result = try Binary.run(URL(fileURLWithPath: "/bin/sh"), ["-c", command])
        try #require(result.status == 0, "\(command): \(result.err)", sourceLocation: sourceLocation)
    }

    static func nowNs() -> UInt64 { UInt64(Date().timeIntervalSince1970 * 1e9) }

    /// kill -9 while it records: the file is whole, what was written stays, and at most the
    /// interval under way (and one queued) is lost; a new daemon goes on in the same file.
    @Test func killedWithSIGKILLItLosesAtMostTheIntervalUnderWay() throws {
        let directory = Directory()
        let file = directory.path + "/history.db"
        let cgroups = try TestCgroups()
        let first = try Self.recording(file, every: "1")
        try MetricsTests.send(named: ["nacct-kill-a"], in: cgroups.root + cgroups.unit, count: 4, bytes: 100)
        usleep(2_500_000)
        let killed = Self.nowNs()
        kill(first.process.processIdentifier, SIGKILL)
        #expect(first.stop().status == 128 + SIGKILL)

        let check = try Binary.run(URL(fileURLWithPath: "/usr/bin/python3"), ["-c", "import sqlite3; print(sqlite3.connect('\(file)').execute('PRAGMA integrity_check').fetchone()[0])"])
        #expect(check.status == 0 && check.out == "ok\n", "\(check.out)\(check.err)")
        let after = try #require(try Self.history(file, ["--since", "5m"]).first)
        #expect(Self.rows(after, comm: "nacct-kill-a").compactMap { Self.number($0, "udp_tx_bytes") } == [400])
        let lastEnd = try #require(Self.number(after, "until_ns"))
        #expect(lastEnd + 2_000_000_000 >= killed, "at most the interval under way and one queued are lost: \(killed - lastEnd) ns")

        let second = try Self.recording(file, every: "1")
        try MetricsTests.send(named: ["nacct-kill-b"], in: cgroups.root + cgroups.unit, count: 2, bytes: 50)
        usleep(1_500_000)
        _ = second.stopExpectingSuccess()
        let both = try #require(try Self.history(file, ["--since", "5m"]).first)
        #expect(Self.rows(both, comm: "nacct-kill-a").compactMap { Self.number($0, "udp_tx_bytes") } == [400])
        #expect(Self.rows(both, comm: "nacct-kill-b").compactMap { Self.number($0, "udp_tx_bytes") } == [100])
    }

    /// A full file system: said once, counting and serving go on, and once there is room again
    /// it writes again. A read-only file system: said at start, and the daemon serves without
    /// a history.
    @Test func aFullDiskOrAReadOnlyFileSystemIsSaidAndTheDaemonGoesOn() throws {
        let directory = Directory()
        let mount = directory.path + "/small"
        try FileManager.default.createDirectory(atPath: mount, withIntermediateDirectories: true)
        try Self.sh("mount -t tmpfs -o size=1m,mode=0700 tmpfs \(mount)")
        defer { _ = try? Binary.run(URL(fileURLWithPath: "/bin/umount"), ["-l", mount]) }
        let file = mount + "/history.db"
        let cgroups = try TestCgroups()
        let daemon = try Self.recording(file, every: "0.5")
        usleep(1_000_000)
        // Fill what is left, then count: the intervals cannot be written.
        _ = try Binary.run(URL(fileURLWithPath: "/bin/dd"), ["if=/dev/zero", "of=\(mount)/filler", "bs=4096"])
        try MetricsTests.send(named: ["nacct-full"], in: cgroups.root + cgroups.unit, count: 3, bytes: 100)
        try daemon.awaitLog("history: cannot write an interval to \(file)")
        usleep(1_500_000)
        let top = try Binary.run(["top", "--json", "--daemon-socket", daemon.api, "0.2", "1"])
        #expect(top.status == 0, "it serves while the disk is full: \(top.err)")
        try FileManager.default.removeItem(atPath: mount + "/filler")
        try daemon.awaitLog("history: writing again to \(file)")
        try MetricsTests.send(named: ["nacct-room"], in: cgroups.root + cgroups.unit, count: 2, bytes: 100)
        usleep(1_500_000)
        let log = daemon.stopExpectingSuccess()
        #expect(log.components(separatedBy: "history: cannot write an interval").count - 1 == 1, "said once: \(log.suffix(3000))")
        #expect(log.contains("database or disk is full"), "\(log.suffix(3000))")
        let read = try #require(try Self.history(file, ["--since", "5m"]).first)
        #expect(Self.rows(read, comm: "nacct-room").compactMap { Self.number($0, "udp_tx_bytes") } == [200], "recorded once there was room")

        // A read-only file system: no history, said, and everything else served; the history
        // there is still read.
        try Self.sh("mount -o remount,ro \(mount)")
        for path in [file, mount + "/new.db"] {
            let again = try DaemonProcess(extra: ["--history", "--history-file", path, "--history-interval", "1"])
            try again.awaitLog("not recording history (counting and serving go on)")
            let served = try Binary.run(["top", "--json", "--daemon-socket", again.api, "0.2", "1"])
            #expect(served.status == 0, "\(served.err)")
            let said = again.stopExpectingSuccess()
            #expect(said.contains("Cannot record the history in \(path): its file system is read-only"), "\(said.suffix(2000))")
        }
        #expect(Self.rows(try #require(try Self.history(file, ["--since", "5m"]).first), comm: "nacct-room").count == 1)
    }

    /// With --nic, each queue's frames and bytes per interval, as the interface's own kernel
    /// counters count them (a container's interface, its namespace and container labels); with
    /// --wire, its interface counters, the same.
    @Test func theInterfacesAreRecordedAsTheKernelCountsThem() throws {
        let directory = Directory()
        let file = directory.path + "/history.db"
        let host = try ContainerHost(spokes: 1)
        let spoke = try #require(host.spokes[1])
        let before = try AllNamespacesTests.kernel(host, 1)
        // The namespace is there before the daemon: counted from its start.
        let daemon = try Self.recording(file, every: "1", extra: ["--nic", "-A", "--wire", "--tcp"])
        try host.sendTCP(to: 1, 5)
        usleep(1_500_000)
        _ = daemon.stopExpectingSuccess()
        let delta = try AllNamespacesTests.kernel(host, 1) - before
        let answer = try #require(try Self.history(file, ["--since", "5m", "--by", "interface"]).first)
        let namespace = "netns=\"\(spoke.namespace)\",\(spoke.workload.kind.rawValue)=\"\(spoke.workload.name)\""
        let rows = (answer["rows"] as? [[String: Any]] ?? []).filter { ($0["labels"] as? String ?? "").contains(namespace) && $0["source"] as? String == "nic" }
        func sum(_ direction: String, _ name: String) -> UInt64 {
            rows.filter { ($0["labels"] as? String ?? "").contains("interface=\"eth0\"") && ($0["labels"] as? String ?? "").contains("direction=\"\(direction)\"") }
                .compactMap { Self.number($0, name) }.reduce(0, +)
        }
        #expect(delta.rxPackets > 0 && sum("rx", "frames") == delta.rxPackets && sum("rx", "bytes") == delta.rxBytes, "\(rows) \(delta)")
        #expect(sum("tx", "frames") == delta.txPackets && sum("tx", "bytes") == delta.txBytes, "\(rows) \(delta)")
        // The wire's interface counters too (its labels name the namespace by inode), and
        // TCP health's totals, among the other collectors' series.
        let series = try #require(try Self.history(file, ["--since", "5m", "--by", "series"]).first)
        let wire = (series["rows"] as? [[String: Any]] ?? []).filter {
            $0["source"] as? String == "wire" && ($0["labels"] as? String ?? "").hasPrefix("netns=\"\(host.inode(spoke.namespace))\",interface=\"eth0\"")
        }
        func wireSum(_ direction: String, _ name: String) -> UInt64 {
            wire.filter { ($0["labels"] as? String ?? "").hasSuffix("direction=\"\(direction)\"") }.compactMap { Self.number($0, name) }.reduce(0, +)
        }
        #expect(wireSum("rx", "packets") == delta.rxPackets && wireSum("rx", "bytes") == delta.rxBytes, "\(wire) \(delta)")
        #expect(wireSum("tx", "packets") == delta.txPackets && wireSum("tx", "bytes") == delta.txBytes, "\(wire) \(delta)")
        let table = try Binary.run(["history", "--file", file, "--since", "5m", "--by", "interface"])
        #expect(table.status == 0 && table.out.contains("INTERFACE, QUEUE, DIRECTION") && table.out.contains(namespace), "\(table.out)\(table.err)")
    }
}
