import Foundation
import Glibc
import NetacctServers
import ProtocolClients

/// `netacct daemon` on private sockets, for a benchmark: started at init (returns once atop's
/// socket answers), stopped with SIGTERM by `stop()`.
final class BenchDaemon {
    let process = Process()
    let directory: String
    let socketPath: String
    let apiPath: String

    init(binary: String, arguments: [String] = []) {
        directory = NSTemporaryDirectory() + "netacct-bench-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        socketPath = directory + "/netatop.sock"
        apiPath = directory + "/api.sock"
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = ["daemon", "--socket", socketPath, "--api-socket", apiPath] + arguments
        do { try process.run() } catch { fail("cannot start \(binary): \(error)") }
        for _ in 0..<200 {
            usleep(50_000)
            if (try? NetatopClient(path: socketPath)) != nil { return }
        }
        fail("the daemon did not start")
    }

    var pid: Int32 { process.processIdentifier }

    /// VmRSS and VmHWM, in KiB.
    var memory: (rss: Int, peak: Int) { memoryKiB(pid) }

    func stop() {
        if process.isRunning { kill(pid, SIGTERM) }
        process.waitUntilExit()
        try? FileManager.default.removeItem(atPath: directory)
    }
}

func megabytes(_ kib: Int) -> String { String(format: "%.1f MB", Double(kib) * 1024 / 1_000_000) }
