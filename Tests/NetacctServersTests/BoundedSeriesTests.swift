@testable import NetacctServers
import Accounting
import Testing

/// The exporter's bounded series, with made-up totals: the series and `other` always add up to
/// the total, and no exported value ever goes back, however keys come, go, exit and return.
struct BoundedSeriesTests {
    static func bytes(_ n: UInt64) -> Traffic { Traffic(udpTxPackets: n, udpTxBytes: n) }

    /// What Prometheus would have seen: each series' and other's values, per scrape.
    struct Watcher {
        var last: [String: UInt64] = [:]
        var wentBack: [String] = []
        mutating func see(_ series: BoundedSeries<String, Traffic>) {
            var now = Dictionary(uniqueKeysWithValues: series.series.map { ($0.key, $0.value.udpTxBytes) })
            now["other"] = series.other.udpTxBytes
            for (key, value) in now where value < (last[key] ?? 0) { wentBack.append("\(key): \(last[key]!) → \(value)") }
            // A series gone and back is a new series (Prometheus marked it stale): from zero is fine.
            last = now
        }
    }

    /// Keys of equal weight at the bound: the series chosen first stay series, scrape after scrape
    /// (dictionary order is random per run, so the old arbitrary tie-break swapped them).
    @Test func onATieTheSeriesStaySeries() {
        var series = BoundedSeries<String, Traffic>(limit: 5)
        var live = Dictionary(uniqueKeysWithValues: (0..<5).map { ("s\($0)", Self.bytes(10)) })
        series.update(live: live)
        let first = Set(series.series.map(\.key))
        #expect(first.count == 5)
        for key in (0..<20).map({ "t\($0)" }) { live[key] = Self.bytes(10) }
        for _ in 0..<10 {
            series.update(live: live)
            #expect(Set(series.series.map(\.key)) == first)
            #expect(series.series.allSatisfy { $0.value.udpTxBytes == 10 }, "no series started again from zero")
        }
    }

    @Test func theSeriesAddUpAndNeverGoBackThroughChurn() {
        var series = BoundedSeries<String, Traffic>(limit: 2)
        var watcher = Watcher()
        var finished: [String: UInt64] = [:]
        var live: [String: UInt64] = ["a": 10, "b": 5]
        func scrape() {
            series.update(live: live.mapValues(Self.bytes))
            watcher.see(series)
            let expected = live.values.reduce(0, +) + finished.values.reduce(0, +)
            let exported = series.series.reduce(series.other.udpTxBytes) { $0 + $1.value.udpTxBytes }
            #expect(exported == expected, "the series and other add up to the total")
            #expect(series.series.count <= 2)
        }
        scrape()
        #expect(Set(series.series.map(\.key)) == ["a", "b"])
        live["c"] = 1
        scrape()
        #expect(series.other.udpTxBytes == 1, "a third key beyond the bound is other's")
        live["c"] = 100 // c overtakes b: b's series goes, its bytes to other
        scrape()
        #expect(Set(series.series.map(\.key)) == ["a", "c"])
        // Everything c sent while it was not a series is other's: its series starts from zero.
        #expect(series.other.udpTxBytes == 5 + 100, "b's bytes, and c's from before it was a series")
        #expect(series.series.first { $0.key == "c" }?.value.udpTxBytes == 0)
        live["c"] = 130
        scrape()
        #expect(series.series.first { $0.key == "c" }?.value.udpTxBytes == 30)
        // a exits: its final total stays in its group.
        series.finish("a", Self.bytes(12))
        finished["a"] = 12
        live["a"] = nil
        scrape()
        #expect(series.series.first { $0.key == "a" }?.value.udpTxBytes == 12)
        live["b"] = 500 // b comes back: a new series from zero, its past in other
        scrape()
        #expect(series.series.first { $0.key == "b" }?.value.udpTxBytes == 0)
        live["b"] = 600
        scrape()
        #expect(series.series.first { $0.key == "b" }?.value.udpTxBytes == 100)
        #expect(watcher.wentBack.isEmpty, "\(watcher.wentBack)")
    }

    @Test func idleKeysAreForgottenWithTheirTrafficKeptInOther() {
        var series = BoundedSeries<String, Traffic>(limit: 1)
        var total: UInt64 = 0
        for index in 0..<50 {
            series.finish("k\(index)", Self.bytes(UInt64(index + 1)))
            total += UInt64(index + 1)
            series.update(live: [:])
        }
        #expect(series.entries.count <= 1 + 4, "the series, and at most 4 × the limit idle keys")
        #expect(series.series.reduce(series.other.udpTxBytes) { $0 + $1.value.udpTxBytes } == total)
    }
}
