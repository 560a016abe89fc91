import CTestSupport
import Foundation
import Glibc
import Accounting
import DaemonProtocol
import NetacctKit
import NetacctServers
import ProtocolClients
import Synchronization

/// `netacct-bench hostile <netacct binary> [processes] [exits]`: the daemon's memory while
/// clients misbehave (BENCHMARKS.md, "The daemon under hostile clients"), each scenario on a
/// fresh daemon with `processes` live processes that have sent traffic:
/// - a local-API client that sends 50 empty request lines every 0.1 s and never reads, for
///   10 s, while an atop client asks every 0.5 s;
/// - 200 clients at once (100 per socket; 64 are let in on each) that ask once and never read;
/// - 128 clients that send garbage as fast as they can (random lines to the API, random bytes
///   to the atop socket) and never read;
/// and, with no live processes, `exits` processes that send one datagram and exit while no
/// client is connected. Prints the peak VmRSS of each (sampled every 50 ms).
func runHostileBenchmark(_ arguments: [String]) {
    guard let binary = arguments.first else { fail("usage: netacct-bench hostile <netacct binary> [processes] [exits]") }
    let processes = arguments.count > 1 ? Int(arguments[1]) ?? 3000 : 3000
    let exits = arguments.count > 2 ? Int(arguments[2]) ?? 200_000 : 200_000
    let (receiver, address) = boundLoopbackSocket(SOCK_DGRAM)
    defer { close(receiver) }
    let port = address.sin_port.bigEndian

    print("netacct-bench hostile: kernel \(KernelProbe.kernelRelease), \(processes) live processes")
    print("")
    print("| scenario | peak VmRSS | after | what the good client saw | goal |")
    print("|---|---|---|---|---|")

    func withLiveProcesses(_ body: (BenchDaemon, NetatopClient) -> String) {
        let daemon = BenchDaemon(binary: binary)
        defer { daemon.stop() }
        var pids = [pid_t](repeating: 0, count: processes)
        let started = Int(test_spawn_senders(Int32(processes), port, 100, &pids))
        defer {
            for pid in pids.prefix(started) { kill(pid, SIGKILL) }
            for pid in pids.prefix(started) { waitpid(pid, nil, 0) }
        }
        usleep(500_000)
        guard let atop = try? NetatopClient(path: daemon.socketPath) else { fail("cannot connect to the daemon") }
        print(body(daemon, atop))
    }

    withLiveProcesses { daemon, atop in
        guard let hostile = try? UnixSocket.connect(daemon.apiPath) else { fail("cannot connect to the API") }
        var peak = 0, slowest = 0.0, dropped = false, answered = 0
        let end = Date().addingTimeInterval(10)
        var nextAtop = Date()
        while Date() < end {
            if !hostile.send([UInt8](repeating: 0x0A, count: 50)) { dropped = true }
            if Date() >= nextAtop {
                let start = Date()
                if (try? atop.sample()) != nil { answered += 1 }
                slowest = max(slowest, Date().timeIntervalSince(start))
                nextAtop = start.addingTimeInterval(0.5)
            }
            peak = max(peak, daemon.memory.rss)
            usleep(100_000)
        }
        return "| API client pipelining 50 empty lines / 0.1 s, never reading (10 s) | \(megabytes(peak)) | \(megabytes(daemon.memory.rss)) | atop: \(answered) replies, slowest \(String(format: "%.0f", slowest * 1000)) ms; hostile client \(dropped ? "dropped" : "NOT dropped") | <= 64 MB |"
    }

    withLiveProcesses { daemon, atop in
        var clients: [UnixSocket] = []
        var peak = 0
        for index in 0..<200 {
            guard let client = try? UnixSocket.connect(index % 2 == 0 ? daemon.socketPath : daemon.apiPath) else { continue }
            client.send(index % 2 == 0 ? [UInt8](repeating: 1, count: NetatopRecord.size) : Array("processes\n".utf8))
            clients.append(client)
            usleep(10_000)
            peak = max(peak, daemon.memory.rss)
        }
        for _ in 0..<20 {
            usleep(50_000)
            peak = max(peak, daemon.memory.rss)
        }
        let start = Date()
        let records = (try? atop.sample().count) ?? -1
        let latency = Date().timeIntervalSince(start)
        withExtendedLifetime(clients) {}
        return "| 200 clients at once asking and never reading | \(megabytes(peak)) | \(megabytes(daemon.memory.rss)) | atop: \(records) records in \(String(format: "%.0f", latency * 1000)) ms | <= 64 MB |"
    }

    withLiveProcesses { daemon, atop in
        var clients: [UnixSocket] = []
        for index in 0..<128 {
            if let client = try? UnixSocket.connect(index % 2 == 0 ? daemon.socketPath : daemon.apiPath) { clients.append(client) }
        }
        var peak = 0
        let end = Date().addingTimeInterval(5)
        while Date() < end {
            for client in clients {
                var garbage = (0..<4096).map { _ in UInt8.random(in: 0...255) }
                for index in stride(from: 40, to: garbage.count, by: 40) { garbage[index] = 0x0A }
                client.send(garbage)
            }
            peak = max(peak, daemon.memory.rss)
            usleep(20_000)
        }
        let start = Date()
        let records = (try? atop.sample().count) ?? -1
        let latency = Date().timeIntervalSince(start)
        return "| 128 clients sending garbage as fast as they can, never reading (5 s) | \(megabytes(peak)) | \(megabytes(daemon.memory.rss)) | atop: \(records) records in \(String(format: "%.0f", latency * 1000)) ms | <= 64 MB |"
    }

    // Exits with nobody connected.
    let daemon = BenchDaemon(binary: binary)
    defer { daemon.stop() }
    let idle = daemon.memory.rss
    let peak = Mutex(0), sampling = Mutex(true)
    let pid = daemon.pid
    let sampler = Thread {
        while sampling.withLock({ $0 }) {
            let rss = memoryKiB(pid).rss
            peak.withLock { $0 = max($0, rss) }
            usleep(50_000)
        }
    }
    sampler.start()
    var pids = [pid_t](repeating: 0, count: exits)
    let started = Date()
    let spawned = Int(test_spawn_exiters(Int32(exits), 1, port, 100, &pids, 16))
    let seconds = Date().timeIntervalSince(started)
    sleep(2)
    sampling.withLock { $0 = false }
    let after = daemon.memory.rss
    var delivered = -1
    var forgotten: UInt64 = 0
    if let api = try? DaemonAPI.Connection(path: daemon.apiPath), let reply = try? api.processes() {
        delivered = reply.processes.filter(\.exited).count
        forgotten = reply.losses.forgottenExits
    }
    print("| \(spawned) exits in \(String(format: "%.0f", seconds)) s with no client connected | \(megabytes(max(peak.withLock { $0 }, after))) | \(megabytes(after)) (idle before: \(megabytes(idle))) | a client then: \(delivered) exited processes, \(forgotten) counted as forgotten | <= 40 MB |")
}
