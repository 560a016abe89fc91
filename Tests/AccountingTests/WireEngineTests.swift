import Foundation
import Glibc
import Accounting
import Testing

/// The wire engine's own bounds: an exited owner's counters leave the kernel's table whole and
/// stay in the samples for the retention time; a full table leaves frames unattributed and
/// counted. Each test makes its traffic on the loopback device of a namespace of its own.
@Suite(.serialized, .enabled(if: BPFEnvironment.available, "needs root and Linux >= 6.3 with BTF"))
struct WireEngineTests {
    /// A namespace with its loopback up, deleted by `deinit`.
    final class Namespace {
        let name = "nacct-wire-\(getpid() % 100_000)-\(UUID().uuidString.prefix(4))"
        init() throws { try shell("ip netns add \(name) && ip -n \(name) link set lo up") }
        deinit { _ = try? shell("ip netns del \(name)") }

        var inode: UInt32 {
            var info = stat()
            return stat("/run/netns/\(name)", &info) == 0 ? UInt32(truncatingIfNeeded: info.st_ino) : 0
        }

        /// A python3 process in the namespace that sends `count` 100-byte datagrams to a socket
        /// of its own on 127.0.0.1, then exits: its PID.
        @discardableResult
        func send(_ count: Int) throws -> Int32 {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
            process.arguments = ["netns", "exec", name, "/usr/bin/python3", "-c", """
                import socket
                r = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); r.bind(('127.0.0.1', 0))
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                for _ in range(\(count)): s.sendto(b'w' * 100, r.getsockname())
                """]
            try process.run()
            process.waitUntilExit()
            #expect(process.terminationStatus == 0)
            return process.processIdentifier
        }
    }

    /// 20 + 8 + 100: each datagram's frame on lo, which counts without the Ethernet header (as
    /// lo's own counters do).
    static let frame: UInt64 = 128

    @discardableResult
    static func shell(_ script: String) throws -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-ec", script]
        try process.run()
        process.waitUntilExit()
        return process.terminationStatus
    }

    @Test func anExitedOwnerLeavesTheKernelsTableWholeAndStaysForTheRetention() throws {
        let namespace = try Namespace()
        let engine = try WireEngine(options: .init(retention: 2))
        let pid = try namespace.send(50)
        let lo = InterfaceID(netns: namespace.inode, ifindex: 1)
        func counters(_ sample: WireSample) -> WireCounters? {
            sample.owned.first { $0.key.pid == pid }?.value[lo]
        }
        // Exited and quiet for a second: its cells retired (found exited within ten samples).
        var sample = try engine.sample()
        var samples = 1
        while engine.ownersInKernel.contains(where: { $0.pid == pid }) && samples < 40 {
            usleep(200_000)
            sample = try engine.sample()
            samples += 1
        }
        #expect(!engine.ownersInKernel.contains { $0.pid == pid }, "still in the kernel's table after \(samples) samples")
        let kept = try #require(counters(sample))
        #expect(kept.txPackets == 50 && kept.txBytes == 50 * Self.frame)
        #expect(kept.rxPackets == 50 && kept.rxBytes == 50 * Self.frame)
        #expect(sample.processes.first { $0.key.pid == pid }?.value.exited == true)
        // The totals on lo are the same frames, and no process owns any other.
        #expect(sample.interfaces[lo]?.totals.txPackets == 50)
        #expect(sample.unattributed(lo).isZero)
        // Its cells are freed a second later, kept here whole; past the retention it is gone.
        usleep(1_100_000)
        let freed = try engine.sample()
        #expect(counters(freed) == kept)
        usleep(2_100_000)
        #expect(counters(try engine.sample()) == nil)
    }

    @Test func aFullOwnerTableLeavesFramesUnattributedAndCountsThem() throws {
        let namespace = try Namespace()
        let engine = try WireEngine(options: .init(ownerEntries: 1))
        let before = try engine.sample()
        try namespace.send(20)
        try namespace.send(30)
        let sample = try engine.sample()
        let lo = InterfaceID(netns: namespace.inode, ifindex: 1)
        let attributed = sample.owned.values.compactMap { $0[lo] }.reduce(WireCounters(), +)
        let lost = sample.losses.ownersFull - before.losses.ownersFull
        // One entry in all (perhaps another process's, elsewhere): every frame on lo that found
        // no room is unattributed there, and counted (out and in, one count each; frames of other
        // namespaces, where other suites run at the same time, may add to the count).
        #expect(sample.interfaces[lo]?.totals.txPackets == 50)
        let unattributed = sample.unattributed(lo)
        #expect(Int64(attributed.txPackets) + unattributed.txPackets == 50)
        #expect(Int64(lost) >= unattributed.txPackets + unattributed.rxPackets)
        #expect(lost >= 40, "\(lost) frames left unattributed")
        #expect(sample.losses.phrases.first?.contains("unattributed") == true)
    }
}
