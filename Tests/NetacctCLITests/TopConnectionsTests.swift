import Foundation
import Glibc
import Testing

/// A python3 process that makes connections when told: TCP over IPv4 (two) and IPv6, a
/// connected UDP socket (IPv4) and an unconnected one (IPv6) sending to two peers. On `go` it
/// makes them and talks on each; on `close` it talks once more and closes them all at once (so
/// that the interval of their close has traffic, and shows them closed), then prints, as one
/// JSON line, every socket it used with what it sent and received in all (calls and bytes) and
/// its endpoints; on end of input it exits.
final class ConnectionMaker {
    static let script = #"""
    import json, socket, sys
    made = {}
    def count(s, kind, sent, sends, received, receives, connected=True):
        entry = made.get(s)
        if entry is None:
            local = s.getsockname()
            remote = s.getpeername() if connected else ("*", None)
            entry = made[s] = dict(protocol=kind, family="ipv4" if s.family == socket.AF_INET else "ipv6",
                                   laddr=local[0], lport=local[1], raddr=remote[0], rport=remote[1],
                                   tx_packets=0, tx_bytes=0, rx_packets=0, rx_bytes=0)
        entry["tx_packets"] += sends; entry["tx_bytes"] += sent; entry["rx_packets"] += receives; entry["rx_bytes"] += received
    def receive_all(s, total):
        got = calls = 0
        while got < total:
            got += len(s.recv(total - got)); calls += 1
        return calls
    sys.stdin.readline()
    keep, tcp = [], []
    for family, host, sizes in ((socket.AF_INET, "127.0.0.1", [1000, 2000]), (socket.AF_INET, "127.0.0.1", [7]), (socket.AF_INET6, "::1", [333, 444, 555])):
        listener = socket.socket(family); listener.bind((host, 0)); listener.listen()
        client = socket.socket(family); client.connect(listener.getsockname()); server, _ = listener.accept()
        tcp.append((client, server, sizes)); keep += [listener, client, server]
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); receiver.bind(("127.0.0.1", 0))
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); sender.connect(receiver.getsockname())
    peers = [socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) for _ in range(2)]
    for peer in peers: peer.bind(("::1", 0))
    loose = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    keep += [receiver, sender, loose] + peers
    def talk():
        for client, server, sizes in tcp:
            for size in sizes: client.send(b"a" * size)
            calls = receive_all(server, sum(sizes))
            server.send(b"b" * 10); back = receive_all(client, 10)
            count(client, "tcp", sum(sizes), len(sizes), 10, back); count(server, "tcp", 10, 1, sum(sizes), calls)
        for size in (10, 20, 30): sender.send(b"c" * size)
        for _ in range(3): receiver.recv(100)
        count(sender, "udp", 60, 3, 0, 0); count(receiver, "udp", 0, 0, 60, 3, connected=False)
        loose.sendto(b"d" * 11, peers[0].getsockname()); loose.sendto(b"e" * 22, peers[1].getsockname()); loose.sendto(b"f" * 33, peers[1].getsockname())
        peers[0].recv(100); peers[1].recv(100); peers[1].recv(100)
        count(loose, "udp", 66, 3, 0, 0, connected=False)
        count(peers[0], "udp", 0, 0, 11, 1, connected=False); count(peers[1], "udp", 0, 0, 55, 2, connected=False)
    talk()
    print("talked", flush=True)
    sys.stdin.readline()
    talk()
    for s in keep: s.close()
    print(json.dumps(list(made.values())), flush=True)
    sys.stdin.readline()
    """#

    let process = Process()
    let input = Pipe(), output = Pipe()
    let lines: LineReader

    init() throws {
        process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        process.arguments = ["-c", Self.script]
        process.standardInput = input
        process.standardOutput = output
        try process.run()
        lines = LineReader(output.fileHandleForReading)
    }

    var pid: Int32 { process.processIdentifier }

    /// A JSON value as text, to compare values of both sides: `null` for null.
    static func text(_ value: Any) -> String { value is NSNull ? "null" : "\(value)" }

    func tell(_ word: String) { input.fileHandleForWriting.write(Data((word + "\n").utf8)) }

    /// Makes the sockets and talks on them.
    func talk() throws {
        tell("go")
        #expect(lines.next() == "talked")
    }

    /// Talks again and closes; returns the sockets it used, as top's JSON writes connections.
    func closeAll() throws -> [[String: String]] {
        tell("close")
        let line = try #require(lines.next())
        let sockets = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [[String: Any]])
        return sockets.map { $0.mapValues(Self.text) }
    }

    func finish() {
        try? input.fileHandleForWriting.close()
        process.waitUntilExit()
    }
}

@Suite(.serialized, .enabled(if: isRoot, "loads BPF programs: needs root"))
struct TopConnectionsTests {
    /// `netacct top --connections --json` for one process, until its sockets are reported closed.
    final class TopRun {
        let tool: NetacctProcess
        init(_ arguments: [String]) throws {
            tool = try NetacctProcess(["top", "--connections", "--json"] + arguments)
            // The first line means the programs are attached.
            _ = try tool.line("its first interval")
        }

        /// The connections of every line read until one has closed connections and `count`
        /// more lines followed; each connection object with its line's index.
        func connections(after count: Int = 1) throws -> [(line: Int, connection: [String: Any])] {
            var result: [(line: Int, connection: [String: Any])] = []
            var index = 0, closedAt: Int?
            while let line = tool.nextLine() {
                index += 1
                let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
                for process in object["processes"] as? [[String: Any]] ?? [] {
                    let connections = try #require(process["connections"] as? [[String: Any]], "--connections adds the key to every process")
                    result += connections.map { (index, $0) }
                    if closedAt == nil && connections.contains(where: { $0["closed"] as? Bool == true }) { closedAt = index }
                }
                if let closedAt, index >= closedAt + count { break }
                if index > 100 { break }
            }
            tool.stop(SIGTERM)
            return result
        }
    }

    /// Sums the connections' counters per socket (protocol, endpoints), and notes which closed.
    static func totals(_ rows: [(line: Int, connection: [String: Any])]) -> [String: [String: String]] {
        var totals: [String: [String: String]] = [:]
        for (_, c) in rows {
            let key = "\(c["protocol"]!) \(c["laddr"]!):\(c["lport"]!) \(c["raddr"]!):\(c["rport"] is NSNull ? "null" : "\(c["rport"]!)")"
            var total = totals[key] ?? ["protocol": ConnectionMaker.text(c["protocol"]!), "family": ConnectionMaker.text(c["family"]!),
                                        "tx_packets": "0", "tx_bytes": "0", "rx_packets": "0", "rx_bytes": "0", "closed": "0"]
            for field in ["tx_packets", "tx_bytes", "rx_packets", "rx_bytes"] {
                total[field] = String(Int(total[field]!)! + (c[field] as! Int))
            }
            if c["closed"] as? Bool == true { total["closed"] = String(Int(total["closed"]!)! + 1) }
            totals[key] = total
        }
        return totals
    }

    static func key(_ socket: [String: String]) -> String {
        "\(socket["protocol"]!) \(socket["laddr"]!):\(socket["lport"]!) \(socket["raddr"]!):\(socket["rport"]!)"
    }

    @Test func everyConnectionOfAProcessWithExactCountsAndOneFamilyEachWithMinus4AndMinus6() throws {
        let maker = try ConnectionMaker()
        defer { maker.finish() }
        let all = try TopRun(["0.3", "-p", String(maker.pid), "--no-daemon"])
        let ipv4 = try TopRun(["0.3", "-p", String(maker.pid), "--no-daemon", "-4"])
        let ipv6 = try TopRun(["0.3", "-p", String(maker.pid), "--no-daemon", "-6"])
        try maker.talk()
        usleep(400_000) // an interval with the sockets open
        let made = try maker.closeAll()
        let runs: [(TopRun, Set<String>)] = [(all, ["ipv4", "ipv6"]), (ipv4, ["ipv4"]), (ipv6, ["ipv6"])]
        for (run, families) in runs {
            let rows = try run.connections()
            let totals = Self.totals(rows)
            let expected = made.filter { families.contains($0["family"]!) }
            #expect(totals.count == expected.count, "one socket each, no other: \(totals.keys.sorted())")
            for socket in expected {
                let total = try #require(totals[Self.key(socket)], "\(families): \(Self.key(socket)) in \(totals.keys.sorted())")
                for field in ["protocol", "family", "tx_packets", "tx_bytes", "rx_packets", "rx_bytes"] {
                    #expect(total[field] == socket[field], "\(Self.key(socket)) \(field)")
                }
                #expect(total["closed"] == "1", "\(Self.key(socket)): its final interval once, marked closed")
            }
            // A closed socket's final interval is its last: nothing of it after.
            for (line, c) in rows where c["closed"] as? Bool == true {
                #expect(!rows.contains { $0.line > line && $0.connection["lport"] as? Int == c["lport"] as? Int && $0.connection["laddr"] as? String == c["laddr"] as? String })
            }
        }
    }

    @Test func theTableShowsATablePerFamilyAndMarksClosedSockets() throws {
        let maker = try ConnectionMaker()
        defer { maker.finish() }
        let top = try NetacctProcess(["top", "--connections", "-C", "--no-daemon", "-p", String(maker.pid), "0.3"])
        // Its first screen means the programs are attached.
        while try !top.line("its first screen").contains("loadavg:") {}
        try maker.talk()
        usleep(400_000)
        let made = try maker.closeAll()
        var text = ""
        while let line = top.nextLine() {
            text += line + "\n"
            if line.hasPrefix("tcp* udp*") { break }
        }
        top.stop(SIGTERM)
        #expect(text.contains("IPv4 connections") && text.contains("IPv6 connections"))
        let tcp6 = try #require(made.first { $0["protocol"] == "tcp" && $0["family"] == "ipv6" })
        let row = try #require(text.split(separator: "\n").first { $0.contains("[::1]:\(tcp6["lport"]!) ") && $0.contains("tcp") },
                               "a row for the IPv6 connection:\n\(text)")
        #expect(row.contains("[::1]:\(tcp6["rport"]!)"))
        let loose = try #require(made.first { $0["protocol"] == "udp" && $0["family"] == "ipv6" && $0["tx_bytes"] == "132" })
        #expect(text.split(separator: "\n").contains { $0.contains(":\(loose["lport"]!) ") && $0.contains(" * ") && $0.contains("udp") },
                "an unconnected UDP socket shows * as its remote end:\n\(text)")
        #expect(text.contains("tcp* ") && text.contains("udp* "), "closed sockets are marked:\n\(text)")
    }

    @Test func throughADaemonCountingPerConnection() throws {
        let daemon = try DaemonProcess(extra: ["--connections"])
        defer { daemon.stopExpectingSuccess() }
        let maker = try ConnectionMaker()
        defer { maker.finish() }
        let run = try TopRun(["0.3", "-p", String(maker.pid), "--daemon-socket", daemon.api, "-v"])
        try maker.talk()
        usleep(400_000)
        let made = try maker.closeAll()
        let totals = Self.totals(try run.connections())
        #expect(totals.count == made.count)
        for socket in made {
            let total = try #require(totals[Self.key(socket)], "\(Self.key(socket))")
            #expect(total["tx_bytes"] == socket["tx_bytes"] && total["rx_bytes"] == socket["rx_bytes"] && total["closed"] == "1")
            #expect(total["tx_packets"] == socket["tx_packets"] && total["rx_packets"] == socket["rx_packets"])
        }
    }

    @Test func aDaemonWithoutConnectionsIsNotUsedForThem() throws {
        let daemon = try DaemonProcess()
        defer { daemon.stopExpectingSuccess() }
        let result = try Binary.run(["top", "--connections", "--json", "--daemon-socket", daemon.api, "0.2", "1"])
        #expect(result.status == 0)
        #expect(result.err.contains("does not count per connection (start it with --connections)"), "\(result.err)")
        #expect(result.out.contains("\"processes\":["))
    }

    @Test func minus4WithoutConnectionsIsRefused() throws {
        let result = try Binary.run(["top", "-4", "--json", "1", "1"])
        #expect(result.status == 2)
        #expect(result.err.contains("use them with --connections"))
    }
}
