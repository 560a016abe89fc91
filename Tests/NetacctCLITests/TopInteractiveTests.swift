import Foundation
import Glibc
import Testing

/// `netacct top` on a terminal: a tmux session the test makes, driven with `send-keys` and read
/// with `capture-pane`, as a person would type and look.
final class TmuxScreen {
    let session = "netacct-test-\(getpid())-\(UUID().uuidString.prefix(6))"
    /// A tmux server of its own (`-L`): none of the user's sessions, and it goes with the screen.
    var server: String { session }

    /// Runs `command` in a detached session of `rows` × `columns`; when it ends, the pane says
    /// `EXIT <status>` and stays.
    init(_ command: String, rows: Int = 30, columns: Int = 160) throws {
        // This starts the server, which would keep any pipe it inherits open: nothing to read.
        try tmux(["new-session", "-d", "-s", session, "-x", "\(columns)", "-y", "\(rows)",
                  "sh -c '\(command); echo EXIT $?; sleep 30'"], output: false)
        try tmux(["set-option", "-t", session, "window-size", "manual"])
    }

    deinit { _ = try? tmux(["kill-server"], output: false) }

    /// Runs tmux with this screen's server. Without `output` it is spawned with /dev/null for
    /// its standard files and waited for with waitpid: the server a first command forks keeps
    /// what it inherits, which would hold Foundation's Process waiting (a first run with no tmux
    /// server yet never ended).
    @discardableResult
    func tmux(_ arguments: [String], output: Bool = true) throws -> String {
        let all = ["tmux", "-L", server] + arguments
        guard output else {
            var actions = posix_spawn_file_actions_t()
            posix_spawn_file_actions_init(&actions)
            defer { posix_spawn_file_actions_destroy(&actions) }
            for fd: Int32 in [0, 1, 2] { posix_spawn_file_actions_addopen(&actions, fd, "/dev/null", fd == 0 ? O_RDONLY : O_WRONLY, 0) }
            var argv: [UnsafeMutablePointer<CChar>?] = all.map { strdup($0) } + [nil]
            defer { for pointer in argv { free(pointer) } }
            // The test runner blocks signals its children inherit: the server and its panes get
            // none blocked, so that kill-server's hang-up ends them.
            var attributes = posix_spawnattr_t()
            posix_spawnattr_init(&attributes)
            defer { posix_spawnattr_destroy(&attributes) }
            var none = sigset_t()
            sigemptyset(&none)
            posix_spawnattr_setsigmask(&attributes, &none)
            posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK))
            var pid: pid_t = 0
            try #require(posix_spawn(&pid, "/usr/bin/tmux", &actions, &attributes, &argv, environ) == 0, "tmux started")
            var status: Int32 = 0
            while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
            return ""
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/tmux")
        process.arguments = Array(all.dropFirst())
        process.standardInput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        let out = Pipe()
        process.standardOutput = out
        try process.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return text
    }

    func keys(_ keys: String...) throws { try tmux(["send-keys", "-t", session] + keys, output: false) }
    func resize(rows: Int, columns: Int) throws {
        try tmux(["resize-window", "-t", session, "-x", "\(columns)", "-y", "\(rows)"], output: false)
    }
    var lines: [String] {
        ((try? tmux(["capture-pane", "-p", "-t", session])) ?? "").split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
    }

    /// Waits (up to 5 s) until a line on the screen satisfies `test`; returns the screen.
    func await(_ what: String, _ test: ([String]) -> Bool) throws -> [String] {
        let deadline = Date().addingTimeInterval(5)
        while Date() < deadline {
            let screen = lines
            if test(screen) { return screen }
            usleep(50_000)
        }
        Issue.record("the screen never showed \(what): \n\(lines.joined(separator: "\n"))")
        return lines
    }
}

/// Two processes with UDP traffic over loopback: one sends 1000-byte datagrams to the other,
/// which receives them, every 50 ms.
final class UDPPair {
    let receiver = Process(), sender = Process()
    /// The receiver's port.
    let port: String
    init() throws {
        receiver.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        receiver.arguments = ["-c", """
            import socket, sys
            r = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); r.bind(('127.0.0.1', 0))
            print(r.getsockname()[1], flush=True)
            while True: r.recv(2000)
            """]
        let out = Pipe()
        receiver.standardOutput = out
        try receiver.run()
        let port = try #require(LineReader(out.fileHandleForReading).next())
        self.port = port
        sender.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        sender.arguments = ["-c", """
            import socket, time
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            while True:
                s.sendto(b'u' * 1000, ('127.0.0.1', \(port)))
                time.sleep(0.05)
            """]
        try sender.run()
    }
    deinit {
        for process in [receiver, sender] where process.processIdentifier > 0 && process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }
}

@Suite(.serialized, .enabled(if: isRoot, "loads BPF programs: needs root"))
struct TopInteractiveTests {
    static func firstRow(_ screen: [String]) -> String? {
        guard let header = screen.firstIndex(where: { $0.contains("PID COMM") }), header + 1 < screen.count else { return nil }
        return screen[header + 1].split(separator: " ").first.map(String.init)
    }

    @Test func keysSortFilterGroupAndQuit() throws {
        let pair = try UDPPair()
        let (sender, receiver) = (String(pair.sender.processIdentifier), String(pair.receiver.processIdentifier))
        let screen = try TmuxScreen("\(Binary.url.path) top 0.3 --no-daemon -p \(sender) -p \(receiver)")
        _ = try screen.await("both processes") { lines in lines.contains { $0.hasPrefix("sort: total") } && lines.filter { $0.contains("python3") }.count == 2 }
        try screen.keys("t")
        var lines = try screen.await("the sender first when sorted by sent bytes") { $0.contains { $0.hasPrefix("sort: tx") } && Self.firstRow($0) == sender }
        #expect(Self.firstRow(lines) == sender)
        try screen.keys("r")
        lines = try screen.await("the receiver first when sorted by received bytes") { $0.contains { $0.hasPrefix("sort: rx") } && Self.firstRow($0) == receiver }
        #expect(Self.firstRow(lines) == receiver)
        try screen.keys("/", sender, "Enter")
        lines = try screen.await("only the sender once filtered by its PID") { lines in
            lines.contains { $0.contains("filter: \(sender)") } && lines.filter { $0.contains("python3") }.count == 1
        }
        #expect(Self.firstRow(lines) == sender)
        try screen.keys("/", "Enter", "g")
        lines = try screen.await("a row per cgroup") { $0.contains { $0.hasPrefix("CGROUP") && $0.contains("KIND") && $0.contains("PROCS") } }
        #expect(lines.contains { $0.hasPrefix("sort: rx  by: cgroup  filter: -") })
        try screen.keys("g", "h")
        lines = try screen.await("threads under their processes") { lines in lines.contains { $0.contains("threads: on") } && lines.contains { $0.contains("└") } }
        try screen.keys("c")
        lines = try screen.await("the connections of both") { lines in
            lines.contains { $0.contains("connections: on") } && lines.contains("IPv4 connections")
                && lines.contains { $0.hasPrefix(String(repeating: " ", count: 7 - sender.count) + sender) && $0.contains("udp") && $0.contains(" *") }
                && lines.contains { $0.hasPrefix(String(repeating: " ", count: 7 - receiver.count) + receiver) && $0.contains("udp") && $0.contains("127.0.0.1:\(pair.port)") }
        }
        try screen.keys("c")
        _ = try screen.await("no connections once toggled off") { lines in lines.contains { $0.contains("connections: off") } && !lines.contains("IPv4 connections") }
        try screen.keys("q")
        _ = try screen.await("netacct ended by q with status 0") { $0.contains("EXIT 0") }
    }

    @Test func theScreenFitsTheTerminalAndSaysHowManyMore() throws {
        let pair = try UDPPair()
        let screen = try TmuxScreen("\(Binary.url.path) top 0.3 --no-daemon -p \(pair.sender.processIdentifier) -p \(pair.receiver.processIdentifier)")
        _ = try screen.await("both processes") { $0.filter { $0.contains("python3") }.count == 2 }
        try screen.resize(rows: 5, columns: 100)
        let lines = try screen.await("+1 more on a 5-line terminal") { $0.contains("+1 more") }
        #expect(lines.filter { $0.contains("python3") }.count == 1, "the busiest row that fits")
        #expect(lines.allSatisfy { $0.count <= 100 }, "cut to the width")
        try screen.keys(" ")
        _ = try screen.await("paused") { $0.contains { $0.contains("PAUSED") } }
        try screen.keys("q")
        _ = try screen.await("netacct ended by q") { $0.contains("EXIT 0") }
    }

    @Test func pipedOutputStaysPlainText() throws {
        let result = try Binary.run(["top", "0.2", "1", "--no-daemon", "-p", "1"])
        #expect(result.status == 0)
        #expect(!result.out.contains("\u{1B}[?1049h") && !result.out.contains("[r t T sort"), "no interactive screen on a pipe")
    }
}
