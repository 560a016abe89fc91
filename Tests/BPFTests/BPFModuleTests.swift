import BPF
import BPFTestPrograms
import CSelftest
import Foundation
import Glibc
import NetacctKit
import Testing

let canLoadBPF = geteuid() == 0 && FileManager.default.fileExists(atPath: "/sys/kernel/btf/vmlinux")

/// The BPF module on its own test program: opening, read-only globals, typed maps, per-CPU
/// sums, raw_tp attachment, ring buffer records, statistics, and errors that name their subject.
@Suite(.serialized, .enabled(if: canLoadBPF, "needs root and a kernel with BTF"))
struct BPFModuleTests {
    static let getppidSyscall = 110 // x86_64

    func loadSelftest() throws -> BPFObject {
        let object = try BPFObject(image: BPFObjects.selftest)
        try object.setReadOnlyGlobal(BPFObjects.Selftest.Global.targetTgid, to: UInt32(getpid()))
        try object.setReadOnlyGlobal(BPFObjects.Selftest.Global.targetSyscall, to: Self.getppidSyscall)
        try object.load()
        return object
    }

    @Test func ringBufferDeliversTypedRecordsAndPerCPUCountsAreSummed() throws {
        let object = try loadSelftest()
        var events: [selftest_event] = []
        let ring = try RingBuffer<selftest_event>(object, name: "events") { events.append($0) }
        let link = try object.program("on_sys_enter").attach()
        for _ in 0..<5 { _ = getppid() }
        try ring.consume()
        withExtendedLifetime(link) {}
        #expect(events.map(\.sequence) == [1, 2, 3, 4, 5])
        #expect(events.allSatisfy { $0.pid == UInt32(getpid()) && $0.tid != 0 })
        #expect(ring.malformedRecords == 0)
        let calls = try PerCPUMap<UInt32, UInt64>(object, name: "calls")
        #expect(try calls.lookupSummed(0) == 5)
        #expect(try calls.entriesSummed().map(\.value) == [5])
    }

    @Test func iteratorLinksReadTypedRecords() throws {
        let object = try loadSelftest()
        let iterator = try object.program("own_threads").attachIterator()
        var helper = pthread_t()
        // A second thread, alive while the iterator runs.
        let block = DispatchSemaphore(value: 0)
        pthread_create(&helper, nil, { semaphore in
            Unmanaged<DispatchSemaphore>.fromOpaque(semaphore!).takeUnretainedValue().wait()
            return nil
        }, Unmanaged.passUnretained(block).toOpaque())
        let records = try iterator.readIterator(of: selftest_event.self)
        block.signal()
        pthread_join(helper, nil)
        #expect(records.allSatisfy { $0.pid == UInt32(getpid()) })
        #expect(records.contains { $0.tid == UInt32(getpid()) })
        #expect(records.count >= 2)
        #expect(Set(records.map(\.tid)).count == records.count)
    }

    @Test func aMappedArrayIsReadWithoutSystemCalls() throws {
        let object = try loadSelftest()
        let mapped = try MappedArray<UInt64>(object, name: "mapped")
        #expect(mapped.count == 8)
        let link = try object.program("on_sys_enter").attach()
        for _ in 0..<4 { _ = getppid() }
        withExtendedLifetime(link) {}
        var values: [UInt64] = []
        try mapped.forEach { values.append($0.value) }
        #expect(values == [4, 0, 0, 0, 0, 0, 0, 0])
        #expect { try MappedArray<UInt64>(object, name: "scratch") } throws: { error in
            "\(error)".contains("map 'scratch' of object 'selftest'")
        }
    }

    /// Every element is read once, in order, with its value and fields, also when the element
    /// size divides no page (24 bytes) and the array spans several pages.
    @Test func aMappedArrayOfManyPagesIsReadWhole() throws {
        let object = try loadSelftest()
        let writer = try Map<UInt32, selftest_element>(object, name: "pages")
        for index in 0..<UInt32(5000) {
            try writer.update(index, selftest_element(index: UInt64(index), square: UInt64(index) * UInt64(index),
                                                      tag: index ^ 0xA5A5, pad: 0))
        }
        let mapped = try MappedArray<selftest_element>(object, name: "pages")
        var seen = 0
        try mapped.forEach { element in
            let value = element.value
            #expect(element.index == seen)
            #expect(value.index == UInt64(seen) && value.square == UInt64(seen * seen) && value.tag == UInt32(seen) ^ 0xA5A5)
            #expect(element.field(at: MemoryLayout<selftest_element>.offset(of: \.tag)!, as: UInt32.self) == value.tag)
            seen += 1
        }
        #expect(seen == 5000)
    }

    @Test func detachingStopsTheProgram() throws {
        let object = try loadSelftest()
        var link: Link? = try object.program("on_sys_enter").attach()
        _ = getppid()
        link = nil
        _ = getppid()
        _ = link
        #expect(try PerCPUMap<UInt32, UInt64>(object, name: "calls").lookupSummed(0) == 1)
    }

    @Test func hashMapOperationsAndBatchReads() throws {
        let object = try loadSelftest()
        let map = try Map<UInt32, UInt64>(object, name: "scratch")
        #expect(try map.lookup(7) == nil)
        for key in UInt32(0)..<1000 { try map.update(key, UInt64(key) * 3) }
        #expect(try map.lookup(7) == 21)
        #expect(throws: BPFError.self) { try map.update(7, 1, .onlyNew) }
        try map.update(7, 8, .onlyExisting)
        #expect(try map.lookup(7) == 8)
        #expect(try map.delete(7))
        #expect(try !map.delete(7))
        let all = try map.entries()
        #expect(all.count == 999)
        #expect(all.allSatisfy { $0.value == UInt64($0.key) * 3 })
        let taken = try map.entries(deleting: true)
        #expect(taken.count == 999)
        #expect(try map.entries().isEmpty)
    }

    @Test func statisticsCountRuns() throws {
        let session = try StatisticsSession()
        let object = try loadSelftest()
        let program = try object.program("on_sys_enter")
        let link = try program.attach()
        for _ in 0..<3 { _ = getppid() }
        let statistics = try program.statistics()
        withExtendedLifetime((session, link)) {}
        // The program runs on every system call of every process; at least our three.
        #expect(statistics.runCount >= 3)
        #expect(statistics.runTimeNanoseconds > 0)
    }

    @Test func errorsNameTheirSubject() throws {
        let broken = BPFObjectImage(name: "broken", bytes: [0x7f, 0x45, 0x4c, 0x46, 1, 2, 3])
        #expect { try BPFObject(image: broken) } throws: { error in
            "\(error)".contains("object 'broken'")
        }
        let object = try BPFObject(image: BPFObjects.selftest)
        #expect { try object.setReadOnlyGlobal("no_such_global", to: UInt32(1)) } throws: { error in
            "\(error)".contains("global 'no_such_global' of object 'selftest'")
        }
        #expect { try object.setReadOnlyGlobal("target_tgid", to: UInt64(1)) } throws: { error in
            "\(error)".contains("4 bytes")
        }
        #expect { try object.program("nope") } throws: { error in
            "\(error)".contains("program 'nope' in object 'selftest'")
        }
        try object.load()
        #expect { try Map<UInt64, UInt64>(object, name: "scratch") } throws: { error in
            "\(error)".contains("map 'scratch' of object 'selftest'") && "\(error)".contains("4-byte keys")
        }
        #expect { try object.setReadOnlyGlobal("target_tgid", to: UInt32(1)) } throws: { error in
            "\(error)".contains("fixed at load")
        }
    }

    @Test func aProgramTheVerifierRefusesIsNamedWithItsReason() throws {
        let object = try BPFObject(image: BPFObjects.selftest)
        let rejected = try object.program("rejected")
        #expect(!rejected.autoload)
        #expect(rejected.section == "raw_tp/sys_enter")
        rejected.autoload = true
        #expect { try object.load() } throws: { error in
            let text = "\(error)"
            return text.contains("loading program 'rejected' of object 'selftest' failed")
                && text.contains("The verifier said:") && text.contains("map_value_or_null")
        }
        #expect(!object.isLoaded)
    }
}

/// The names generated with each embedded object, from its symbol table (no kernel needed).
struct GeneratedNamesTests {
    @Test func theSelftestObjectsNamesAreItsSymbols() throws {
        #expect(BPFObjects.Selftest.Program.allCases.map(\.rawValue) == ["on_sys_enter", "own_threads", "rejected"])
        #expect(BPFObjects.Selftest.Map.allCases.map(\.rawValue) == ["calls", "events", "mapped", "pages", "scratch"])
        #expect(BPFObjects.Selftest.Global.allCases.map(\.rawValue) == ["target_syscall", "target_tgid"])
        // Each names something libbpf finds in the object.
        let object = try BPFObject(image: BPFObjects.selftest)
        for program in BPFObjects.Selftest.Program.allCases { _ = try object.program(program) }
        for map in BPFObjects.Selftest.Map.allCases { try object.setMaxEntries(map, to: 1 << 12) }
    }
}

/// Each typed map accepts only the kernel map types it reads correctly, checked when it is made
/// (before load: no kernel needed); a refusal names the map, its type, the types the wrapper
/// takes, and the wrapper that fits.
struct MapTypeTests {
    typealias Maps = BPFObjects.Selftest.Map

    /// What `body` threw, in words; nil when it did not throw.
    func refusal(_ body: () throws -> Void) -> String? {
        do { try body() } catch { return "\(error)" }
        return nil
    }

    @Test func aPerCPUArrayOpenedAsAMapIsRefusedNamingBothTypes() throws {
        let object = try BPFObject(image: BPFObjects.selftest)
        let message = try #require(refusal { _ = try Map<UInt32, UInt64>(object, name: Maps.calls) })
        #expect(message.hasPrefix("typing map 'calls' of object 'selftest' failed: Invalid argument (errno 22)."))
        #expect(message.hasSuffix("The kernel has it as a percpu_array map; Map takes hash, lru_hash, array, lpm_trie, sk_storage, task_storage, inode_storage, cgroup_array maps (open it as a PerCPUMap)"))
    }

    @Test func aHashOpenedAsARingBufferIsRefused() throws {
        let object = try BPFObject(image: BPFObjects.selftest)
        let message = try #require(refusal { _ = try RingBuffer<selftest_event>(object, name: Maps.scratch) })
        #expect(message.contains("typing ring buffer 'scratch' of object 'selftest' failed"))
        #expect(message.hasSuffix("The kernel has it as a hash map; RingBuffer takes ringbuf maps (open it as a Map)"))
    }

    @Test func everyOtherWrapperRefusesAWrongType() throws {
        let object = try BPFObject(image: BPFObjects.selftest)
        let perCPU = try #require(refusal { _ = try PerCPUMap<UInt32, UInt64>(object, name: Maps.scratch) })
        #expect(perCPU.hasSuffix("a hash map; PerCPUMap takes percpu_hash, lru_percpu_hash, percpu_array maps (open it as a Map)"))
        let queue = try #require(refusal { _ = try QueueMap<selftest_event>(object, name: Maps.events) })
        #expect(queue.hasSuffix("a ringbuf map; QueueMap takes queue, stack maps (open it as a RingBuffer)"))
        let mapped = try #require(refusal { _ = try MappedArray<UInt64>(object, name: Maps.calls) })
        #expect(mapped.hasSuffix("a percpu_array map; MappedArray takes array maps (open it as a PerCPUMap)"))
        // An array, but not mmapable.
        let stack = try BPFObject(image: BPFObjects.stack)
        let unmappable = try #require(refusal { _ = try MappedArray<stack_packet>(stack, name: BPFObjects.Stack.Map.packets) })
        #expect(unmappable.contains("typing map 'packets' of object 'stack' failed"))
        #expect(unmappable.hasSuffix("an array map without BPF_F_MMAPABLE, which MappedArray needs (its map_flags)"))
    }

    @Test func theRightTypesAreTaken() throws {
        let object = try BPFObject(image: BPFObjects.selftest)
        _ = try Map<UInt32, UInt64>(object, name: Maps.scratch)
        _ = try Map<UInt32, selftest_element>(object, name: Maps.pages)
        _ = try PerCPUMap<UInt32, UInt64>(object, name: Maps.calls)
        // The type comes first, then the sizes.
        #expect { try Map<UInt64, UInt64>(object, name: Maps.scratch) } throws: { "\($0)".contains("8 and 8: the shared header") }
    }
}

/// Netfilter links (Linux >= 6.4), which Debian's libbpf 1.1 cannot make: the program counts
/// the packets of one length at IPv4 LOCAL_IN, exactly, and stops once the link is closed.
@Suite(.serialized, .enabled(if: canLoadBPF, "needs root and a kernel with BTF"))
struct NetfilterLinkTests {
    /// `count` UDP datagrams of `payload` bytes to a socket of this process on 127.0.0.1.
    func send(_ count: Int, payload: Int) throws {
        let receiver = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0), sender = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        defer { close(receiver); close(sender) }
        var address = sockaddr_in(sin_family: sa_family_t(AF_INET), sin_port: 0, sin_addr: in_addr(s_addr: UInt32(0x7f00_0001).bigEndian), sin_zero: (0, 0, 0, 0, 0, 0, 0, 0))
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        try withUnsafeMutablePointer(to: &address) { pointer in
            try pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { raw in
                try #require(bind(receiver, raw, length) == 0 && getsockname(receiver, raw, &length) == 0)
                let bytes = [UInt8](repeating: 0x6e, count: payload)
                for _ in 0..<count { try #require(sendto(sender, bytes, bytes.count, 0, raw, length) == payload) }
            }
        }
    }

    @Test func aNetfilterProgramCountsExactlyWhileItsLinkLives() throws {
        let object = try BPFObject(image: BPFObjects.netfilter)
        let program = try object.program(BPFObjects.Netfilter.Program.countLength)
        for name in BPFObjects.Netfilter.Program.allCases { try object.program(name).makeNetfilterProgram() }
        try object.setReadOnlyGlobal(BPFObjects.Netfilter.Global.targetLength, to: UInt32(20 + 8 + 1234))
        try object.load()
        let packets = try PerCPUMap<UInt32, UInt64>(object, name: BPFObjects.Netfilter.Map.packets)
        // A netfilter link is a Link like a tracepoint's: one array holds both.
        let tracing = try BPFModuleTests().loadSelftest()
        var links: [Link] = [try program.attachNetfilter(.ipv4, .localIn, priority: -100),
                             try tracing.program(BPFObjects.Selftest.Program.onSysEnter).attach()]
        #expect(links[0].subject == "program 'count_length' of object 'netfilter' to netfilter hook localIn (ipv4) at priority -100")
        #expect(links.allSatisfy { $0.fileDescriptor.rawValue >= 0 })
        try send(7, payload: 1234)
        #expect(try packets.lookupSummed(0) == 7, "each datagram once, at LOCAL_IN")
        links.removeAll()
        try send(3, payload: 1234)
        #expect(try packets.lookupSummed(0) == 7, "nothing once the link is closed")
    }

    @Test func aReservedPriorityIsRefusedWithTheReason() throws {
        let object = try BPFObject(image: BPFObjects.netfilter)
        let program = try object.program(BPFObjects.Netfilter.Program.countLength)
        for name in BPFObjects.Netfilter.Program.allCases { try object.program(name).makeNetfilterProgram() }
        try object.load()
        #expect { _ = try program.attachNetfilter(.ipv4, .localIn, priority: Int32.min) } throws: { error in
            "\(error)".contains("INT32_MIN and INT32_MAX, both excluded")
        }
    }
}

/// Socket storage, read from user space by the socket's descriptor, and a program run at a
/// socket's release (`bpf/tests/sockets.bpf.c`): the groundwork for per-connection counters whose
/// last interval survives the socket's close.
@Suite(.serialized, .enabled(if: geteuid() == 0, "loads BPF programs: needs root"))
struct SocketStorageTests {
    struct Record: Equatable { var cookie: UInt64; var sends: UInt64; var bytes: UInt64 }

    static func udpSocket(sending sends: Int, bytes: Int) throws -> (fd: Int32, cookie: UInt64) {
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        var address = sockaddr_in(sin_family: sa_family_t(AF_INET), sin_port: UInt16(9).bigEndian,
                                  sin_addr: in_addr(s_addr: UInt32(0x7f00_0001).bigEndian), sin_zero: (0, 0, 0, 0, 0, 0, 0, 0))
        let payload = [UInt8](repeating: 0x73, count: bytes)
        for _ in 0..<sends {
            let sent = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(fd, payload, payload.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            try #require(sent == bytes)
        }
        var cookie: UInt64 = 0, length = socklen_t(8)
        try #require(getsockopt(fd, SOL_SOCKET, 57 /* SO_COOKIE */, &cookie, &length) == 0)
        return (fd, cookie)
    }

    @Test func socketStorageCountsPerSocketAndTheReleaseKeepsItsLast() throws {
        let object = try BPFObject(image: BPFObjects.sockets)
        try object.setReadOnlyGlobal(BPFObjects.Sockets.Global.targetTgid, to: UInt32(getpid()))
        try object.load()
        let counting = try object.program(BPFObjects.Sockets.Program.countSend).attach()
        let root = try #require(CgroupNames().root, "a cgroup2 file system is mounted (found in mountinfo)")
        let release = try object.program(BPFObjects.Sockets.Program.keepReleased).attachCgroup(root)
        let first = try Self.udpSocket(sending: 3, bytes: 40)
        let second = try Self.udpSocket(sending: 2, bytes: 7)
        // A socket storage map's key, from user space, is a socket's descriptor.
        let counts = try Map<Int32, Record>(object, name: BPFObjects.Sockets.Map.counts)
        #expect(try counts.lookup(first.fd) == Record(cookie: first.cookie, sends: 3, bytes: 120))
        #expect(try counts.lookup(second.fd) == Record(cookie: second.cookie, sends: 2, bytes: 14))
        let released = try Map<UInt64, Record>(object, name: BPFObjects.Sockets.Map.released)
        #expect(try released.lookup(first.cookie) == nil, "not released yet")
        close(first.fd)
        #expect(try released.lookup(first.cookie) == Record(cookie: first.cookie, sends: 3, bytes: 120), "its last counts, kept at release")
        #expect(try released.lookup(second.cookie) == nil)
        close(second.fd)
        #expect(try released.lookup(second.cookie) == Record(cookie: second.cookie, sends: 2, bytes: 14))
        withExtendedLifetime((counting, release)) {}
    }
}

/// No result of netacct's programs may depend on stack memory they did not write (the verifier
/// lets a privileged program read it). `stack.bpf.c` runs the packet code of `latency out`'s
/// NAT decision on an IPv4 header this test wrote, into addresses filled with garbage first
/// (fails if `network_header` leaves a byte unwritten, as bpf/include/packet.h did), and, after
/// filling its stack with garbage, copies out a local struct written in part (fails for an
/// object compiled without `-ftrivial-auto-var-init=zero`): on any machine, not by luck.
@Suite(.serialized, .enabled(if: canLoadBPF, "needs root and a kernel with BTF"))
struct StackGarbageTests {
    static let getppidSyscall = 110 // x86_64

    @Test func resultsDependOnNothingTheStackHeldBefore() throws {
        let object = try BPFObject(image: BPFObjects.stack)
        try object.setReadOnlyGlobal(BPFObjects.Stack.Global.targetTgid, to: UInt32(getpid()))
        try object.setReadOnlyGlobal(BPFObjects.Stack.Global.targetSyscall, to: Self.getppidSyscall)
        try object.load()
        // 10.1.2.3 -> 10.4.5.6, UDP, 28 bytes: a header as the wire has it.
        var packet = stack_packet()
        let header: [UInt8] = [0x45, 0, 0, 28, 0, 1, 0, 0, 64, 17, 0, 0, 10, 1, 2, 3, 10, 4, 5, 6]
        withUnsafeMutableBytes(of: &packet.bytes) { for (i, byte) in header.enumerated() { $0[i] = byte } }
        try Map<UInt32, stack_packet>(object, name: BPFObjects.Stack.Map.packets).update(0, packet)
        // A result the program must overwrite whole: a byte it leaves shows 0x5A.
        let results = try Map<UInt32, stack_result>(object, name: BPFObjects.Stack.Map.results)
        var filled = stack_result()
        withUnsafeMutableBytes(of: &filled) { $0.initializeMemory(as: UInt8.self, repeating: 0x5A) }
        filled.runs = 0
        try results.update(0, filled)

        let link = try object.program(BPFObjects.Stack.Program.checkStack).attach()
        _ = getppid()
        withExtendedLifetime(link) {}
        let result = try #require(try results.lookup(0))
        #expect(result.runs == 1)
        let bytes = { (tuple: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8)) in
            withUnsafeBytes(of: tuple) { Array($0) }
        }
        #expect(bytes(result.saddr) == [10, 1, 2, 3] + Array(repeating: 0, count: 12))
        #expect(bytes(result.daddr) == [10, 4, 5, 6] + Array(repeating: 0, count: 12))
        #expect(result.translated == 0, "a packet's own source was taken for a translated one")
        #expect(withUnsafeBytes(of: result.untouched) { Array($0) } == [1, 0, 0, 0, 0, 0, 0, 0] + Array(repeating: 0, count: 24))
    }
}
