import Foundation
import Glibc
import NetacctKit
import Testing

/// Cgroups the test makes under the cgroup2 mount (found in /proc/self/mountinfo: on this
/// machine a hybrid layout puts it at /sys/fs/cgroup/unified): a parent of its own, and below it
/// one named like a systemd unit and one like a docker container. Processes are put in them by
/// writing their PID to `cgroup.procs`.
final class TestCgroups {
    let root: String
    let parent: String
    let unit: String, container: String
    static let containerID = String(repeating: "c0ffee", count: 11).prefix(64)

    init() throws {
        root = try #require(CgroupNames().root, "a cgroup2 file system is mounted")
        // Of its own: suites run at once, each with its cgroups.
        parent = "/netacct-test-\(getpid())-\(UUID().uuidString.prefix(6))"
        unit = parent + "/web.service"
        container = parent + "/docker-\(Self.containerID).scope"
        for path in [parent, unit, container] {
            try #require(mkdir(root + path, 0o755) == 0 || errno == EEXIST, "mkdir \(root + path)")
        }
    }

    /// `netacct top … --no-daemon --cgroup <parent>`, its output read line by line.
    func top(_ arguments: [String]) throws -> NetacctProcess {
        try NetacctProcess(["top"] + arguments + ["--no-daemon", "--cgroup", parent])
    }

    /// A process in the cgroup at `path` that, on a line on its standard input, sends `count`
    /// UDP datagrams of `bytes` bytes to a port nobody listens on, then exits.
    func sender(in path: String, count: Int, bytes: Int) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", """
            echo $$ > \(root + path)/cgroup.procs && exec /usr/bin/python3 -c "
            import socket, sys
            sys.stdin.readline()
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            for _ in range(\(count)): s.sendto(b'g' * \(bytes), ('127.0.0.1', 9))"
            """]
        process.standardInput = Pipe()
        try process.run()
        return process
    }

    deinit {
        for path in [unit, container, parent] { rmdir(root + path) }
    }
}

@Suite(.serialized, .enabled(if: isRoot, "loads BPF programs and makes cgroups: needs root"))
struct TopCgroupTests {
    @Test func byCgroupSumsItsProcessesAndNamesTheUnitAndTheContainer() throws {
        let cgroups = try TestCgroups()
        let senders = [try cgroups.sender(in: cgroups.unit, count: 7, bytes: 100),
                       try cgroups.sender(in: cgroups.container, count: 5, bytes: 30),
                       try cgroups.sender(in: cgroups.container, count: 4, bytes: 50)]
        defer { for sender in senders where sender.isRunning { kill(sender.processIdentifier, SIGKILL) } }
        let top = try cgroups.top(["0.3", "--by", "cgroup", "--json"])
        // The first line means the programs are attached: only then send.
        #expect(try top.line("its first interval").contains("\"cgroups\":[]"))
        for sender in senders {
            (sender.standardInput as? Pipe)?.fileHandleForWriting.write(Data("go\n".utf8))
            sender.waitUntilExit()
        }
        var rows: [[String: Any]] = []
        for _ in 0..<4 {
            guard let line = top.nextLine() else { break }
            let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            #expect(Set(object.keys) == ["time", "interval_s", "cgroups"])
            rows += object["cgroups"] as? [[String: Any]] ?? []
        }
        top.stop(SIGINT)
        func total(_ path: String, _ key: String) -> Int {
            rows.filter { $0.string("cgroup") == path }.reduce(0) { $0 + ($1[key] as? Int ?? 0) }
        }
        #expect(Set(rows.compactMap { $0.string("cgroup") }) == [cgroups.unit, cgroups.container], "only the cgroups below --cgroup")
        #expect(total(cgroups.unit, "udp_tx_packets") == 7 && total(cgroups.unit, "udp_tx_bytes") == 700)
        #expect(total(cgroups.container, "udp_tx_packets") == 9 && total(cgroups.container, "udp_tx_bytes") == 5 * 30 + 4 * 50)
        #expect(total(cgroups.unit, "tcp_tx_packets") == 0 && total(cgroups.container, "udp_rx_packets") == 0)
        let unit = try #require(rows.first { $0.string("cgroup") == cgroups.unit })
        #expect(unit.string("name") == "web.service" && unit.string("kind") == "unit")
        let container = try #require(rows.first { $0.string("cgroup") == cgroups.container })
        #expect(container.string("name") == String(TestCgroups.containerID.prefix(12)) && container.string("kind") == "container")
        #expect(rows.filter { $0.string("cgroup") == cgroups.container }.reduce(0) { $0 + ($1.int("processes") ?? 0) } >= 2,
                "both of its processes")
    }

    @Test func theTableHasACgroupRowWithItsKind() throws {
        let cgroups = try TestCgroups()
        let sender = try cgroups.sender(in: cgroups.unit, count: 3, bytes: 10)
        defer { if sender.isRunning { kill(sender.processIdentifier, SIGKILL) } }
        let top = try cgroups.top(["0.3", "-C", "--by", "cgroup"])
        // Its first table means the programs are attached: only then send.
        while try !top.line("its first table's header").hasPrefix("CGROUP") {}
        (sender.standardInput as? Pipe)?.fileHandleForWriting.write(Data("go\n".utf8))
        sender.waitUntilExit()
        var row: [String]?
        for _ in 0..<20 {
            guard let line = top.nextLine() else { break }
            let columns = line.split(separator: " ").map(String.init)
            if columns.first == "web.service" { row = columns; break }
        }
        top.stop(SIGINT)
        let columns = try #require(row)
        #expect(columns[1] == "unit" && columns[2] == "1")
        #expect(columns[9] == "3" && columns[10] == "30B", "UDP-TXP 3, UDP-TX 30B: \(columns)")
    }

    @Test func threadsDoNotGoWithByCgroup() throws {
        let result = try Binary.run(["top", "--by", "cgroup", "--threads"])
        #expect(result.status == 2 && result.err.contains("--by cgroup"))
    }
}
