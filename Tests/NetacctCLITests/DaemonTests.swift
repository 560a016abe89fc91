import Foundation
import Glibc
import NetacctServers
import ProtocolClients
import Testing

/// The daemon's tests talk to it as atop does (NetacctServers.NetatopClient).
typealias AtopClient = NetatopClient

extension NetatopClient {
    convenience init(_ path: String) throws { try self.init(path: path) }
}

/// A bash process that sends UDP datagrams in steps: each `step()` lets it send the next
/// group; after the last group it exits. The datagrams are never read: this test process
/// must make no traffic of its own (other suites count its traffic exactly).
final class SteppedSender {
    let process = Process()
    let gate = Pipe()
    let done = Pipe()
    let receiver: Int32

    init(steps: [[String]]) throws {
        receiver = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let fd = receiver
        _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        let port = address.sin_port.bigEndian
        let script = ["exec 3<>/dev/udp/127.0.0.1/\(port)"] + steps.map { group in
            "read step; " + group.map { "printf '\($0)' >&3" }.joined(separator: "; ") + "; echo sent"
        }
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = ["-c", script.joined(separator: "; ")]
        process.standardInput = gate
        process.standardOutput = done
        try process.run()
    }

    var pid: Int32 { process.processIdentifier }

    /// Lets the next group go and waits until it has been sent.
    func step() {
        gate.fileHandleForWriting.write(Data("go\n".utf8))
        var line = Data()
        while !line.contains(0x0A) {
            let chunk = done.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            line.append(chunk)
        }
    }

    func waitForExit() { process.waitUntilExit() }

    deinit {
        if process.isRunning { process.terminate() }
        close(receiver)
    }
}

@Suite(.serialized, .enabled(if: isRoot, "loads BPF programs: needs root"))
struct DaemonTests {
    @Test func atopGetsExactCumulativeCountersAndEachExitOncePerClient() throws {
        let daemon = try DaemonProcess()
        let first = try AtopClient(daemon.socket), second = try AtopClient(daemon.socket)
        let sender = try SteppedSender(steps: [["hello", "netacct"], ["!"]])
        sender.step()
        let records = try first.sample().filter { $0.pid == sender.pid }
        #expect(records.count == 1)
        #expect(records.first?.traffic.udpTxPackets == 2)
        #expect(records.first?.traffic.udpTxBytes == 12)
        #expect(records.first?.command == "bash")
        #expect(try second.sample().filter { $0.pid == sender.pid }.map(\.traffic.udpTxBytes) == [12])

        sender.step()
        sender.waitForExit()
        // The exited process comes once, with its final cumulative counters, to each client.
        for client in [first, second] {
            let exited = try client.sample().filter { $0.pid == sender.pid }
            #expect(exited.map(\.traffic.udpTxPackets) == [3])
            #expect(exited.map(\.traffic.udpTxBytes) == [13])
            #expect(try client.sample().filter { $0.pid == sender.pid }.isEmpty)
        }
        #expect(daemon.stopExpectingSuccess().contains("stopping"))
    }

    @Test func misbehavingClientsDoNotDisturbOthers() throws {
        let daemon = try DaemonProcess()
        // Half a request, then gone.
        let half = try AtopClient(daemon.socket)
        half.send([UInt8](repeating: 1, count: 48))
        // A client that asks and asks but never reads.
        let greedy = try AtopClient(daemon.socket)
        for _ in 0..<50 { greedy.request() }
        let good = try AtopClient(daemon.socket)
        let started = Date()
        for _ in 0..<5 { _ = try good.sample() }
        #expect(Date().timeIntervalSince(started) < 2)
        // Completing the half request later is still answered.
        half.send([UInt8](repeating: 2, count: 48))
        _ = try half.reply()
        #expect(daemon.process.isRunning)
        daemon.stopExpectingSuccess()
    }

    @Test func socketIsPrivateAndRemovedOnSIGTERM() throws {
        let daemon = try DaemonProcess()
        var info = stat()
        #expect(stat(daemon.socket, &info) == 0)
        #expect(info.st_mode & 0o777 == 0o600)
        #expect(stat(daemon.api, &info) == 0 && info.st_mode & 0o777 == 0o600)
        daemon.stopExpectingSuccess()
        #expect(!FileManager.default.fileExists(atPath: daemon.socket))
        #expect(!FileManager.default.fileExists(atPath: daemon.api))
    }

    @Test func aGroupCanBeLetIn() throws {
        let group = try #require(getgrnam("nogroup"), "this test needs the group nogroup").pointee.gr_gid
        let daemon = try DaemonProcess(extra: ["--group", "nogroup"])
        var info = stat()
        #expect(stat(daemon.socket, &info) == 0)
        #expect(info.st_mode & 0o777 == 0o660)
        #expect(info.st_gid == group)
        daemon.stopExpectingSuccess()
        let unknown = try Binary.run(["daemon", "--group", "no-such-group-here", "--socket", daemon.directory + "/x.sock",
                                      "--api-socket", daemon.directory + "/y.sock"])
        #expect(unknown.status == 1)
        #expect(unknown.err.contains("No group named no-such-group-here"))
        #expect(!FileManager.default.fileExists(atPath: daemon.directory + "/x.sock"))
    }

    @Test func aSecondDaemonRefusesAndAStaleSocketIsReclaimed() throws {
        let daemon = try DaemonProcess()
        let second = try Binary.run(["daemon", "--socket", daemon.socket, "--api-socket", daemon.directory + "/other.sock"])
        #expect(second.status == 1)
        #expect(second.err.contains("serving \(daemon.socket)"))
        _ = try AtopClient(daemon.socket).sample()

        // SIGKILL leaves the socket files behind; the next daemon takes them over.
        daemon.kill()
        #expect(FileManager.default.fileExists(atPath: daemon.socket))
        let next = try NetacctProcess(["daemon", "--socket", daemon.socket, "--api-socket", daemon.api])
        var answered = false
        for _ in 0..<100 where !answered && next.isRunning {
            usleep(50_000)
            answered = (try? AtopClient(daemon.socket).sample()) != nil
        }
        next.stop(SIGTERM)
        #expect(answered, "\(next.err)")
        #expect(next.err.contains("removed a stale socket"))
    }

    @Test func aPathThatIsNotASocketIsLeftAlone() throws {
        let path = NSTemporaryDirectory() + "netacct-not-a-socket-\(getpid())"
        try Data("keep me".utf8).write(to: URL(fileURLWithPath: path))
        defer { unlink(path) }
        let result = try Binary.run(["daemon", "--socket", path, "--api-socket", path + ".api"])
        #expect(result.status == 1)
        #expect(result.err.contains("exists and is not a socket"))
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "keep me")
    }

    @Test func topThreadsNeedsADaemonWithThreads() throws {
        for (extra, expectDaemon) in [([String](), false), (["--threads"], true)] {
            let daemon = try DaemonProcess(extra: extra)
            let result = try Binary.run(["top", "0.2", "1", "--json", "--threads", "-v", "--daemon-socket", daemon.api])
            #expect(result.status == 0)
            #expect(result.err.contains("reading the counters of the netacct daemon") == expectDaemon)
            #expect(result.err.contains("keeps no per-thread counters") == !expectDaemon)
            daemon.stopExpectingSuccess()
        }
    }

    @Test func topReadsTheDaemonInsteadOfLoadingItsOwnPrograms() throws {
        let daemon = try DaemonProcess()
        let sender = try SteppedSender(steps: [["0123456789"], ["ab"]])
        let top = try NetacctProcess(["top", "0.2", "--json", "-v", "--daemon-socket", daemon.api, "-p", String(sender.pid)])
        _ = try top.line("its first interval")
        sender.step()
        sender.step()
        sender.waitForExit()
        var rows: [[String: Any]] = []
        for _ in 0..<30 {
            guard let line = top.nextLine() else { break }
            let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            rows += object["processes"] as? [[String: Any]] ?? []
            if rows.contains(where: { $0["exited"] as? Bool == true }) { break }
        }
        top.stop(SIGTERM)
        #expect(rows.reduce(0) { $0 + ($1["udp_tx_bytes"] as? Int ?? 0) } == 12)
        #expect(rows.reduce(0) { $0 + ($1["udp_tx_packets"] as? Int ?? 0) } == 2)
        #expect(rows.last?["exited"] as? Bool == true)
        let log = top.err
        #expect(log.contains("reading the counters of the netacct daemon"))
        #expect(!log.contains("accounting programs attached"))
        daemon.stopExpectingSuccess()
    }
}
