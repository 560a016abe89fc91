import Foundation
import Glibc
import Testing

/// netacct on a real older kernel: Debian bookworm's own 6.1 kernel package (what Debian 12,
/// Amazon Linux 2023 and many clouds run), fetched at test time and booted under qemu with an
/// initramfs holding this build's netacct (scripts/vm/check-kernel). The kernel has no
/// sock:sock_send_length (6.3), so the accounting runs on the syscall engine; the test checks
/// its counters exactly, through netacct top --json and the daemon's atop protocol, against
/// the traffic generator's own count of its calls, and that every other command says what
/// the kernel lacks. One boot serves the suite: about 35 s under software emulation (this
/// machine's /dev/kvm is a nested hypervisor that cannot run it), the first time 10 s more for
/// the kernel package's download (26 MB, cached in ~/.cache/netacct-vm).
@Suite(.serialized, .enabled(if: isRoot, "boots Debian's 6.1 kernel under qemu: needs root (apt, KVM)"))
struct OlderKernelTests {
    /// What the VM printed, parsed: one boot for all the tests.
    struct Console {
        let lines: [String]
        let status: Int32

        func values(_ tag: String) -> [String] {
            lines.compactMap { $0.hasPrefix(tag + " ") ? String($0.dropFirst(tag.count + 1)) : nil }
        }

        /// "tcp_tx_packets=1 tcp_tx_bytes=…" as a dictionary.
        static func counters(_ text: String) -> [String: UInt64] {
            Dictionary(uniqueKeysWithValues: text.split(separator: " ").compactMap { pair in
                let parts = pair.split(separator: "=")
                guard parts.count == 2, let value = UInt64(parts[1]) else { return nil }
                return (String(parts[0]), value)
            })
        }
    }

    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()

    static let console: Result<Console, Error> = Result {
        let process = Process()
        process.executableURL = repository.appendingPathComponent("scripts/vm/check-kernel")
        process.arguments = [Binary.url.path, "linux-image-cloud-amd64"]
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let error = PipeDrain(err.fileHandleForReading)
        let output = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        let said = String(decoding: error.wait(), as: UTF8.self)
        FileHandle.standardError.write(Data("check-kernel: \(said)".utf8))
        let lines = output.split(whereSeparator: { $0 == "\n" || $0 == "\r\n" }).map {
            String($0).trimmingCharacters(in: .whitespacesAndNewlines)
        }
        return Console(lines: lines, status: process.terminationStatus)
    }

    static let counterNames = ["tcp_tx_packets", "tcp_tx_bytes", "tcp_rx_packets", "tcp_rx_bytes",
                               "udp_tx_packets", "udp_tx_bytes", "udp_rx_packets", "udp_rx_bytes"]

    @Test func theAccountingIsExactOnDebian12sKernel() throws {
        let console = try Self.console.get()
        #expect(console.status == 0, "the VM's run: \(console.lines.suffix(30).joined(separator: "\n"))")
        let kernel = try #require(console.values("KERNEL").first)
        #expect(kernel.hasPrefix("6.1."), "booted \(kernel)")
        let child = try #require(console.values("CHILD").first.flatMap { Int($0) }, "no traffic ran: \(console.lines.suffix(30))")
        let expected = Console.counters(try #require(console.values("EXPECT").first))
        #expect(expected.count == 8 && expected.values.allSatisfy { $0 > 0 })
        // The daemon, asked as atop asks, after the child exited.
        let atop = Console.counters(try #require(console.values("ATOP").first))
        #expect(atop == expected, "atop protocol: \(atop) for \(expected); the daemon said: \(console.values("DAEMON"))")
        // top --json: the child's rows (deltas per interval) add up to its calls.
        var sums: [String: UInt64] = [:]
        for line in console.values("TOP") {
            let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            for row in object["processes"] as? [[String: Any]] ?? [] where (row["pid"] as? Int) == child {
                for name in Self.counterNames { sums[name, default: 0] += (row[name] as? NSNumber)?.uint64Value ?? 0 }
            }
        }
        #expect(sums == expected, "top --json: \(sums) for \(expected)")
        #expect(console.values("TOP-STATUS") == ["0"], "\(console.values("TOP-ERR"))")
        #expect(console.values("DAEMON-STATUS") == ["0"], "the daemon on SIGTERM: \(console.values("DAEMON"))")
        // Asked for collectors this kernel cannot host, it said why and served the others.
        let daemon = console.values("DAEMON").joined(separator: "\n")
        #expect(daemon.contains("not serving drops: Kernel \(kernel) ") && daemon.contains("Linux >= 6.12"), "\(daemon)")
        #expect(daemon.contains("not serving connection events: Kernel \(kernel) ") && daemon.contains("Linux >= 6.2"), "\(daemon)")
        #expect(daemon.contains("not serving TCP health: Kernel \(kernel) has no bpf_rdonly_cast kfunc: TCP health needs Linux >= 6.2"), "\(daemon)")
        // It said which engine runs and what it cannot see.
        let notice = console.values("TOP-ERR").joined(separator: "\n")
        #expect(notice.contains("counting with the syscall engine (kernel \(kernel) has no sock:sock_send_length tracepoint"), "\(notice)")
        #expect(notice.contains("io_uring"))
    }

    @Test func everyOtherCommandRunsOrSaysWhatTheKernelLacks() throws {
        let console = try Self.console.get()
        let kernel = try #require(console.values("KERNEL").first)
        let tools = console.values("TOOL").map { $0.split(separator: "|", omittingEmptySubsequences: false).map(String.init) }
        #expect(tools.count == 7, "\(console.lines.suffix(30))")
        // nic runs there, reading segment counts with a helper call (no bpf_rdonly_cast before 6.2).
        let nic = try #require(tools.first { $0.first?.hasPrefix("nic") == true })
        #expect(nic.count == 3 && nic[1] == "0", "nic on \(kernel): \(nic)")
        for tool in tools where tool.count == 3 && !tool[0].hasPrefix("nic") {
            let (command, status, message) = (tool[0], tool[1], tool[2])
            #expect(status == "1", "\(command) exited \(status): \(message)")
            // In words: the running kernel, what it lacks, the kernel that has it.
            #expect(message.hasPrefix("netacct: Kernel \(kernel) "), "\(command): \(message)")
            #expect(message.contains("Linux >="), "\(command): \(message)")
        }
        let tcp = try #require(tools.first { $0.first?.hasPrefix("top --tcp") == true })
        #expect(tcp.last == "netacct: Kernel \(kernel) has no bpf_rdonly_cast kfunc: TCP health needs Linux >= 6.2.", "\(tcp)")
        let sock = try #require(tools.first { $0.first?.hasPrefix("top --json") == true })
        #expect(sock.last?.contains("has no sock:sock_send_length tracepoint, which the sock engine needs (Linux >= 6.3)") == true, "\(sock)")
    }
}
