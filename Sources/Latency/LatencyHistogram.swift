import CNetacct

/// One stage's latencies over an interval, as the kernel counted them (`struct
/// netacct_latency_histogram`, summed over CPUs): log-linear buckets of nanoseconds, four per
/// power of two, so a percentile read from them is within a quarter of an octave (19%) of the
/// truth, and never above the maximum, which is exact.
public struct LatencyHistogram: Sendable, Equatable {
    public static let bucketCount = Int(NETACCT_LATENCY_BUCKETS)

    public var count: UInt64 = 0
    public var sumNanoseconds: UInt64 = 0
    public var maxNanoseconds: UInt64 = 0
    public var buckets = [UInt64](repeating: 0, count: LatencyHistogram.bucketCount)

    public init() {}

    init(_ record: netacct_latency_histogram) {
        count = record.count
        sumNanoseconds = record.sum_ns
        maxNanoseconds = record.max_ns
        withUnsafeBytes(of: record.buckets) { raw in
            for index in 0..<Self.bucketCount { buckets[index] = raw.load(fromByteOffset: index * 8, as: UInt64.self) }
        }
    }

    /// Adds one value as the kernel does (histogram.h): for tests and merging.
    public mutating func add(_ nanoseconds: UInt64) {
        count += 1
        sumNanoseconds &+= nanoseconds
        maxNanoseconds = max(maxNanoseconds, nanoseconds)
        buckets[Self.bucket(of: nanoseconds)] += 1
    }

    public mutating func merge(_ other: LatencyHistogram) {
        count += other.count
        sumNanoseconds &+= other.sumNanoseconds
        maxNanoseconds = max(maxNanoseconds, other.maxNanoseconds)
        for index in buckets.indices { buckets[index] += other.buckets[index] }
    }

    /// The bucket of a value, as histogram.h computes it.
    public static func bucket(of value: UInt64) -> Int {
        if value < 4 { return Int(value) }
        let log = 63 - value.leadingZeroBitCount
        let bucket = 4 * log - 4 + Int((value >> UInt64(log - 2)) & 3)
        return min(bucket, bucketCount - 1)
    }

    /// The values a bucket holds: [lower, upper).
    public static func range(of bucket: Int) -> (lower: UInt64, upper: UInt64) {
        if bucket < 4 { return (UInt64(bucket), UInt64(bucket) + 1) }
        let log = UInt64(bucket / 4 + 1), step = UInt64(1) << (log - 2)
        let lower = (UInt64(1) << log) + UInt64(bucket % 4) * step
        return (lower, bucket == bucketCount - 1 ? UInt64.max : lower + step)
    }

    /// The value below which a fraction `p` of the values lie, in nanoseconds (interpolated
    /// within its bucket, at most the maximum); nil when nothing was counted.
    public func percentile(_ p: Double) -> UInt64? {
        guard count > 0 else { return nil }
        let rank = max(1, (p * Double(count)).rounded(.up))
        var below: UInt64 = 0
        for (index, inBucket) in buckets.enumerated() where inBucket > 0 {
            if Double(below + inBucket) >= rank {
                let (lower, bound) = Self.range(of: index)
                let upper = min(bound, maxNanoseconds &+ 1)
                let span = upper > lower ? Double(upper - lower) : 0
                let value = Double(lower) + span * (rank - Double(below)) / Double(inBucket)
                return min(UInt64(value), maxNanoseconds)
            }
            below += inBucket
        }
        return maxNanoseconds
    }

    /// The counts by power of two, as the histogram is shown: (the octave's upper bound in
    /// nanoseconds, exclusive, count), from the lowest non-empty octave to the highest.
    public var octaves: [(upper: UInt64, count: UInt64)] {
        var byOctave: [Int: UInt64] = [:]
        for (index, inBucket) in buckets.enumerated() where inBucket > 0 {
            let lower = Self.range(of: index).lower
            byOctave[lower == 0 ? 0 : 63 - lower.leadingZeroBitCount, default: 0] += inBucket
        }
        guard let low = byOctave.keys.min(), let high = byOctave.keys.max() else { return [] }
        return (low...high).map { octave in (UInt64(1) << UInt64(octave + 1), byOctave[octave] ?? 0) }
    }
}
