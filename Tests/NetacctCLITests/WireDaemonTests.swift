import Foundation
import Glibc
import NetacctServers
import Testing

/// The daemon's wire collector (`--wire`, `--atop-counts wire`): atop's per-process counters as
/// frames on the wire, the `wire` API and the `netacct_wire_*` families, against the veth's own
/// counters. VethPair's sender namespace has nothing else on its veth (no ARP, no IPv6), so its
/// counters are the test's datagrams exactly.
@Suite(.serialized, .enabled(if: isRoot, "loads BPF programs and makes network namespaces: needs root"))
struct WireDaemonTests {
    /// Of its own: suites run at once (CollectorMetricsTests listens from 19300).
    static let port = 22400 + Int(getpid() % 300)
    static var address: String { "127.0.0.1:\(port)" }
    static let datagrams = 300, payload = 100
    /// Ethernet, IPv4 and UDP headers, then the payload.
    static let frame = 14 + 20 + 8 + payload

    @Test func atopGetsEachProcessesFramesOnTheWireExactlyWithAtopCountsWire() throws {
        let veth = try VethPair()
        let daemon = try DaemonProcess(extra: ["--atop-counts", "wire"])
        defer { daemon.stopExpectingSuccess() }
        let atop = try AtopClient(daemon.socket)
        _ = try atop.sample()
        let before = (packets: try veth.statistic("tx_packets", onReceiver: false), bytes: try veth.statistic("tx_bytes", onReceiver: false))
        // The sender: ip netns exec becomes python3, so its PID is the Process's.
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
        process.arguments = ["netns", "exec", veth.sender, "/usr/bin/python3", "-c", """
            import socket
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            for _ in range(\(Self.datagrams)): s.sendto(b'y' * \(Self.payload), ('\(VethPair.receiverAddress)', 9999))
            """]
        try process.run()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
        let after = (packets: try veth.statistic("tx_packets", onReceiver: false), bytes: try veth.statistic("tx_bytes", onReceiver: false))
        #expect(after.packets - before.packets == Self.datagrams)
        #expect(after.bytes - before.bytes == Self.datagrams * Self.frame)

        // The sender exited: its record comes once, with its frames as the veth counted them
        // (UDP's share in the UDP fields), not its calls' payload (300 x 100 bytes).
        let senders = try atop.sample().filter { $0.pid == process.processIdentifier }
        #expect(senders.count == 1, "\(senders)")
        let sender = try #require(senders.first)
        #expect(sender.command == "python3")
        #expect(sender.traffic.udpTxPackets == UInt64(after.packets - before.packets))
        #expect(sender.traffic.udpTxBytes == UInt64(after.bytes - before.bytes))
        #expect(sender.traffic.tcpTxPackets == 0 && sender.traffic.tcpTxBytes == 0)
        #expect(sender.traffic.udpRxPackets == 0 && sender.traffic.tcpRxPackets == 0)
    }

    @Test func theWireAPIAndMetricsReconcileEachInterfaceWithItsOwnCounters() throws {
        let veth = try VethPair()
        let daemon = try DaemonProcess(extra: ["--wire", "--listen", Self.address, "--metrics-top", "100000"])
        defer { daemon.stopExpectingSuccess() }
        let before = (packets: try veth.statistic("tx_packets", onReceiver: false), bytes: try veth.statistic("tx_bytes", onReceiver: false))
        try veth.send(Self.datagrams, bytes: Self.payload, cpu: 1)
        let after = (packets: try veth.statistic("tx_packets", onReceiver: false), bytes: try veth.statistic("tx_bytes", onReceiver: false))
        // The daemon counted from its start, before which the sender's veth sent nothing (no ARP, no IPv6).
        #expect(before.packets == 0)

        let http = try Curl.get("http://\(Self.address)/api/v1/wire")
        #expect(http.status == 200)
        let reply = try #require(try JSONSerialization.jsonObject(with: Data(http.body.utf8)) as? [String: Any])
        let netns = try VethPair.sh("stat -L -c %i /run/netns/\(veth.sender)").trimmingCharacters(in: .whitespacesAndNewlines)
        let interfaces = try #require(reply["interfaces"] as? [[String: Any]])
        let va = try #require(interfaces.first { $0["name"] as? String == "va" && "\($0["netns"] ?? "")" == netns })
        let totals = try #require(va["totals"] as? [String: Any]), unattributed = try #require(va["unattributed"] as? [String: Any])
        #expect(totals["tx_packets"] as? Int == after.packets)
        #expect(totals["tx_bytes"] as? Int == after.bytes)
        #expect(unattributed["tx_packets"] as? Int == 0 && unattributed["tx_bytes"] as? Int == 0)
        let processes = try #require(reply["processes"] as? [[String: Any]])
        let senders = processes.filter { process in
            ((process["interfaces"] as? [[String: Any]]) ?? []).contains { "\($0["netns"] ?? "")" == netns }
        }
        #expect(senders.count == 1)
        let counts = try #require(senders.first?["counts"] as? [String: Any])
        #expect(counts["tx_packets"] as? Int == Self.datagrams && counts["tx_bytes"] as? Int == Self.datagrams * Self.frame)
        #expect(counts["udp_tx_packets"] as? Int == Self.datagrams)

        let scrape = try Curl.get("http://\(Self.address)/metrics")
        #expect(scrape.status == 200)
        let lines = scrape.body.split(separator: "\n").map(String.init)
        let ifindex = try VethPair.sh("ip netns exec \(veth.sender) cat /sys/class/net/va/ifindex").trimmingCharacters(in: .whitespacesAndNewlines)
        let labels = "{netns=\"\(netns)\",interface=\"va\",ifindex=\"\(ifindex)\",direction=\"tx\"}"
        #expect(lines.contains("netacct_wire_interface_packets_total\(labels) \(after.packets)"))
        #expect(lines.contains("netacct_wire_interface_bytes_total\(labels) \(after.bytes)"))
        #expect(lines.contains("netacct_wire_unattributed_packets_total\(labels) 0"))
        // The sender's process group has at least its frames (other python3 processes may add theirs).
        let group = try #require(lines.first { $0.hasPrefix("netacct_process_group_wire_bytes_total{group=\"python3\",direction=\"tx\"}") })
        #expect((UInt64(group.split(separator: " ").last ?? "") ?? 0) >= UInt64(Self.datagrams * Self.frame))
    }

    /// `top --wire` reads a daemon that counts the wire: here as a user who could not load the
    /// programs, let in by the daemon's --group; the interval's frames exact against the veth.
    @Test func topWireReadsTheDaemonAsAUserOfItsGroup() throws {
        let veth = try VethPair()
        let daemon = try DaemonProcess(extra: ["--wire", "--group", "nogroup"])
        defer { daemon.stopExpectingSuccess() }
        chmod(daemon.directory, 0o755)
        let top = try NetacctProcess(["top", "--wire", "--json", "-v", "--daemon-socket", daemon.api, "2", "1"],
                                     prefix: ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all"])
        try top.awaitErr("reading the wire counters of the netacct daemon", within: 20)
        let before = try veth.statistic("tx_packets", onReceiver: false)
        try veth.send(Self.datagrams, bytes: Self.payload, cpu: 0)
        #expect(try veth.statistic("tx_packets", onReceiver: false) - before == Self.datagrams)
        #expect(top.wait() == 0, "\(top.err)")
        // Other suites' veths are named va too: this one is the sender namespace's.
        let netns = try VethPair.sh("stat -L -c %i /run/netns/\(veth.sender)").trimmingCharacters(in: .whitespacesAndNewlines)
        let line = try #require(try JSONSerialization.jsonObject(with: Data(top.out.utf8)) as? [String: Any])
        let processes = try #require(line["processes"] as? [[String: Any]])
        let onVeth = processes.compactMap { process in
            ((process["interfaces"] as? [[String: Any]]) ?? []).first { "\($0["netns"] ?? "")" == netns }
        }
        #expect(onVeth.count == 1, "only the sender has frames there: \(processes)")
        #expect(onVeth.first?["tx_packets"] as? Int == Self.datagrams && onVeth.first?["tx_bytes"] as? Int == Self.datagrams * Self.frame)
        let interfaces = try #require(line["interfaces"] as? [[String: Any]])
        let va = try #require(interfaces.first { "\($0["netns"] ?? "")" == netns && $0["name"] as? String == "va" })
        #expect(va["tx_packets"] as? Int == Self.datagrams && va["tx_bytes"] as? Int == Self.datagrams * Self.frame)
        #expect((va["unattributed"] as? [String: Any])?["tx_packets"] as? Int == 0)
    }

    @Test func aWrongAtopCountsValueIsRefused() throws {
        let wrong = try Binary.run(["daemon", "--atop-counts", "frames"])
        #expect(wrong.status == 2)
        #expect(wrong.err.contains("calls") && wrong.err.contains("wire"), "\(wrong.err)")
    }
}
