import Foundation
import Glibc
import NetacctServers
import Testing

/// netacct run as a user runs it, in a directory of its own, and stopped if it has not ended
/// within `timeout` seconds (a value the command should have refused may start it for good:
/// then it is interrupted, and `timedOut` says so).
private struct CommandRun {
    var status: Int32
    var out: String
    var err: String
    var timedOut: Bool

    init(_ arguments: [String], in directory: String? = nil, timeout: Double = 10) throws {
        let process = Process()
        process.executableURL = Binary.url
        process.arguments = arguments
        if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let output = PipeDrain(out.fileHandleForReading), error = PipeDrain(err.fileHandleForReading)
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(10_000) }
        timedOut = process.isRunning
        if timedOut {
            kill(process.processIdentifier, SIGINT)
            let grace = Date().addingTimeInterval(3)
            while process.isRunning && Date() < grace { usleep(10_000) }
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        }
        process.waitUntilExit()
        // A signal (a trap is SIGILL) shows as 128 + its number, as a shell shows it.
        status = shellStatus(process)
        self.out = String(decoding: output.wait(), as: UTF8.self)
        self.err = String(decoding: error.wait(), as: UTF8.self)
    }

    /// Bad usage, as every command says it: exit status 2, nothing on standard output, and on
    /// standard error one line that says what is wrong (containing `message`), followed by
    /// nothing but ArgumentParser's usage lines.
    func expectUsageError(_ message: String, _ arguments: [String], sourceLocation: SourceLocation = #_sourceLocation) {
        let context = Comment(rawValue: "\(arguments): status \(status)\(timedOut ? " (still running, interrupted)" : ""), stderr: \(err)")
        #expect(status == 2, context, sourceLocation: sourceLocation)
        #expect(out.isEmpty, context, sourceLocation: sourceLocation)
        let lines = err.split(separator: "\n", omittingEmptySubsequences: false)
        let first = lines.first.map(String.init) ?? ""
        #expect(first.hasPrefix("Error: ") && first.contains(message), context, sourceLocation: sourceLocation)
        let usage = lines.dropFirst().allSatisfy { $0.isEmpty || $0.hasPrefix("Usage: ") || $0.hasPrefix("Help: ") || $0.hasPrefix("  See ") }
        #expect(usage, context, sourceLocation: sourceLocation)
        #expect(!err.contains("Fatal error") && !err.contains("crashed"), context, sourceLocation: sourceLocation)
    }
}

/// A directory of its own for a test, removed at the end.
private final class TemporaryDirectory {
    let path = NSTemporaryDirectory() + "netacct-cli-\(UUID().uuidString.prefix(8))"
    init() throws { try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true) }
    var contents: [String] { (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? [] }
    deinit { try? FileManager.default.removeItem(atPath: path) }
}

/// Every number a command takes, given out of its range (huge, negative, zero where that means
/// nothing, NaN, infinite, too small to time): refused before anything loads, with a line that
/// says what is wrong and exit status 2, never a trap (SIGILL, exit status 132). None of these
/// needs root: they are refused before netacct looks at the kernel.
@Suite(.serialized)
struct CommandLineValidationTests {
    static let seconds = "31536000 seconds (365 days)"

    static let commands: [([String], String)] = [
        // top: the interval, the count, -p.
        (["top", "1e19", "1"], "The interval must be at most \(seconds), not 1e+19."),
        (["top", "1e300", "1"], "The interval must be at most \(seconds), not 1e+300."),
        (["top", "inf", "1"], "The interval must be at most \(seconds), not inf."),
        (["top", "nan", "1"], "The interval must be a positive number of seconds, not nan."),
        (["top", "0", "1"], "The interval must be a positive number of seconds, not 0.0."),
        (["top", "1e-9", "1"], "The interval must be at least 0.001 seconds (a millisecond), not 1e-09."),
        (["top", "-1", "1"], "-1 is not an option, and intervals and counts must be positive."),
        (["top", "--", "-1", "1"], "The interval must be a positive number of seconds, not -1.0."),
        (["top", "1", "0"], "The count must be at least 1, not 0."),
        (["top", "1", "-3"], "-3 is not an option, and intervals and counts must be positive."),
        (["top", "1", "1e19"], "The value '1e19' is invalid for '<count>': the number is too large."),
        (["top", "1", "99999999999999999999"], "invalid for '<count>': the number is too large."),
        (["top", "1", "1.5"], "The value '1.5' is invalid for '<count>': a whole number is needed, in digits."),
        (["top", "1", "1", "-p", "-5"], "A process id must be positive, not -5."),
        (["top", "1", "1", "-p", "0"], "A process id must be positive, not 0."),
        (["top", "1", "1", "-p", "5000000"], "A process id must be at most 4194304 (the largest Linux gives), not 5000000."),
        (["top", "1", "1", "-p", "99999999999999999999"], "invalid for '-p <pid>': the number is too large."),
        // nic: the interval (positional or -i), the count.
        (["nic", "1e19", "1"], "The interval must be at most \(seconds), not 1e+19."),
        (["nic", "-i", "1e19", "1"], "The interval must be at most \(seconds), not 1e+19."),
        (["nic", "-i", "-1", "1"], "The interval must be a positive number of seconds, not -1.0."),
        (["nic", "inf", "1"], "The interval must be at most \(seconds), not inf."),
        (["nic", "nan", "1"], "The interval must be a positive number of seconds, not nan."),
        (["nic", "0", "1"], "The interval must be a positive number of seconds, not 0.0."),
        (["nic", "-2", "1"], "-2 is not an option, and intervals and counts must be positive."),
        (["nic", "1", "0"], "The count must be at least 1, not 0."),
        (["nic", "1", "1e19"], "invalid for '<count>': the number is too large."),
        // drops: the --summary interval, --count, -p.
        (["drops", "--summary", "1e19", "--count", "1"], "The interval must be at most \(seconds), not 1e+19."),
        (["drops", "--summary", "inf", "--count", "1"], "The interval must be at most \(seconds), not inf."),
        (["drops", "--summary", "nan", "--count", "1"], "The interval must be a positive number of seconds, not nan."),
        (["drops", "--summary", "-1", "--count", "1"], "-1 is not an option, and intervals and counts must be positive."),
        (["drops", "--count", "-1"], "--count must be at least 1, not -1."),
        (["drops", "--count", "1e19"], "invalid for '--count <n>': the number is too large."),
        (["drops", "-p", "-5", "--count", "1"], "A process id must be positive, not -5."),
        // latency: the --hist interval, --sample, the ports, --count, -p.
        (["latency", "in", "--hist", "1e19", "--count", "1"], "The interval must be at most \(seconds), not 1e+19."),
        (["latency", "out", "--hist", "inf", "--count", "1"], "The interval must be at most \(seconds), not inf."),
        (["latency", "in", "--hist", "0", "--count", "1"], "The interval must be a positive number of seconds, not 0.0."),
        (["latency", "in", "--sample", "-1", "--count", "1"], "--sample must be at least 1, not -1."),
        (["latency", "in", "--sample", "99999999999", "--count", "1"], "--sample must be at most 4294967295, not 99999999999."),
        (["latency", "in", "--sport", "70000", "--count", "1"], "--sport must be a port from 1 to 65535, not 70000."),
        (["latency", "out", "--dport", "-1", "--count", "1"], "--dport must be a port from 1 to 65535, not -1."),
        (["latency", "in", "--count", "-1"], "--count must be at least 1, not -1."),
        (["latency", "in", "-p", "-5", "--count", "1"], "A process id must be positive, not -5."),
        // connections: --count, -p.
        (["connections", "--count", "-1"], "--count must be at least 1, not -1."),
        (["connections", "--count", "1e19"], "invalid for '--count <n>': the number is too large."),
        (["connections", "-p", "-5", "--count", "1"], "A process id must be positive, not -5."),
        (["connections", "-p", "5000000", "--count", "1"], "A process id must be at most 4194304 (the largest Linux gives), not 5000000."),
    ]

    @Test(arguments: commands)
    func anOutOfRangeNumberIsOneClearLineAndStatus2(_ arguments: [String], _ message: String) throws {
        let run = try CommandRun(arguments, timeout: 5)
        run.expectUsageError(message, arguments)
    }

    static let daemon: [([String], String)] = [
        (["--idle-timeout", "1e300"], "--idle-timeout must be at most \(seconds), not 1e+300."),
        (["--idle-timeout", "inf"], "--idle-timeout must be at most \(seconds), not inf."),
        (["--idle-timeout", "nan"], "--idle-timeout must be a positive number of seconds, not nan."),
        (["--idle-timeout", "0"], "--idle-timeout must be a positive number of seconds, not 0.0."),
        (["--idle-timeout", "-1"], "--idle-timeout must be a positive number of seconds, not -1.0."),
        (["--idle-timeout", "0.0001"], "--idle-timeout must be at least 0.001 seconds (a millisecond), not 0.0001."),
        (["--retention", "1e300"], "--retention must be at most \(seconds), not 1e+300."),
        (["--retention", "-5"], "--retention must be a positive number of seconds, not -5.0."),
        (["--max-exited", "0"], "--max-exited must be at least 1, not 0."),
        (["--max-exited", "-1"], "--max-exited must be at least 1, not -1."),
        (["--max-exited", "1e19"], "invalid for '--max-exited <count>': the number is too large."),
        (["--max-clients", "0"], "--max-clients must be at least 1, not 0."),
        (["--max-clients", "-1"], "--max-clients must be at least 1, not -1."),
        (["--metrics-top", "-1"], "--metrics-top must be at least 0, not -1."),
        (["--metrics-top", "1000000000000000000"], "--metrics-top must be at most 100000, not 1000000000000000000."),
    ]

    /// The daemon's numbers: its sockets in a directory of the test's, so that one the old
    /// code would start serves nothing anyone else uses.
    @Test(arguments: daemon)
    func anOutOfRangeDaemonNumberIsOneClearLineAndStatus2(_ extra: [String], _ message: String) throws {
        let directory = try TemporaryDirectory()
        let arguments = ["daemon", "--socket", directory.path + "/n.sock", "--api-socket", directory.path + "/a.sock"] + extra
        let run = try CommandRun(arguments, timeout: 5)
        run.expectUsageError(message, arguments)
        #expect(directory.contents.isEmpty, "nothing created: \(directory.contents)")
    }
}

/// Usage that cannot mean anything: refused as bad usage, before anything loads or is created.
@Suite(.serialized)
struct CommandLineRefusalTests {
    @Test func topRefusesMinus4WithMinus6AsConnectionsAndDropsDo() throws {
        for arguments in [["top", "-4", "-6", "--connections", "1", "1"], ["top", "-4", "-6", "--connections", "--json", "1", "1"]] {
            let run = try CommandRun(arguments, timeout: 5)
            run.expectUsageError("-4 and -6 exclude each other: give one of them, or neither for both.", arguments)
        }
    }

    @Test func aNegativePIDIsSaidToBeOne() throws {
        for command in [["top"], ["connections"], ["drops"], ["latency", "in"]] {
            let arguments = command + ["-p", "-5", "--json"]
            let run = try CommandRun(arguments, timeout: 5)
            run.expectUsageError("A process id must be positive, not -5.", arguments)
            #expect(!run.err.contains("Missing value"), "\(arguments): \(run.err)")
        }
    }

    /// A token file others may write could have its token replaced by anyone: refused as a
    /// readable one is, with the chmod that fixes both.
    @Test(arguments: [(0o602 as mode_t, "is writable by every user"), (0o666 as mode_t, "is readable and writable by every user"),
                      (0o644 as mode_t, "is readable by every user")])
    func aTokenFileOthersMayWriteIsRefused(_ mode: mode_t, _ message: String) throws {
        let directory = try TemporaryDirectory()
        let file = directory.path + "/token"
        try "s3cret-token\n".write(toFile: file, atomically: true, encoding: .utf8)
        #expect(chmod(file, mode) == 0)
        let arguments = ["daemon", "--socket", directory.path + "/n.sock", "--api-socket", directory.path + "/a.sock",
                         "--listen", "127.0.0.1:19498", "--metrics-token-file", file]
        let run = try CommandRun(arguments, timeout: 5)
        run.expectUsageError("The token file \(file) \(message): make it private (chmod o-rw \(file)) before using it.", arguments)
        #expect(directory.contents == ["token"], "nothing created: \(directory.contents)")
    }

    static let emptyPaths: [([String], String)] = [
        (["daemon", "--socket", ""], "--socket"),
        (["daemon", "--api-socket", ""], "--api-socket"),
        (["daemon", "--listen", "127.0.0.1:19498", "--metrics-token-file", ""], "--metrics-token-file"),
        (["top", "--daemon-socket", "", "1", "1"], "--daemon-socket"),
        (["top", "--cgroup", "", "1", "1"], "--cgroup"),
        (["connections", "--cgroup", "", "--count", "1"], "--cgroup"),
    ]

    /// An empty path is refused, naming its option, and nothing is created where netacct runs
    /// (an empty --socket made `.lock` there and said "chmod : No such file or directory").
    @Test(arguments: emptyPaths)
    func anEmptyPathIsRefusedAndNothingIsCreated(_ arguments: [String], _ option: String) throws {
        let directory = try TemporaryDirectory()
        var arguments = arguments
        if arguments[0] == "daemon" {
            // The other socket in the test's directory too (absolute: the daemon runs there).
            for (other, name) in [("--socket", "n.sock"), ("--api-socket", "a.sock")] where !arguments.contains(other) {
                arguments += [other, directory.path + "/" + name]
            }
        }
        let run = try CommandRun(arguments, in: directory.path, timeout: 5)
        run.expectUsageError("\(option) needs a path, not an empty string.", arguments)
        #expect(directory.contents.isEmpty, "nothing created in the current directory: \(directory.contents)")
    }

    @Test func aSocketPathTooLongIsRefusedNamingItsOption() throws {
        let directory = try TemporaryDirectory()
        let long = directory.path + "/" + String(repeating: "s", count: 120)
        for option in ["--socket", "--api-socket"] {
            let other = option == "--socket" ? "--api-socket" : "--socket"
            let arguments = ["daemon", option, long, other, directory.path + "/x.sock"]
            let run = try CommandRun(arguments, timeout: 5)
            run.expectUsageError("The socket path \(long) (\(option)) is too long: at most 107 bytes.", arguments)
        }
        #expect(directory.contents.isEmpty, "nothing created: \(directory.contents)")
    }
}

/// What the daemon says when its sockets cannot be had: the option that set the path or the
/// address, and the system's reason, without the library's internals. These load the
/// accounting programs first, as the daemon does before it claims its sockets.
@Suite(.serialized, .enabled(if: isRoot, "the daemon loads BPF programs first: needs root"))
struct DaemonSocketMessageTests {
    /// A TCP socket listening on loopback (no connection, no traffic); its port.
    final class Listener {
        let fd: Int32
        let port: Int
        init() throws {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            self.fd = fd
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            let bound = withUnsafeMutablePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                    bind(fd, pointer, length) == 0 && listen(fd, 1) == 0 && getsockname(fd, pointer, &length) == 0
                }
            }
            try #require(bound)
            port = Int(UInt16(bigEndian: address.sin_port))
        }
        deinit { close(fd) }
    }

    @Test func aListenAddressInUseIsSaidPlainly() throws {
        let listener = try Listener()
        let directory = try TemporaryDirectory()
        let arguments = ["daemon", "--socket", directory.path + "/n.sock", "--api-socket", directory.path + "/a.sock",
                         "--listen", "127.0.0.1:\(listener.port)"]
        let run = try CommandRun(arguments, timeout: 20)
        #expect(run.status == 1, "\(run.err)")
        #expect(run.err.contains("netacct: Cannot listen on 127.0.0.1:\(listener.port) (--listen): Address already in use.\n"), "\(run.err)")
        #expect(!run.err.contains("descriptor") && !run.err.contains("errno"), "no library internals: \(run.err)")
        withExtendedLifetime(listener) {}
    }

    /// Each of the daemon's two paths in each trouble: the message tells the user to change
    /// the option that set that path, not the other one.
    @Test(arguments: ["--socket", "--api-socket"])
    func aSocketPathsTroubleNamesItsOwnOption(_ option: String) throws {
        let directory = try TemporaryDirectory()
        let other = option == "--socket" ? "--api-socket" : "--socket"
        func daemon(_ path: String) throws -> CommandRun {
            try CommandRun(["daemon", option, path, other, directory.path + "/other.sock"], timeout: 20)
        }

        // A file that is not a socket.
        let file = directory.path + "/file"
        try "not a socket".write(toFile: file, atomically: true, encoding: .utf8)
        let notSocket = try daemon(file)
        #expect(notSocket.status == 1, "\(notSocket.err)")
        #expect(notSocket.err.contains("\(file) exists and is not a socket; netacct will not delete it. Remove it or choose another path with \(option).\n"), "\(notSocket.err)")

        // A path whose lock another daemon holds.
        let held = directory.path + "/held.sock"
        let lock = open(SocketPath.lockPath(for: held), O_RDWR | O_CREAT, 0o600)
        defer { close(lock) }
        #expect(flock(lock, LOCK_EX) == 0)
        let busy = try daemon(held)
        #expect(busy.status == 1, "\(busy.err)")
        #expect(busy.err.contains("Another netacct daemon holds \(held).lock: it is serving \(held) or starting to. Stop it first, or choose another path with \(option).\n"), "\(busy.err)")

        // A directory that does not exist.
        let missing = directory.path + "/no/such/dir.sock"
        let absent = try daemon(missing)
        #expect(absent.status == 1, "\(absent.err)")
        #expect(absent.err.contains("Cannot open the lock file \(missing).lock for \(missing) (\(option)): No such file or directory.\n"), "\(absent.err)")

        for run in [notSocket, busy, absent] { #expect(!run.err.contains(other), "names \(option), not \(other): \(run.err)") }
    }
}
