import Foundation
import Glibc
import Testing

/// A netacct tool that prints JSON lines, run as a user runs it (optionally in a network
/// namespace): started with -v, it says on standard error when its programs are attached, and
/// only then does the test make traffic. It ends by itself (--count) or by SIGINT.
final class ToolRun {
    let process = Process()
    let out = Pipe(), err = Pipe()
    private let errLines: LineReader

    init(_ tool: String, _ arguments: [String], namespace: String? = nil, ready: String) throws {
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
        errLines = LineReader(err.fileHandleForReading)
        while let line = errLines.next(), !line.contains(ready) {}
    }

    /// Waits for it to end by itself or, after `timeout` seconds, interrupts it (SIGINT: it shows
    /// what the kernel sent before, then its summary). Its status, its JSON objects, and the
    /// rest of its standard error.
    func finish(timeout: Double) throws -> (status: Int32, objects: [[String: Any]], err: String) {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        if process.isRunning { kill(process.processIdentifier, SIGINT) }
        let output = out.fileHandleForReading.readDataToEndOfFile()
        var rest: [String] = []
        while let line = errLines.next() { rest.append(line) }
        process.waitUntilExit()
        let objects = try String(decoding: output, as: UTF8.self).split(separator: "\n").map { line in
            try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        }
        return (process.terminationStatus, objects, rest.joined(separator: "\n"))
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
