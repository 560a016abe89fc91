import CNetacct
import Latency
import NetacctKit
import Testing

struct LatencyHistogramTests {
    /// Every value falls in the bucket whose range holds it, for the whole span the kernel counts.
    @Test func bucketsAndRangesAgreeWithEachOther() {
        var values: [UInt64] = Array(0...70)
        for shift in 3..<40 { values += [(1 << shift) - 1, 1 << shift, (1 << shift) + (1 << (shift - 2)), (1 << shift) * 3 / 2] }
        for value in values {
            let bucket = LatencyHistogram.bucket(of: value)
            let (lower, upper) = LatencyHistogram.range(of: bucket)
            #expect(lower <= value && value < upper, "\(value) in bucket \(bucket) [\(lower), \(upper))")
        }
        #expect(LatencyHistogram.bucket(of: UInt64.max) == LatencyHistogram.bucketCount - 1, "the last bucket holds everything above")
    }

    /// 1..10000 µs, one each: the percentiles within a quarter octave, the maximum exact.
    @Test func percentilesAreWithinAQuarterOctaveAndNeverAboveTheMaximum() {
        var histogram = LatencyHistogram()
        for microseconds in 1...10_000 { histogram.add(UInt64(microseconds) * 1000) }
        for (p, exact) in [(0.5, 5_000_000.0), (0.9, 9_000_000.0), (0.99, 9_900_000.0)] {
            let estimate = Double(histogram.percentile(p) ?? 0)
            #expect(abs(estimate - exact) / exact < 0.19, "p\(Int(p * 100)): \(estimate) for \(exact)")
        }
        #expect(histogram.percentile(1) == 10_000_000 && histogram.maxNanoseconds == 10_000_000)
        #expect(histogram.octaves.map(\.count).reduce(0, +) == 10_000)
        #expect(LatencyHistogram().percentile(0.5) == nil, "nothing counted: no percentile")
    }

    @Test func aMissedStageIsNullInJSONAndADashInTheTable() {
        var event = netacct_latency_event()
        event.family = 2
        event.sport = 40000
        event.dport = 7000
        event.stage_ns = (0, 3500, 1200)
        event.total_ns = 4700
        event.missed = 1    // the IP point was not seen: MAC's time is in IP's
        var renderer = LatencyRenderer(direction: .in, wallClockOffset: 0)
        var json = TextBuffer(), row = TextBuffer()
        renderer.json(event, into: &json)
        renderer.row(event, into: &row)
        let text = String(decoding: json.bytes, as: UTF8.self)
        #expect(text.contains("\"total_us\":4.700,\"stages\":{\"mac_us\":null,\"ip_us\":3.500,\"tcp_us\":1.200}}"))
        let columns = String(decoding: row.bytes, as: UTF8.self).split(separator: " ").map(String.init)
        #expect(columns[6...9] == ["4.70", "-", "3.50", "1.20"])
    }
}
