import Foundation
import Glibc
import Testing

// What the suites of NetacctCLITests share: the binary and ways to run it, the daemon, the
// network namespaces, and small readers. Every run of netacct in a test checks how it ended: a
// tool that crashed, or refused, never passes for one that showed nothing.

/// Whether the tests run as root: most of them load BPF programs or make network namespaces.
let isRoot = geteuid() == 0

extension TopCommandTests {
    /// `isRoot`, by the name suites used before it came here (HTTPSlowClientTests still does).
    static var isRoot: Bool { NetacctCLITests.isRoot }
}

struct DaemonTestError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// How a process ended, as a shell says it: its exit status, or 128 + the signal that ended it
/// (so that a tool killed by SIGINT, 2, never passes for one that exited with status 2).
func shellStatus(_ process: Process) -> Int32 {
    process.terminationReason == .uncaughtSignal ? 128 + process.terminationStatus : process.terminationStatus
}

/// The `netacct` binary as a user runs it.
enum Binary {
    /// The test bundle sits in the build products directory, beside the executable.
    static let url: URL = {
        let executable = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        let candidates = [executable.deletingLastPathComponent(), Bundle.main.bundleURL,
                          Bundle.main.bundleURL.deletingLastPathComponent()]
        return candidates.map { $0.appendingPathComponent("netacct") }
            .first { FileManager.default.isExecutableFile(atPath: $0.path) } ?? candidates[0].appendingPathComponent("netacct")
    }()

    /// Runs netacct to completion; returns its exit status (128 + the signal, if one ended it),
    /// standard output and error.
    static func run(_ arguments: [String], prefix: [String] = []) throws -> (status: Int32, out: String, err: String) {
        prefix.isEmpty ? try run(url, arguments) : try run(URL(fileURLWithPath: "/usr/bin/env"), prefix + [url.path] + arguments)
    }

    /// Runs any program to completion the same way.
    static func run(_ executable: URL, _ arguments: [String]) throws -> (status: Int32, out: String, err: String) {
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        // Both at once: a command that fills one pipe (-v's libbpf log is over 64 KiB) while
        // the other is read to its end would wait forever.
        let error = PipeDrain(err.fileHandleForReading)
        let output = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (shellStatus(process), String(decoding: output, as: UTF8.self), String(decoding: error.wait(), as: UTF8.self))
    }
}

/// What a tool run that ended by itself (--count) or by SIGINT showed (`ToolRun.finish` and its
/// wrappers' results), once its exit status is found to be 0: any other, a crash or a refusal,
/// fails the test with the tool's standard error.
func successful<Output>(_ run: (Int32, Output, String), sourceLocation: SourceLocation = #_sourceLocation) -> (output: Output, err: String) {
    let (status, output, err) = run
    #expect(status == 0, "netacct exited with status \(status): \(err.suffix(4000))", sourceLocation: sourceLocation)
    return (output, err)
}

/// netacct running as a user runs it (optionally in a network namespace), with both of its
/// outputs read all the time on threads of their own (a tool blocked on a full pipe would show
/// less than it saw, or never end): standard output is handed out line by line as it comes,
/// standard error kept to be told. Whatever must come and does not (a line, a readiness message,
/// an exit status) fails the test with what the tool said on its standard error.
final class NetacctProcess {
    let process = Process()
    /// "netacct top", for messages.
    let name: String
    private let output = Stream(), errors = Stream()
    private let readers = DispatchGroup()
    /// Standard output when nobody reads it (it fills at 64 KiB): kept open to the end.
    private let unreadOutput: Pipe?

    /// One of the tool's outputs, read on a thread of its own until its end.
    private final class Stream: @unchecked Sendable {
        private let condition = NSCondition()
        private var bytes = Data()
        /// How much of `bytes` was handed out as lines.
        private var consumed = 0
        private var ended = false

        enum Next { case line(String), ended, timedOut }

        func read(_ handle: FileHandle) {
            while case let chunk = handle.availableData, !chunk.isEmpty {
                condition.withLock {
                    bytes.append(chunk)
                    condition.broadcast()
                }
            }
            condition.withLock {
                ended = true
                condition.broadcast()
            }
        }

        var text: String { condition.withLock { String(decoding: bytes, as: UTF8.self) } }

        /// The next line not handed out yet; at the end, what is left without a newline.
        func nextLine(before deadline: Date) -> Next {
            condition.withLock {
                while true {
                    let rest = bytes[consumed...]
                    if let newline = rest.firstIndex(of: 0x0A) {
                        consumed = newline + 1
                        return .line(String(decoding: rest[..<newline], as: UTF8.self))
                    }
                    if ended {
                        consumed = bytes.count
                        return rest.isEmpty ? .ended : .line(String(decoding: rest, as: UTF8.self))
                    }
                    if !condition.wait(until: deadline) { return .timedOut }
                }
            }
        }

        /// Waits until the text contains `marker`; false if the output ended or the deadline came first.
        func await(_ marker: String, before deadline: Date) -> Bool {
            condition.withLock {
                while true {
                    if String(decoding: bytes, as: UTF8.self).contains(marker) { return true }
                    if ended || !condition.wait(until: deadline) { return false }
                }
            }
        }
    }

    /// `readingOutput: false`: standard output is a pipe nobody reads. In `namespace` through
    /// `ip netns exec` (a /sys of the namespace's own, without the cgroup file system), or with
    /// `keepingMounts` through `nsenter --net` (the mounts it has).
    /// `prefix`: a command that runs it (`setpriv …`), as `Binary.run` has it.
    init(_ arguments: [String], namespace: String? = nil, keepingMounts: Bool = false, readingOutput: Bool = true,
         prefix: [String] = []) throws {
        name = "netacct " + (arguments.first ?? "")
        if !prefix.isEmpty {
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = prefix + [Binary.url.path] + arguments
        } else if let namespace, keepingMounts {
            process.executableURL = URL(fileURLWithPath: "/usr/bin/nsenter")
            process.arguments = ["--net=/run/netns/\(namespace)", Binary.url.path] + arguments
        } else if let namespace {
            process.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
            process.arguments = ["netns", "exec", namespace, Binary.url.path] + arguments
        } else {
            process.executableURL = Binary.url
            process.arguments = arguments
        }
        let out = Pipe(), err = Pipe()
        unreadOutput = readingOutput ? nil : out
        process.standardOutput = out
        process.standardError = err
        try process.run()
        for (pipe, stream) in readingOutput ? [(out, output), (err, errors)] : [(err, errors)] {
            let handle = pipe.fileHandleForReading
            readers.enter()
            Thread.detachNewThread { [readers] in
                stream.read(handle)
                readers.leave()
            }
        }
    }

    deinit {
        // Never kill(0, …): a process that never started has no PID, and 0 is this whole group.
        guard process.processIdentifier > 0 else { return }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }

    var pid: Int32 { process.processIdentifier }
    var isRunning: Bool { process.isRunning }
    /// Its standard output so far: all of it once `wait()` returned.
    var out: String { output.text }
    /// Its standard error so far: all of it once `wait()` returned.
    var err: String { errors.text }

    func signal(_ number: Int32) {
        if process.isRunning { kill(process.processIdentifier, number) }
    }

    /// Waits for it to end and for its outputs to be read; how it ended (`shellStatus`).
    @discardableResult
    func wait() -> Int32 {
        process.waitUntilExit()
        readers.wait()
        return shellStatus(process)
    }

    /// Waits up to `seconds` for it to end; whether it did.
    func waitForExit(within seconds: Double) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        return !process.isRunning
    }

    /// Sends `signal` (if it still runs) and waits for it to end; after `seconds`, SIGKILL (a
    /// tool that does not end on SIGINT or SIGTERM fails its test rather than hangs it).
    @discardableResult
    func end(with signal: Int32, within seconds: Double = 30) -> Int32 {
        self.signal(signal)
        if !waitForExit(within: seconds) { self.signal(SIGKILL) }
        return wait()
    }

    /// Waits for it to end and expects `expected` (0: it ended by itself, or by SIGINT or SIGTERM
    /// as it should); otherwise the test fails with its standard error. One still running after
    /// `seconds` fails the test too, and is killed.
    func expectExit(_ expected: Int32 = 0, within seconds: Double = 60, sourceLocation: SourceLocation = #_sourceLocation) {
        guard waitForExit(within: seconds) else {
            end(with: SIGKILL)
            Issue.record("\(name) was still running \(Int(seconds)) s later (killed): \(err.suffix(4000))", sourceLocation: sourceLocation)
            return
        }
        expect(wait(), expected, sourceLocation: sourceLocation)
    }

    /// Ends it with `signal` (`end(with:)`) and expects `expected`, as `expectExit` does.
    func stop(_ signal: Int32 = SIGINT, expecting expected: Int32 = 0, sourceLocation: SourceLocation = #_sourceLocation) {
        expect(end(with: signal), expected, sourceLocation: sourceLocation)
    }

    private func expect(_ status: Int32, _ expected: Int32, sourceLocation: SourceLocation) {
        #expect(status == expected, "\(name) exited with status \(status), not \(expected): \(err.suffix(4000))",
                sourceLocation: sourceLocation)
    }

    /// Kills it if it still runs, and says why the test cannot go on: `reason`, how it ended,
    /// and its standard error.
    func abandon(_ reason: String) -> DaemonTestError {
        // One whose output has just ended is given a moment to be seen ended.
        let running = !waitForExit(within: 1)
        if running { kill(process.processIdentifier, SIGKILL) }
        let status = wait()
        let how = running ? "still running: killed" : "exited with status \(status)"
        return DaemonTestError("\(name) \(reason) (\(how)): \(err.suffix(4000))")
    }

    /// Readiness: waits until its standard error says `marker` (with -v, that its programs are
    /// attached). Throws, with its standard error, if it ends or stays silent for `seconds` first.
    func awaitErr(_ marker: String, within seconds: Double = 60) throws {
        guard errors.await(marker, before: Date().addingTimeInterval(seconds)) else {
            throw abandon("never said '\(marker)'")
        }
    }

    /// The next line of its standard output, which must come (`what` it is, for the message):
    /// throws, with its standard error, if its output ends or `seconds` pass first.
    func line(_ what: String, within seconds: Double = 60) throws -> String {
        switch output.nextLine(before: Date().addingTimeInterval(seconds)) {
        case .line(let line): return line
        case .ended: throw abandon("ended its output before \(what)")
        case .timedOut: throw abandon("showed no \(what) in \(Int(seconds)) s")
        }
    }

    /// The next line of its standard output; nil at its end. `seconds` without a line fail the
    /// test (with its standard error) and give nil too.
    func nextLine(within seconds: Double = 60, sourceLocation: SourceLocation = #_sourceLocation) -> String? {
        switch output.nextLine(before: Date().addingTimeInterval(seconds)) {
        case .line(let line): return line
        case .ended: return nil
        case .timedOut:
            Issue.record("\(name) showed no line in \(Int(seconds)) s: \(err.suffix(4000))", sourceLocation: sourceLocation)
            return nil
        }
    }
}

/// `netacct daemon` on private socket paths, stopped with SIGTERM at the end. It is ready once
/// both of its sockets exist; one that ends first, or has not made them within 60 s, fails the
/// test with what it logged. (Loading and verifying every collector's programs while the whole
/// suite runs on two cores took over 10 s once: the bound is for a daemon that hangs, not a
/// measure of its start.) However a test ends, the daemon's end is checked: `stop()` gives its
/// status to check, `stopExpectingSuccess()` checks it (a test's end, or its `defer`), and one
/// nobody stopped is stopped and checked when the test lets it go.
final class DaemonProcess {
    let directory: String
    let socket: String
    let api: String
    private let daemon: NetacctProcess
    /// How the first stop found it and how it ended.
    private var stopped: (status: Int32, log: String, wasRunning: Bool)?
    private let sourceLocation: SourceLocation

    var process: Process { daemon.process }

    /// `namespace`: run it in that network namespace (`NetacctProcess`'s `keepingMounts` too).
    /// `prefix`: a command that runs it (`setpriv …`), as `NetacctProcess` has it.
    init(extra: [String] = [], namespace: String? = nil, keepingMounts: Bool = false, prefix: [String] = [],
         sourceLocation: SourceLocation = #_sourceLocation) throws {
        self.sourceLocation = sourceLocation
        directory = NSTemporaryDirectory() + "netacct-test-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        socket = directory + "/netatop.sock"
        api = directory + "/api.sock"
        do {
            daemon = try NetacctProcess(["daemon", "--socket", socket, "--api-socket", api] + extra, namespace: namespace, keepingMounts: keepingMounts,
                                        prefix: prefix)
        } catch {
            try? FileManager.default.removeItem(atPath: directory)
            throw error
        }
        let deadline = Date().addingTimeInterval(60)
        while !(FileManager.default.fileExists(atPath: api) && FileManager.default.fileExists(atPath: socket)) {
            guard daemon.isRunning && Date() < deadline else {
                let error = daemon.abandon("did not start: no \(FileManager.default.fileExists(atPath: api) ? socket : api)")
                stopped = (shellStatus(process), daemon.err, false)
                throw error
            }
            usleep(20_000)
        }
    }

    /// Waits until it has logged `marker` (with -v, its debug messages too).
    func awaitLog(_ marker: String, within seconds: Double = 30) throws {
        try daemon.awaitErr(marker, within: seconds)
    }

    /// Stops it with SIGTERM (SIGKILL if it has not ended 30 s later); returns its exit status
    /// (128 + the signal, if one ended it) and what it logged. Once: later calls give what the
    /// first one found.
    func stop() -> (status: Int32, log: String) {
        if stopped == nil {
            let wasRunning = daemon.isRunning
            let status = daemon.end(with: SIGTERM)
            stopped = (status, daemon.err, wasRunning)
        }
        return (stopped!.status, stopped!.log)
    }

    /// Stops it with SIGTERM and expects what that gives: status 0, from a daemon that ran until
    /// then; otherwise the test fails with its log. Returns the log. Only the call that stops it
    /// checks (a `defer` after the test's own is a safety net that adds nothing).
    @discardableResult
    func stopExpectingSuccess(sourceLocation: SourceLocation = #_sourceLocation) -> String {
        let first = stopped == nil
        let log = stop().log
        if first { Self.expectStopped(stopped!, sourceLocation: sourceLocation) }
        return log
    }

    private static func expectStopped(_ stopped: (status: Int32, log: String, wasRunning: Bool), sourceLocation: SourceLocation) {
        #expect(stopped.wasRunning && stopped.status == 0,
                "the daemon \(stopped.wasRunning ? "exited with status \(stopped.status) on SIGTERM" : "had ended by itself, with status \(stopped.status)"): \(stopped.log.suffix(4000))",
                sourceLocation: sourceLocation)
    }

    /// Kills it with SIGKILL, as a crash would: its sockets stay behind.
    func kill() {
        if stopped == nil {
            let wasRunning = daemon.isRunning
            daemon.signal(SIGKILL)
            stopped = (daemon.wait(), daemon.err, wasRunning)
        }
    }

    deinit {
        // The test let it go without stopping it (it threw, or forgot): stopped and checked here.
        if stopped == nil {
            _ = stop()
            Self.expectStopped(stopped!, sourceLocation: sourceLocation)
        }
        try? FileManager.default.removeItem(atPath: directory)
    }
}

/// Reads a pipe to its end on a thread of its own.
final class PipeDrain: @unchecked Sendable {
    private var data = Data()
    private let done = DispatchSemaphore(value: 0)

    init(_ handle: FileHandle) {
        Thread.detachNewThread { [self] in
            data = handle.readDataToEndOfFile()
            done.signal()
        }
    }

    func wait() -> Data {
        done.wait()
        return data
    }
}

/// Reads lines from a pipe as they come.
final class LineReader {
    let handle: FileHandle
    var buffer = Data()
    init(_ handle: FileHandle) { self.handle = handle }

    func next() -> String? {
        while true {
            if let newline = buffer.firstIndex(of: 0x0A) {
                let line = String(decoding: buffer[buffer.startIndex..<newline], as: UTF8.self)
                buffer = Data(buffer[(newline + 1)...])
                return line
            }
            let chunk = handle.availableData
            if chunk.isEmpty { return nil }
            buffer.append(chunk)
        }
    }
}

extension Dictionary where Key == String, Value == Any {
    func int(_ key: String) -> Int? { self[key] as? Int }
    func string(_ key: String) -> String? { self[key] as? String }
    func isNull(_ key: String) -> Bool { self[key] is NSNull }
}

/// Two network namespaces this test makes, joined by a veth pair with 4 TX and 4 RX queues on
/// each end, quiet (no IPv6, no ARP: static neighbours), with XPS sending CPU 0's frames to
/// tx-0 and CPU 1's to tx-1. Deleted at the end.
final class VethPair {
    let sender: String, receiver: String
    static let senderAddress = "10.199.0.1", receiverAddress = "10.199.0.2"

    /// Pairs made so far by this process: suites run at once, and each pair has its own names.
    nonisolated(unsafe) static var made = 0
    static let lock = NSLock()

    init() throws {
        let serial = Self.lock.withLock {
            Self.made += 1
            return Self.made
        }
        let tag = "\(getpid() % 100_000)-\(serial)"
        sender = "nacct-a\(tag)"
        receiver = "nacct-b\(tag)"
        try Self.sh("""
            ip netns add \(sender); ip netns add \(receiver)
            ip link add va netns \(sender) numtxqueues 4 numrxqueues 4 type veth peer vb netns \(receiver) numtxqueues 4 numrxqueues 4
            for ns in \(sender) \(receiver); do ip netns exec $ns sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1; done
            ip netns exec \(sender) sysctl -qw net.ipv6.conf.va.disable_ipv6=1
            ip netns exec \(receiver) sysctl -qw net.ipv6.conf.vb.disable_ipv6=1
            ip -n \(sender) addr add \(Self.senderAddress)/24 dev va
            ip -n \(receiver) addr add \(Self.receiverAddress)/24 dev vb
            ip -n \(sender) link set va arp off; ip -n \(receiver) link set vb arp off
            ip -n \(sender) neigh add \(Self.receiverAddress) lladdr $(ip netns exec \(receiver) cat /sys/class/net/vb/address) dev va nud permanent
            ip -n \(receiver) neigh add \(Self.senderAddress) lladdr $(ip netns exec \(sender) cat /sys/class/net/va/address) dev vb nud permanent
            ip -n \(sender) link set va up; ip -n \(receiver) link set vb up
            ip netns exec \(sender) sh -c 'q=/sys/class/net/va/queues; echo 1 > $q/tx-0/xps_cpus; echo 2 > $q/tx-1/xps_cpus; echo 0 > $q/tx-2/xps_cpus; echo 0 > $q/tx-3/xps_cpus'
            """)
        try listen()
    }

    deinit {
        // SIGTERM may be blocked in what the test runner starts. Never kill(0, …): a listener
        // that never started has no PID, and 0 is this whole process group.
        if listener.processIdentifier > 0 {
            kill(listener.processIdentifier, SIGKILL)
            listener.waitUntilExit()
        }
        _ = try? Self.sh("ip netns del \(sender); ip netns del \(receiver)")
    }

    /// A socket on the receiver's port 9999, so that no ICMP "port unreachable" comes back.
    let listener = Process()

    private func listen() throws {
        listener.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
        listener.arguments = ["netns", "exec", receiver, "/usr/bin/python3", "-c", """
            import socket, sys, time
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind(("\(Self.receiverAddress)", 9999))
            print("bound", flush=True)
            time.sleep(120)
            """]
        let out = Pipe()
        listener.standardOutput = out
        try listener.run()
        _ = LineReader(out.fileHandleForReading).next()
    }

    /// Sends `count` UDP datagrams of `bytes` bytes to the receiver's port 9999 from CPU `cpu`.
    func send(_ count: Int, bytes: Int, cpu: Int) throws {
        try Self.sh("""
            ip netns exec \(sender) taskset -c \(cpu) /usr/bin/python3 -c "
            import socket
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            for _ in range(\(count)): s.sendto(b'y' * \(bytes), ('\(Self.receiverAddress)', 9999))"
            """)
    }

    /// A device statistic (`tx_packets`, `rx_bytes`, …) of va (in the sender) or vb.
    func statistic(_ name: String, onReceiver: Bool) throws -> Int {
        let (namespace, device) = onReceiver ? (receiver, "vb") : (sender, "va")
        return Int(try Self.sh("ip netns exec \(namespace) cat /sys/class/net/\(device)/statistics/\(name)")
            .trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1
    }

    @discardableResult
    static func sh(_ script: String) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-ec", script]
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let output = out.fileHandleForReading.readDataToEndOfFile()
        let error = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw DaemonTestError("sh failed (\(process.terminationStatus)): \(String(decoding: error, as: UTF8.self))")
        }
        return String(decoding: output, as: UTF8.self)
    }
}
