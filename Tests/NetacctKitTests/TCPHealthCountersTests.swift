@testable import NetacctKit
import Testing

/// The TCP health counters' arithmetic: the kernel's per-socket counters are 32 bits and wrap,
/// its byte counts and RTT sum are 64; a percentile is the middle of its log2 bucket.
struct TCPHealthCountersTests {
    @Test func aSocketsDeltaCarriesAcrossTheWrapOfItsThirtyTwoBitCounters() {
        var earlier = TCPHealthCounters(), now = TCPHealthCounters()
        earlier.retransmittedSegments.fast = UInt64(UInt32.max - 2)
        now.retransmittedSegments.fast = 4                         // wrapped: 7 more
        earlier.retransmittedBytes.fast = UInt64(UInt32.max) + 10  // 64 bits: never wraps
        now.retransmittedBytes.fast = UInt64(UInt32.max) + 10_010
        earlier.resetsSent = 5
        now.resetsSent = 6
        earlier.rtt.buckets[7] = UInt64(UInt32.max)
        now.rtt.buckets[7] = 1
        earlier.rtt.sumMicroseconds = 1 << 40
        now.rtt.sumMicroseconds = (1 << 40) + 300
        let delta = TCPHealthCounters.socketDelta(now, earlier)
        #expect(delta.retransmittedSegments.fast == 7)
        #expect(delta.retransmittedBytes.fast == 10_000)
        #expect(delta.resetsSent == 1)
        #expect(delta.rtt.buckets[7] == 2)
        #expect(delta.rtt.sumMicroseconds == 300)
        #expect(delta.retransmitted == 7 && delta.retransmittedSegments.total == 7)
    }

    @Test func anIntervalNeverGoesBackAndSumsAddUp() {
        var a = TCPHealthCounters(), b = TCPHealthCounters()
        a.retransmittedSegments.timeout = 3
        a.resetsReceived = 2
        b.retransmittedSegments.timeout = 5
        b.retransmittedSegments.syn = 1
        let sum = a + b
        #expect(sum.retransmittedSegments.timeout == 8 && sum.retransmitted == 9)
        #expect(a.since(b).retransmittedSegments.timeout == 0, "a counter never goes back")
        #expect(sum.since(a) == b.withResetsReceived(0))
    }

    @Test func percentilesAreTheMiddleOfTheirBucket() {
        var h = RTTHistogram()
        #expect(h.quantile(0.5) == nil)
        h.buckets[13] = 90   // [8192, 16384) us: about 10 ms
        h.buckets[20] = 10   // [1048576, 2097152) us: about 1.5 s
        #expect(h.count == 100)
        let median = h.quantile(0.5) ?? 0
        #expect(median > 8192 && median < 16384 && abs(median - 8192 * 2.0.squareRoot()) < 1)
        let p99 = h.quantile(0.99) ?? 0
        #expect(p99 > 1_048_576 && p99 < 2_097_152)
        #expect(RTTHistogram.upperBound(ofBucket: 13) == 0.016384)
        #expect(RTTHistogram.upperBound(ofBucket: RTTHistogram.bucketCount - 1) == nil)
    }
}

private extension TCPHealthCounters {
    func withResetsReceived(_ n: UInt64) -> Self {
        var c = self
        c.resetsReceived = n
        return c
    }
}
