import Foundation
import Glibc
import Testing

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

    /// Runs netacct to completion; returns its exit status, standard output and error.
    static func run(_ arguments: [String], prefix: [String] = []) throws -> (status: Int32, out: String, err: String) {
        let process = Process()
        if prefix.isEmpty {
            process.executableURL = url
            process.arguments = arguments
        } else {
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = prefix + [url.path] + arguments
        }
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        // Both at once: a command that fills one pipe (-v's libbpf log is over 64 KiB) while
        // the other is read to its end would wait forever.
        let error = PipeDrain(err.fileHandleForReading)
        let output = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: output, as: UTF8.self), String(decoding: error.wait(), as: UTF8.self))
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

@Suite(.serialized)
struct TopCommandTests {
    static let isRoot = geteuid() == 0

    @Test(.enabled(if: isRoot, "loads BPF programs: needs root"))
    func jsonStreamsOneLinePerIntervalWithExactCounters() throws {
        let sender = try SteppedSender(steps: [["hello", "netacct json"]])
        let top = Process()
        top.executableURL = Binary.url
        top.arguments = ["top", "0.2", "--json", "--threads", "-p", String(sender.pid)]
        let out = Pipe()
        top.standardOutput = out
        try top.run()
        let lines = LineReader(out.fileHandleForReading)
        // The first line means the programs are attached: only then send.
        let first = try #require(lines.next())
        #expect(first.contains("\"processes\":[]"))
        sender.step()
        sender.waitForExit()
        var objects: [[String: Any]] = []
        while let line = lines.next() {
            let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            objects.append(object)
            let processes = object["processes"] as? [[String: Any]] ?? []
            if processes.contains(where: { $0["exited"] as? Bool == true }) || objects.count > 50 { break }
        }
        kill(top.processIdentifier, SIGTERM)
        top.waitUntilExit()
        #expect(top.terminationReason == .exit && top.terminationStatus == 0)

        for object in objects {
            #expect(object["time"] is String)
            #expect((object["interval_s"] as? Double ?? 0) > 0.1)
        }
        let rows = objects.flatMap { $0["processes"] as? [[String: Any]] ?? [] }
        #expect(rows.allSatisfy { $0["pid"] as? Int == Int(sender.pid) && $0["comm"] as? String == "bash" })
        func sum(_ key: String) -> Int { rows.reduce(0) { $0 + ($1[key] as? Int ?? -1_000_000) } }
        #expect(sum("udp_tx_packets") == 2)
        #expect(sum("udp_tx_bytes") == 17)
        #expect(sum("udp_rx_packets") == 0 && sum("tcp_tx_packets") == 0 && sum("tcp_rx_bytes") == 0)
        #expect(rows.last?["exited"] as? Bool == true)
        #expect(rows.last?["cgroup"] is String)
        let threads = rows.flatMap { $0["threads"] as? [[String: Any]] ?? [] }
        #expect(threads.reduce(0) { $0 + ($1["udp_tx_bytes"] as? Int ?? 0) } == 17)
        #expect(threads.allSatisfy { $0["tid"] as? Int == Int(sender.pid) })
    }

    @Test(.enabled(if: isRoot, "loads BPF programs: needs root"))
    func tableShowsTheProcessAndTheSummary() throws {
        let sender = try SteppedSender(steps: [["0123456789"]])
        let top = Process()
        top.executableURL = Binary.url
        top.arguments = ["top", "0.3", "4", "-C", "-p", String(sender.pid)]
        let out = Pipe()
        top.standardOutput = out
        try top.run()
        // Its first output means the programs are attached: only then send (a fixed wait
        // loses the datagram when the machine is busy).
        let lines = LineReader(out.fileHandleForReading)
        var text = ""
        while let line = lines.next() {
            text += line + "\n"
            if line.contains("loadavg:") { break }
        }
        sender.step()
        sender.waitForExit()
        while let line = lines.next() { text += line + "\n" }
        top.waitUntilExit()
        #expect(top.terminationStatus == 0)
        #expect(text.components(separatedBy: "loadavg:").count - 1 == 4)
        let row = try #require(text.split(separator: "\n").first { $0.hasPrefix(String(format: "%7d", sender.pid)) })
        let fields = row.split(separator: " ")
        // PID COMM CGROUP, then TCP rx/tx and UDP rx/tx packets and bytes.
        #expect(fields[1] == "bash*")
        #expect(Array(fields.suffix(8)) == ["0", "0B", "0", "0B", "0", "0B", "1", "10B"])
    }

    @Test func badOptionsAreRefusedClearly() throws {
        let zero = try Binary.run(["top", "0"])
        #expect(zero.status != 0)
        #expect(zero.err.contains("The interval must be a positive number of seconds"))
        let badSort = try Binary.run(["top", "--sort", "sideways"])
        #expect(badSort.status != 0)
        #expect(badSort.err.contains("sideways"))
        let badPID = try Binary.run(["top", "-p", "-3"])
        #expect(badPID.status != 0)
    }

    /// The daemon's memory goal depends on it (BENCHMARKS.md): Foundation proper and ICU are
    /// ~6 MiB resident; the product uses FoundationEssentials only.
    @Test func foundationAndICUAreNotLoaded() throws {
        let result = try Binary.run(["--help"], prefix: ["LD_DEBUG=libs"])
        #expect(result.status == 0)
        #expect(result.out.contains("USAGE"))
        let loaded = result.err.split(separator: "\n").filter { $0.contains("calling init:") }
        #expect(!loaded.isEmpty, "LD_DEBUG=libs reported no library (is this glibc?)")
        #expect(!loaded.contains { $0.contains("libFoundation.so") || $0.contains("ICU") || $0.contains("FoundationInternationalization") },
                "\(loaded)")
    }

    @Test(.enabled(if: isRoot, "needs root to drop to another user"))
    func withoutPrivilegesItSaysWhatToDo() throws {
        let result = try Binary.run(["top", "1", "1"], prefix: ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all"])
        #expect(result.status == 1)
        #expect(result.err.contains("must run as root, or with the CAP_BPF and CAP_PERFMON capabilities"))
        #expect(!result.err.contains("Fatal error"))
    }

    @Test(.enabled(if: isRoot, "loads BPF programs: needs root"))
    func unknownCgroupIsAnError() throws {
        let result = try Binary.run(["top", "--cgroup", "/no/such/cgroup", "1", "1"])
        #expect(result.status == 1)
        #expect(result.err.contains("No cgroup /no/such/cgroup"))
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
