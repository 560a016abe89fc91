import BPF
import CSelftest
import Glibc
import Testing

/// In BPFModuleTests's serialized suite: its other tests call getppid too.
extension BPFModuleTests {
    @Test func aRingBufferHandsBackBatchesInTheKernelsOrderEachRecordOnce() throws {
        let object = try loadSelftest()
        let ring = try RingBuffer<selftest_event>(object, name: "events")
        let link = try object.program("on_sys_enter").attach()
        #expect(try ring.poll(milliseconds: 0).isEmpty)
        for _ in 0..<3 { _ = getppid() }
        #expect(try ring.poll(milliseconds: 1000).map(\.sequence) == [1, 2, 3])
        for _ in 0..<2 { _ = getppid() }
        #expect(try ring.drain().map(\.sequence) == [4, 5], "what is ready, without waiting")
        #expect(try ring.drain().isEmpty && ring.poll(milliseconds: 0).isEmpty)
        withExtendedLifetime(link) {}
        #expect(ring.malformedRecords == 0)
    }
}
