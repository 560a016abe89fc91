import Foundation
import Glibc
import Testing

/// A netacct tool that prints JSON lines, run as a user runs it (optionally in a network
/// namespace): started with -v, it says on standard error when its programs are attached, and
/// only then does the test make traffic. It ends by itself (--count) or by SIGINT. Both of its
/// outputs are read all the time (a tool blocked on a full pipe would show less than it saw);
/// a tool that ends, or stays silent for a minute, before it is ready fails the test with what
/// it said.
final class ToolRun {
    let process = Process()
    private let out = Pipe(), err = Pipe()
    private let output = Collected(), errors = Collected()
    private let readers = DispatchGroup()
    private let tool: String

    /// What one of the tool's outputs has said so far, read on a thread of its own.
    private final class Collected: @unchecked Sendable {
        private let lock = NSLock()
        private var bytes = Data()
        private var readyAt: Int?
        let ready = DispatchSemaphore(value: 0)
        func append(_ chunk: Data, ready marker: String?) {
            lock.withLock {
                bytes.append(chunk)
                if let marker, readyAt == nil, let range = String(decoding: bytes, as: UTF8.self).range(of: marker) {
                    readyAt = String(decoding: bytes, as: UTF8.self)[..<range.upperBound].utf8.count
                    self.ready.signal()
                }
            }
        }
        var data: Data { lock.withLock { bytes } }
        var isReady: Bool { lock.withLock { readyAt != nil } }
        /// The text after the ready marker's line.
        var afterReady: String {
            lock.withLock {
                let text = String(decoding: bytes.dropFirst(readyAt ?? 0), as: UTF8.self)
                return text.split(separator: "\n", maxSplits: 1, omittingEmptySubsequences: false).dropFirst().joined()
            }
        }
    }

    init(_ tool: String, _ arguments: [String], namespace: String? = nil, ready: String) throws {
        self.tool = tool
        if let namespace {
            process.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
            process.arguments = ["netns", "exec", namespace, Binary.url.path, tool, "--json", "-v"] + arguments
        } else {
            process.executableURL = Binary.url
            process.arguments = [tool, "--json", "-v"] + arguments
        }
        process.standardOutput = out
        process.standardError = err
        try process.run()
        for (pipe, collected, marker) in [(out, output, nil), (err, errors, ready)] as [(Pipe, Collected, String?)] {
            let handle = pipe.fileHandleForReading
            readers.enter()
            Thread.detachNewThread { [readers] in
                while case let chunk = handle.availableData, !chunk.isEmpty { collected.append(chunk, ready: marker) }
                collected.ready.signal() // the end: nobody waits for a marker that can no longer come
                readers.leave()
            }
        }
        _ = errors.ready.wait(timeout: .now() + 60)
        guard errors.isReady else {
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            process.waitUntilExit()
            readers.wait()
            throw DaemonTestError("netacct \(tool) never said '\(ready)' (status \(process.terminationStatus)): \(String(decoding: errors.data, as: UTF8.self).suffix(4000))")
        }
    }

    /// Waits until its standard error has said `marker` (with -v, something it logs); throws
    /// if `seconds` pass first.
    func awaitErr(_ marker: String, within seconds: Double = 30) throws {
        let deadline = Date().addingTimeInterval(seconds)
        while !String(decoding: errors.data, as: UTF8.self).contains(marker) {
            guard Date() < deadline else { throw DaemonTestError("netacct \(tool) never said '\(marker)'") }
            usleep(20_000)
        }
    }

    /// Waits for it to end by itself or, after `timeout` seconds, interrupts it (SIGINT: it shows
    /// what the kernel sent before, then its summary). Its status, its JSON objects, and the
    /// rest of its standard error.
    func finish(timeout: Double) throws -> (status: Int32, objects: [[String: Any]], err: String) {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        if process.isRunning { kill(process.processIdentifier, SIGINT) }
        process.waitUntilExit()
        readers.wait()
        let objects = try String(decoding: output.data, as: UTF8.self).split(separator: "\n").map { line in
            try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        }
        return (process.terminationStatus, objects, errors.afterReady)
    }
}

/// `netacct connections --json -v …` while the test connects.
struct ConnectionsRun {
    let run: ToolRun
    init(_ arguments: [String]) throws { run = try ToolRun("connections", arguments, ready: "connections programs attached") }
    func finish(timeout: Double = 3) throws -> (status: Int32, events: [[String: Any]], err: String) {
        let (status, objects, err) = try run.finish(timeout: timeout)
        return (status, objects, err)
    }
}

/// `netacct drops --json -v …` in the namespace where the test causes drops.
struct DropsRun {
    let run: ToolRun
    init(namespace: String, _ arguments: [String]) throws {
        run = try ToolRun("drops", arguments, namespace: namespace, ready: "drops program attached")
    }
    func finish(timeout: Double = 1) throws -> (status: Int32, objects: [[String: Any]], err: String) {
        try run.finish(timeout: timeout)
    }
}
