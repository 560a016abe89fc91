/// TCP health counters (tcp_health.h's, as the tools, the daemon's replies and the metrics carry them).

/// Why a segment was sent again, as the kernel tells it (tcp_health.h).
public enum RetransmitCause: String, CaseIterable, Sendable, Codable {
    /// A retransmission timeout (RTO): the Loss state.
    case timeout
    /// Fast retransmit after duplicate acknowledgements or SACK: the Recovery state.
    case fast
    /// A tail-loss probe: sent again in the Open, Disorder or CWR state.
    case probe
    /// A connect's SYN.
    case syn
    /// A listener's SYN-ACK.
    case synack
}

/// One count per retransmission cause.
public struct ByCause: Sendable, Hashable, Codable {
    public var timeout: UInt64 = 0
    public var fast: UInt64 = 0
    public var probe: UInt64 = 0
    public var syn: UInt64 = 0
    public var synack: UInt64 = 0

    public init(timeout: UInt64 = 0, fast: UInt64 = 0, probe: UInt64 = 0, syn: UInt64 = 0, synack: UInt64 = 0) {
        (self.timeout, self.fast, self.probe, self.syn, self.synack) = (timeout, fast, probe, syn, synack)
    }

    public subscript(cause: RetransmitCause) -> UInt64 {
        get {
            switch cause {
            case .timeout: timeout
            case .fast: fast
            case .probe: probe
            case .syn: syn
            case .synack: synack
            }
        }
        set {
            switch cause {
            case .timeout: timeout = newValue
            case .fast: fast = newValue
            case .probe: probe = newValue
            case .syn: syn = newValue
            case .synack: synack = newValue
            }
        }
    }

    public var total: UInt64 { RetransmitCause.allCases.reduce(0) { $0 &+ self[$1] } }

    public static func combining(_ a: Self, _ b: Self, _ operation: (UInt64, UInt64) -> UInt64) -> Self {
        var result = Self()
        for cause in RetransmitCause.allCases { result[cause] = operation(a[cause], b[cause]) }
        return result
    }
}

/// Smoothed RTT samples (one per round trip of a connection) by floor(log2(microseconds)):
/// bucket 0 holds 0-1 us, bucket k [2^k, 2^(k+1)) us, the last everything from 2^26 us on.
public struct RTTHistogram: Sendable, Hashable, Codable {
    public static let bucketCount = 28  // NETACCT_TCP_RTT_BUCKETS (tcp_health.h; the engine checks)
    public var buckets: [UInt64]
    /// The samples' sum, in microseconds.
    public var sumMicroseconds: UInt64 = 0

    public init(buckets: [UInt64] = Array(repeating: 0, count: RTTHistogram.bucketCount), sumMicroseconds: UInt64 = 0) {
        (self.buckets, self.sumMicroseconds) = (buckets, sumMicroseconds)
    }

    public var count: UInt64 { buckets.reduce(0, &+) }
    public var isEmpty: Bool { count == 0 }

    /// The upper bound of bucket `index`, in seconds (the last is unbounded).
    public static func upperBound(ofBucket index: Int) -> Double? {
        index == bucketCount - 1 ? nil : Double(UInt64(1) << UInt64(index + 1)) / 1e6
    }

    /// The lower bound of bucket `index`, in microseconds.
    public static func lowerBound(ofBucket index: Int) -> UInt64 { index == 0 ? 0 : UInt64(1) << UInt64(index) }

    /// The `q` quantile (0...1) in microseconds: the geometric middle of the bucket it falls in
    /// (within a factor of 1.41 of the truth), nil with no samples.
    public func quantile(_ q: Double) -> Double? {
        let total = count
        guard total > 0 else { return nil }
        let rank = max(1, UInt64((Double(total) * q).rounded(.up)))
        var seen: UInt64 = 0
        for (index, n) in buckets.enumerated() {
            seen += n
            if seen >= rank {
                return index == 0 ? 1 : Double(Self.lowerBound(ofBucket: index)) * 2.0.squareRoot()
            }
        }
        return nil
    }

    public static func combining(_ a: Self, _ b: Self, _ operation: (UInt64, UInt64) -> UInt64) -> Self {
        Self(buckets: zip(a.buckets, b.buckets).map { operation($0, $1) }, sumMicroseconds: operation(a.sumMicroseconds, b.sumMicroseconds))
    }
}

/// A process's, cgroup's or connection's TCP health counters.
public struct TCPHealthCounters: Sendable, Hashable, Codable {
    public var retransmittedSegments = ByCause()
    public var retransmittedBytes = ByCause()
    public var resetsSent: UInt64 = 0
    public var resetsReceived: UInt64 = 0
    /// Connects that failed (SYN_SENT -> CLOSE: refused, reset, timed out).
    public var failedConnects: UInt64 = 0
    /// Connections given up after retransmission timeouts (closed with ETIMEDOUT).
    public var timeouts: UInt64 = 0
    /// The peer's advertised window went to zero.
    public var zeroWindowsReceived: UInt64 = 0
    /// This side's advertised window stalled at zero.
    public var zeroWindowsSent: UInt64 = 0
    /// Segments that arrived while this side advertised a zero window.
    public var windowProbes: UInt64 = 0
    /// Out-of-order segments received (the kernel's per-connection count).
    public var outOfOrder: UInt64 = 0
    /// Segments the peer reported received twice (DSACK).
    public var dsacks: UInt64 = 0
    public var rtt = RTTHistogram()

    public init() {}

    public var isZero: Bool { self == Self() }
    public var retransmitted: UInt64 { retransmittedSegments.total }
    public var resets: UInt64 { resetsSent &+ resetsReceived }

    public static func combining(_ a: Self, _ b: Self, _ operation: (UInt64, UInt64) -> UInt64) -> Self {
        var r = Self()
        r.retransmittedSegments = .combining(a.retransmittedSegments, b.retransmittedSegments, operation)
        r.retransmittedBytes = .combining(a.retransmittedBytes, b.retransmittedBytes, operation)
        r.resetsSent = operation(a.resetsSent, b.resetsSent)
        r.resetsReceived = operation(a.resetsReceived, b.resetsReceived)
        r.failedConnects = operation(a.failedConnects, b.failedConnects)
        r.timeouts = operation(a.timeouts, b.timeouts)
        r.zeroWindowsReceived = operation(a.zeroWindowsReceived, b.zeroWindowsReceived)
        r.zeroWindowsSent = operation(a.zeroWindowsSent, b.zeroWindowsSent)
        r.windowProbes = operation(a.windowProbes, b.windowProbes)
        r.outOfOrder = operation(a.outOfOrder, b.outOfOrder)
        r.dsacks = operation(a.dsacks, b.dsacks)
        r.rtt = .combining(a.rtt, b.rtt, operation)
        return r
    }

    public static func + (a: Self, b: Self) -> Self { combining(a, b, &+) }
    public static func += (a: inout Self, b: Self) { a = a + b }

    /// What was counted since `earlier`, each counter at least 0 (a counter never goes back).
    public func since(_ earlier: Self) -> Self { Self.combining(self, earlier) { $0 >= $1 ? $0 - $1 : 0 } }

    /// What a socket counted from `earlier` to `self`, both read from the kernel, whose
    /// per-socket counters are 32 bits (they wrap; byte counts and the kernel's own do not).
    public static func socketDelta(_ now: Self, _ earlier: Self) -> Self {
        var d = combining(now, earlier) { UInt64(UInt32(truncatingIfNeeded: $0 &- $1)) }
        d.retransmittedBytes = .combining(now.retransmittedBytes, earlier.retransmittedBytes) { $0 &- $1 }
        d.rtt.sumMicroseconds = now.rtt.sumMicroseconds &- earlier.rtt.sumMicroseconds
        return d
    }
}
