import Foundation
import Glibc
import Testing

@Suite(.serialized)
struct TopCommandTests {
    @Test(.enabled(if: isRoot, "loads BPF programs: needs root"))
    func jsonStreamsOneLinePerIntervalWithExactCounters() throws {
        let sender = try SteppedSender(steps: [["hello", "netacct json"]])
        let top = try NetacctProcess(["top", "0.2", "--json", "--threads", "-p", String(sender.pid)])
        // The first line means the programs are attached: only then send.
        let first = try top.line("its first interval")
        #expect(first.contains("\"processes\":[]"))
        sender.step()
        sender.waitForExit()
        var objects: [[String: Any]] = []
        while let line = top.nextLine() {
            let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            objects.append(object)
            let processes = object["processes"] as? [[String: Any]] ?? []
            if processes.contains(where: { $0["exited"] as? Bool == true }) || objects.count > 50 { break }
        }
        top.stop(SIGTERM)

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
        let top = try NetacctProcess(["top", "0.3", "4", "-C", "-p", String(sender.pid)])
        // Its first output means the programs are attached: only then send (a fixed wait
        // loses the datagram when the machine is busy).
        var text = ""
        while true {
            let line = try top.line("its first screen")
            text += line + "\n"
            if line.contains("loadavg:") { break }
        }
        sender.step()
        sender.waitForExit()
        while let line = top.nextLine() { text += line + "\n" }
        top.expectExit(0)
        #expect(text.components(separatedBy: "loadavg:").count - 1 == 4)
        let row = try #require(text.split(separator: "\n").first { $0.hasPrefix(String(format: "%7d", sender.pid)) })
        let fields = row.split(separator: " ")
        // PID COMM CGROUP, then TCP rx/tx and UDP rx/tx packets and bytes.
        #expect(fields[1] == "bash*")
        #expect(Array(fields.suffix(8)) == ["0", "0B", "0", "0B", "0", "0B", "1", "10B"])
    }

    @Test func badOptionsAreRefusedClearly() throws {
        let zero = try Binary.run(["top", "0"])
        #expect(zero.status == 2)
        #expect(zero.err.contains("The interval must be a positive number of seconds"))
        let badSort = try Binary.run(["top", "--sort", "sideways"])
        #expect(badSort.status == 2)
        #expect(badSort.err.contains("sideways"))
        let badPID = try Binary.run(["top", "-p", "-3"])
        #expect(badPID.status == 2)
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

    /// Root with CAP_BPF and CAP_PERFMON only (a container's): the tracing programs load, the
    /// networking ones (--wire's cgroup programs) are refused, and the error says which
    /// capability they need.
    @Test(.enabled(if: isRoot, "needs root to drop capabilities"))
    func withTracingCapabilitiesOnlyNetworkingProgramsSayTheyNeedNetAdmin() throws {
        let limited = ["setpriv", "--bounding-set=-all,+bpf,+perfmon"]
        let counted = try Binary.run(["top", "--json", "0.2", "1"], prefix: limited)
        #expect(counted.status == 0, "\(counted.err)")
        let wire = try Binary.run(["top", "--wire", "0.2", "1"], prefix: limited)
        #expect(wire.status == 1)
        #expect(wire.err.contains("of object 'wire' failed: Operation not permitted") && wire.err.contains("needs root, or CAP_BPF and CAP_NET_ADMIN"),
                "\(wire.err)")
    }

    @Test(.enabled(if: isRoot, "loads BPF programs: needs root"))
    func unknownCgroupIsAnError() throws {
        let result = try Binary.run(["top", "--cgroup", "/no/such/cgroup", "1", "1"])
        #expect(result.status == 1)
        #expect(result.err.contains("No cgroup /no/such/cgroup"))
    }
}
