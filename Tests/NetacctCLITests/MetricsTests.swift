import Foundation
import Glibc
import ProtocolClients
import Testing

/// A real Prometheus server (Debian's package) on loopback, scraping one target every second,
/// with its own storage in a temporary directory; queried through its HTTP API. In `namespace`
/// (a network namespace), it scrapes and is queried there.
final class PrometheusServer {
    let process = Process()
    let directory: String
    let port: Int
    let namespace: String?

    init(target: String, bearerTokenFile: String? = nil, namespace: String? = nil, port: Int = 29090 + Int(getpid() % 500)) throws {
        directory = NSTemporaryDirectory() + "netacct-prometheus-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        self.port = port
        self.namespace = namespace
        let config = """
            global:
              scrape_interval: 1s
              scrape_timeout: 1s
            scrape_configs:
              - job_name: netacct
                static_configs:
                  - targets: ["\(target)"]
            \(bearerTokenFile.map { "    authorization:\n      credentials_file: \($0)" } ?? "")
            """
        try config.write(toFile: directory + "/prometheus.yml", atomically: true, encoding: .utf8)
        let arguments = ["--config.file=\(directory)/prometheus.yml", "--storage.tsdb.path=\(directory)/data",
                         "--web.listen-address=127.0.0.1:\(port)", "--log.level=warn"]
        process.executableURL = URL(fileURLWithPath: namespace == nil ? "/usr/bin/prometheus" : "/usr/sbin/ip")
        process.arguments = namespace.map { ["netns", "exec", $0, "/usr/bin/prometheus"] + arguments } ?? arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
    }

    /// An instant query's single value (nil: no result yet).
    func value(_ query: String) throws -> Double? {
        let encoded = query.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? query
        let (status, out) = try Curl.get("http://127.0.0.1:\(port)/api/v1/query?query=\(encoded)", namespace: namespace)
        guard status == 200, let object = try? JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: Any],
              let data = object["data"] as? [String: Any], let result = data["result"] as? [[String: Any]],
              result.count == 1, let pair = result[0]["value"] as? [Any], let text = pair.last as? String else { return nil }
        return Double(text)
    }

    /// Polls `query` (up to 30 s) until it gives `expected`; returns the last value seen.
    func await(_ query: String, _ expected: Double) throws -> Double? {
        let deadline = Date().addingTimeInterval(30)
        var last: Double?
        while Date() < deadline {
            last = try value(query)
            if last == expected { return last }
            usleep(250_000)
        }
        return last
    }

    deinit {
        if process.isRunning { kill(process.processIdentifier, SIGKILL); process.waitUntilExit() }
        try? FileManager.default.removeItem(atPath: directory)
    }
}

/// curl, for plain HTTP requests with their status (in `namespace`, a network namespace).
enum Curl {
    /// Gives up after `seconds`: status 0 when there was no answer.
    static func get(_ url: String, headers: [String] = [], namespace: String? = nil, seconds: Int = 10) throws -> (status: Int, body: String) {
        let process = Process()
        let arguments = ["-s", "-w", "\n%{http_code}", "--max-time", String(seconds)] + headers.flatMap { ["-H", $0] } + [url]
        process.executableURL = URL(fileURLWithPath: namespace == nil ? "/usr/bin/curl" : "/usr/sbin/ip")
        process.arguments = namespace.map { ["netns", "exec", $0, "/usr/bin/curl"] + arguments } ?? arguments
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle.nullDevice
        try process.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        // curl's own failures (a bad option, say) are not the daemon's: only no answer may fail
        // (7 no connection, 28 gave up, 52 closed without a reply, 56 reset).
        #expect([0, 7, 28, 52, 56].contains(process.terminationStatus), "curl exited \(process.terminationStatus)")
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        return (Int(lines.last ?? "") ?? 0, lines.dropLast().joined(separator: "\n"))
    }
}

@Suite(.serialized, .enabled(if: isRoot && FileManager.default.isExecutableFile(atPath: "/usr/bin/prometheus"),
                             "needs root and Debian's prometheus package (scripts/test installs it)"))
struct MetricsTests {
    static let port = 19600 + Int(getpid() % 300)
    static var address: String { "127.0.0.1:\(port)" }

    /// Processes named `name` (prctl) in the cgroup at `path`, each sending `count` datagrams
    /// of `bytes` to a port nobody listens on, then exiting; waits for them.
    static func send(named names: [String], in path: String, count: Int, bytes: Int) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", """
            echo $$ > \(path)/cgroup.procs && exec /usr/bin/python3 -c "
            import ctypes, os, socket, sys
            libc = ctypes.CDLL(None)
            for name in sys.argv[1:]:
                if os.fork() == 0:
                    libc.prctl(15, name.encode(), 0, 0, 0)
                    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                    for _ in range(\(count)): s.sendto(b'm' * \(bytes), ('127.0.0.1', 9))
                    os._exit(0)
                os.wait()
            " \(names.joined(separator: " "))
            """]
        try process.run()
        process.waitUntilExit()
        try #require(process.terminationStatus == 0)
    }

    @Test func prometheusScrapesExactBytesAndCallsPerCgroupAndProcessGroup() throws {
        let cgroups = try TestCgroups()
        let daemon = try DaemonProcess(extra: ["--listen", Self.address])
        defer { daemon.stopExpectingSuccess() }
        let prometheus = try PrometheusServer(target: Self.address)
        try Self.send(named: ["nacct-web"], in: cgroups.root + cgroups.unit, count: 5, bytes: 300)
        try Self.send(named: ["nacct-box", "nacct-box"], in: cgroups.root + cgroups.container, count: 3, bytes: 70)
        // By path (the test's own), with the name and kind people know.
        let unitBytes = #"sum(netacct_cgroup_bytes_total{cgroup="\#(cgroups.unit)",name="web.service",kind="unit",protocol="udp",direction="tx"})"#
        #expect(try prometheus.await(unitBytes, 1500) == 1500)
        let container = String(TestCgroups.containerID.prefix(12))
        #expect(try prometheus.await(#"sum(netacct_cgroup_bytes_total{cgroup="\#(cgroups.container)",name="\#(container)",kind="container",protocol="udp",direction="tx"})"#, 420) == 420)
        #expect(try prometheus.await(#"sum(netacct_cgroup_calls_total{cgroup="\#(cgroups.container)",protocol="udp",direction="tx"})"#, 6) == 6)
        // Exited processes stay in their group; two processes of one name are one group.
        #expect(try prometheus.await(#"netacct_process_group_bytes_total{group="nacct-box",protocol="udp",direction="tx"}"#, 420) == 420)
        #expect(try prometheus.await(#"netacct_process_group_calls_total{group="nacct-web",protocol="udp",direction="tx"}"#, 5) == 5)
        #expect(try prometheus.await(#"netacct_process_group_bytes_total{group="nacct-web",protocol="tcp",direction="rx"}"#, 0) == 0)
        #expect(try prometheus.await(#"up{job="netacct"}"#, 1) == 1)
        // The exposition passes promtool's lint.
        let (status, body) = try Curl.get("http://\(Self.address)/metrics")
        #expect(status == 200)
        try Self.expectPromtoolPasses(body)
        #expect(body.contains("process_resident_memory_bytes ") && body.contains("process_cpu_seconds_total ") && body.contains("netacct_scrape_duration_seconds "))
        // Every query of the Grafana dashboard runs, and finds series.
        let dashboard = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: Self.repository.appendingPathComponent("dist/grafana/netacct.json"))) as? [String: Any])
        let panels = try #require(dashboard["panels"] as? [[String: Any]])
        let queries = panels.flatMap { ($0["targets"] as? [[String: Any]] ?? []).compactMap { $0["expr"] as? String } }
        #expect(queries.count == panels.count)
        for query in queries {
            let concrete = query.replacingOccurrences(of: "$__rate_interval", with: "1m").replacingOccurrences(of: "$instance", with: ".*")
            let encoded = concrete.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? concrete
            // A rate needs two scrapes in its window: wait for them.
            var answer = "", status = 0
            let deadline = Date().addingTimeInterval(20)
            repeat {
                (status, answer) = try Curl.get("http://127.0.0.1:\(prometheus.port)/api/v1/query?query=\(encoded)")
                if answer.contains(#""metric":"#) { break }
                usleep(500_000)
            } while Date() < deadline
            #expect(status == 200 && answer.contains(#""status":"success""#) && answer.contains(#""metric":"#), "\(query): \(answer)")
        }
        withExtendedLifetime(cgroups) {}
    }

    /// The repository, from this file's path.
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    @Test func theExampleRulesAndScrapeConfigPassPromtool() throws {
        for (command, file) in [("rules", "dist/prometheus/netacct-rules.yml"), ("config", "dist/prometheus/netacct.yml")] {
            let check = Process()
            check.executableURL = URL(fileURLWithPath: "/usr/bin/promtool")
            check.arguments = ["check", command, Self.repository.appendingPathComponent(file).path]
            let out = Pipe()
            check.standardOutput = out
            check.standardError = out
            try check.run()
            let said = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            check.waitUntilExit()
            #expect(check.terminationStatus == 0, "promtool check \(command) \(file): \(said)")
        }
    }

    @Test func twoThousandProcessGroupsStayWithinTheBoundAndOtherHoldsTheRestExactly() throws {
        let cgroups = try TestCgroups()
        let daemon = try DaemonProcess(extra: ["--listen", Self.address, "--metrics-top", "20"])
        defer { daemon.stopExpectingSuccess() }
        let names = (0..<2000).map { "nacct-\($0)" }
        try Self.send(named: names, in: cgroups.root + cgroups.unit, count: 1, bytes: 10)
        try Self.send(named: ["nacct-big"], in: cgroups.root + cgroups.unit, count: 10, bytes: 1000)
        usleep(1_200_000) // the daemon's maintenance takes the exits
        let (status, body) = try Curl.get("http://\(Self.address)/metrics")
        #expect(status == 200)
        let rows = body.split(separator: "\n").filter { $0.hasPrefix("netacct_process_group_bytes_total{") && $0.contains(#"protocol="udp",direction="tx""#) }
        #expect(rows.count == 21, "20 groups and other")
        func value(_ row: Substring) -> Int { Int(row.split(separator: " ").last ?? "") ?? -1 }
        let big = rows.first { $0.contains(#"group="nacct-big""#) }
        #expect(big.map(value) == 10_000, "the busiest has a series of its own")
        let ours = rows.filter { $0.contains("nacct-") }.map(value).reduce(0, +)
        let other = rows.first { $0.contains(#"group="other""#) }.map(value) ?? -1
        // Every byte of the 2,001 processes is in a series: theirs, or other (with whatever else ran).
        #expect(ours + other >= 30_000)
        let cgroupTotal = body.split(separator: "\n").first { $0.hasPrefix("netacct_cgroup_bytes_total{cgroup=\"\(cgroups.unit)\"") && $0.contains(#"protocol="udp",direction="tx""#) }
        #expect(cgroupTotal.map(value) == 30_000, "the cgroup's series has all of them")
        let machine = body.split(separator: "\n").first { $0.hasPrefix(#"netacct_bytes_total{protocol="udp",direction="tx"}"#) }.map(value) ?? -1
        #expect(rows.map(value).reduce(0, +) == machine, "the groups add up to the machine's total")
        withExtendedLifetime(cgroups) {}
    }

    @Test func aTokenIsRequiredWhenGivenAndAWorldReadableOneIsRefused() throws {
        let directory = NSTemporaryDirectory() + "netacct-token-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let file = directory + "/token"
        try "s3cret-token\n".write(toFile: file, atomically: true, encoding: .utf8)
        chmod(file, 0o644)
        let refused = try Binary.run(["daemon", "--socket", directory + "/n.sock", "--api-socket", directory + "/a.sock",
                                      "--listen", Self.address, "--metrics-token-file", file])
        #expect(refused.status == 2 && refused.err.contains("readable by every user"), "\(refused.err)")
        chmod(file, 0o600)
        let daemon = try DaemonProcess(extra: ["--listen", Self.address, "--metrics-token-file", file])
        defer { daemon.stopExpectingSuccess() }
        #expect(try Curl.get("http://\(Self.address)/metrics").status == 401)
        #expect(try Curl.get("http://\(Self.address)/metrics", headers: ["Authorization: Bearer wrong"]).status == 401)
        #expect(try Curl.get("http://\(Self.address)/metrics", headers: ["Authorization: Bearer s3cret-token"]).status == 200)
        #expect(try Curl.get("http://\(Self.address)/api/v1/processes", headers: ["Authorization: Bearer s3cret-token"]).status == 200)
        #expect(try Curl.get("http://\(Self.address)/healthz").status == 200, "liveness needs no token")
        // Prometheus with the token in its scrape config gets in.
        let prometheus = try PrometheusServer(target: Self.address, bearerTokenFile: file)
        #expect(try prometheus.await(#"up{job="netacct"}"#, 1) == 1)
    }

    /// The lines of one family's samples in a scrape, with their values.
    static func samples(_ body: String, _ name: String) -> [(labels: String, value: Double)] {
        body.split(separator: "\n").filter { $0.hasPrefix(name + "{") || $0.hasPrefix(name + " ") }.map { line in
            let parts = line.split(separator: " ")
            return (String(parts[0].dropFirst(name.count)), Double(parts.last ?? "") ?? .nan)
        }
    }

    @Test func theOtherCollectorsExportTheirFamilies() throws {
        let daemon = try DaemonProcess(extra: ["--listen", Self.address, "--nic", "--latency", "--connections"])
        defer { daemon.stopExpectingSuccess() }
        let before = try Curl.get("http://\(Self.address)/metrics").body
        for _ in 0..<5 { _ = try Curl.get("http://\(Self.address)/healthz") }
        usleep(1_200_000) // a maintenance interval: the closes are noticed
        let (status, body) = try Curl.get("http://\(Self.address)/metrics")
        #expect(status == 200)
        func closed(_ text: String) -> Double {
            Self.samples(text, "netacct_sockets_closed_total").first { $0.labels == #"{protocol="tcp",family="ipv4"}"# }?.value ?? -1
        }
        // Each of the five requests closed two sockets that had talked: curl's and the daemon's.
        #expect(closed(body) - closed(before) >= 10, "\(closed(before)) → \(closed(body))")
        let loopback = Self.samples(body, "netacct_nic_bytes_total").filter { $0.labels.contains(#"interface="lo""#) }
        #expect(loopback.count == 2 && loopback.allSatisfy { $0.value > 0 }, "lo's queue, each way: \(loopback)")
        for direction in ["in", "out"] {
            let total = #"{direction="\#(direction)",stage="total""#
            let count = Self.samples(body, "netacct_latency_seconds_count").first { $0.labels.hasPrefix(total) }?.value ?? -1
            let infinite = Self.samples(body, "netacct_latency_seconds_bucket").first { $0.labels.hasPrefix(total) && $0.labels.contains(#"le="+Inf""#) }?.value
            #expect(count > 0 && infinite == count, "\(direction): the segments of the requests, in every bucket up to +Inf")
        }
        #expect(Self.samples(body, "netacct_latency_unfollowed_segments_total").count == 8, "four reasons each way")
        #expect(Self.samples(body, "netacct_sockets_forgotten_total").map(\.value) == [0])
        try Self.expectPromtoolPasses(body)
    }

    /// `promtool check metrics` passes a scrape (its lint included).
    static func expectPromtoolPasses(_ body: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let check = Process()
        check.executableURL = URL(fileURLWithPath: "/usr/bin/promtool")
        check.arguments = ["check", "metrics"]
        let input = Pipe(), out = Pipe()
        check.standardInput = input
        check.standardOutput = out
        check.standardError = out
        try check.run()
        input.fileHandleForWriting.write(Data(body.utf8))
        try input.fileHandleForWriting.close()
        let said = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        check.waitUntilExit()
        #expect(check.terminationStatus == 0, "promtool check metrics: \(said)", sourceLocation: sourceLocation)
    }

    @Test func slowHTTPClientsDoNotDelayAtop() throws {
        let daemon = try DaemonProcess(extra: ["--listen", Self.address])
        defer { daemon.stopExpectingSuccess() }
        // Sixteen clients that send half a request and then nothing, and one that
        // asks for /metrics and never reads: they hold connections, not the event loop.
        var stalled: [Int32] = []
        defer { stalled.forEach { close($0) } }
        for index in 0..<17 {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var address = sockaddr_in(sin_family: sa_family_t(AF_INET), sin_port: UInt16(Self.port).bigEndian,
                                      sin_addr: in_addr(s_addr: UInt32(0x7f00_0001).bigEndian), sin_zero: (0, 0, 0, 0, 0, 0, 0, 0))
            var small: Int32 = 1024
            setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, socklen_t(MemoryLayout<Int32>.size))
            let connected = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            try #require(connected == 0)
            let request = index == 0 ? "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n" : "GET /metr"
            _ = request.withCString { Glibc.send(fd, $0, strlen($0), 0) }
            stalled.append(fd)
        }
        let atop = try AtopClient(daemon.socket)
        for _ in 0..<5 {
            let started = Date()
            _ = try atop.sample()
            #expect(Date().timeIntervalSince(started) < 1, "atop is answered at once")
        }
        // Seventeen held connections leave places (512) free: HTTP serves at once.
        #expect(try Curl.get("http://\(Self.address)/healthz").status == 200)
    }

    @Test func aProcessThatRenamesItselfKeepsItsTrafficInItsFirstGroup() throws {
        let daemon = try DaemonProcess(extra: ["--listen", Self.address])
        defer { daemon.stopExpectingSuccess() }
        // Named nacct-before, it sends 100 bytes and waits for a scrape; renamed, 50 more.
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        process.arguments = ["-c", """
            import ctypes, socket, sys
            libc = ctypes.CDLL(None)
            libc.prctl(15, b'nacct-before', 0, 0, 0)
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.sendto(b'r' * 100, ('127.0.0.1', 9))
            print('sent', flush=True); sys.stdin.readline()
            libc.prctl(15, b'nacct-after', 0, 0, 0)
            s.sendto(b'r' * 50, ('127.0.0.1', 9))
            """]
        let input = Pipe(), output = Pipe()
        process.standardInput = input
        process.standardOutput = output
        try process.run()
        #expect(LineReader(output.fileHandleForReading).next() == "sent")
        func bytes(_ group: String) throws -> Double? {
            let body = try Curl.get("http://\(Self.address)/metrics").body
            return Self.samples(body, "netacct_process_group_bytes_total").first { $0.labels == #"{group="\#(group)",protocol="udp",direction="tx"}"# }?.value
        }
        #expect(try bytes("nacct-before") == 100)
        try input.fileHandleForWriting.close()
        process.waitUntilExit()
        usleep(1_200_000) // the exit, taken by the exporter
        #expect(try bytes("nacct-before") == 150, "its whole traffic, under the name it had when first seen")
        #expect(try bytes("nacct-after") == nil)
    }

    /// A cgroup's totals are cumulative, as a unit's IP accounting is: its processes that have
    /// exited stay in them, in `/api/v1/cgroups` as in `/metrics`, exactly.
    @Test func aCgroupKeepsTheTrafficOfItsExitedProcessesInTheAPIAsInMetrics() throws {
        let cgroups = try TestCgroups()
        let daemon = try DaemonProcess(extra: ["--listen", Self.address])
        try Self.send(named: ["nacct-gone"], in: cgroups.root + cgroups.unit, count: 300, bytes: 411)
        usleep(1_500_000)
        let (status, body) = try Curl.get("http://\(Self.address)/api/v1/cgroups")
        #expect(status == 200)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any])
        let rows = try #require(object["cgroups"] as? [[String: Any]])
        let unit = try #require(rows.first { $0.string("cgroup") == cgroups.unit }, "\(body)")
        #expect(unit.int("udp_tx_bytes") == 300 * 411 && unit.int("udp_tx_packets") == 300)
        #expect(unit.int("processes") == 0 && unit.string("name") == "web.service")
        let metrics = try Curl.get("http://\(Self.address)/metrics")
        #expect(metrics.status == 200)
        let series = metrics.body.split(separator: "\n").first {
            $0.hasPrefix("netacct_cgroup_bytes_total{cgroup=\"\(cgroups.unit)\"") && $0.contains(#"protocol="udp",direction="tx""#)
        }
        let value: Int? = series.flatMap { line in line.split(separator: " ").last.flatMap { Int($0) } }
        #expect(value == 300 * 411, "\(String(describing: series))")
        daemon.stopExpectingSuccess()
    }

    @Test func theAPIAnswersWithTopsFieldNames() throws {
        let daemon = try DaemonProcess(extra: ["--listen", Self.address])
        defer { daemon.stopExpectingSuccess() }
        let (status, body) = try Curl.get("http://\(Self.address)/api/v1/processes")
        #expect(status == 200)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any])
        let processes = try #require(object["processes"] as? [[String: Any]])
        #expect(processes.allSatisfy { $0["pid"] is Int && $0["comm"] is String && $0["udp_tx_bytes"] is Int && $0["exited"] is Bool })
        let cgroups = try Curl.get("http://\(Self.address)/api/v1/cgroups")
        #expect(cgroups.status == 200 && cgroups.body.hasPrefix(#"{"cgroups":["#))
        let missing = try Curl.get("http://\(Self.address)/api/v1/nothing")
        #expect(missing.status == 404 && missing.body.contains("/metrics"))
    }
}
