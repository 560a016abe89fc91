@testable import NetacctServers
import Accounting
import Testing

/// The Prometheus text writer against the exposition format (0.0.4), and the exporter's own
/// families through it: no kernel, no server.
struct PrometheusTextTests {
    static func text(_ write: (inout PrometheusText) -> Void) -> String {
        var out = PrometheusText()
        write(&out)
        return String(decoding: out.bytes, as: UTF8.self)
    }

    /// What breaks the format's rules in `text`: a family's HELP and TYPE once each, HELP first
    /// and TYPE right after it, before any sample; each sample in the family last declared
    /// (a histogram's as `_bucket`, `_sum`, `_count`, its buckets with `le`), its value a number
    /// Prometheus parses; a counter's name ending in `_total`; the text ending in a newline.
    static func problems(in text: String) -> [String] {
        var problems: [String] = []
        var declared: [String: String] = [:] // family → type
        var helped: Set<String> = []
        var current: (name: String, type: String)?
        var awaitingType: String?
        if !text.isEmpty && !text.hasSuffix("\n") { problems.append("no newline at the end") }
        for line in text.split(separator: "\n", omittingEmptySubsequences: false).dropLast().map(String.init) {
            let words = line.split(separator: " ", maxSplits: 3).map(String.init)
            if line.hasPrefix("# HELP ") {
                let name = words[2]
                if !helped.insert(name).inserted { problems.append("HELP twice for \(name)") }
                if declared[name] != nil { problems.append("HELP after TYPE for \(name)") }
                awaitingType = name
                continue
            }
            if line.hasPrefix("# TYPE ") {
                let (name, type) = (words[2], words.count > 3 ? words[3] : "")
                if declared[name] != nil { problems.append("TYPE twice for \(name)") }
                if awaitingType != name { problems.append("TYPE of \(name) not right after its HELP") }
                if !["counter", "gauge", "histogram", "summary", "untyped"].contains(type) { problems.append("unknown type \(type)") }
                if type == "counter" && !name.hasSuffix("_total") { problems.append("counter \(name) without _total") }
                declared[name] = type
                current = (name, type)
                awaitingType = nil
                continue
            }
            if line.hasPrefix("#") || line.isEmpty {
                problems.append("unexpected line: \(line)")
                continue
            }
            if let awaitingType { problems.append("a sample between HELP and TYPE of \(awaitingType)") }
            // name{labels} value: label values may hold spaces, so the value is after the last one.
            guard let space = line.lastIndex(of: " ") else { problems.append("no value: \(line)"); continue }
            let series = line[..<space], value = String(line[line.index(after: space)...])
            let name = String(series.prefix { $0 != "{" })
            let labels = series.dropFirst(name.count)
            if !["+Inf", "-Inf", "NaN"].contains(value) && Double(value) == nil { problems.append("not a number: \(line)") }
            guard let current else { problems.append("a sample before any TYPE: \(line)"); continue }
            let allowed = current.type == "histogram" ? ["_bucket", "_sum", "_count"].map { current.name + $0 } : [current.name]
            if !allowed.contains(name) { problems.append("\(name) in family \(current.name)") }
            if name.hasSuffix("_bucket") && current.type == "histogram" && !labels.contains("le=\"") { problems.append("a bucket without le: \(line)") }
        }
        return problems
    }

    @Test func aFamilyIsItsHelpAndTypeThenItsSamples() {
        let text = Self.text { out in
            out.family("netacct_test_bytes_total", .counter, help: "payload bytes")
            out.sample("netacct_test_bytes_total", [("protocol", "tcp"), ("direction", "rx")], UInt64(12))
            out.sample("netacct_test_bytes_total", [("protocol", "udp"), ("direction", "tx")], UInt64.max)
            out.family("netacct_test_processes", .gauge, help: "processes")
            out.sample("netacct_test_processes", UInt64(3))
        }
        #expect(text == """
            # HELP netacct_test_bytes_total payload bytes
            # TYPE netacct_test_bytes_total counter
            netacct_test_bytes_total{protocol="tcp",direction="rx"} 12
            netacct_test_bytes_total{protocol="udp",direction="tx"} 18446744073709551615
            # HELP netacct_test_processes processes
            # TYPE netacct_test_processes gauge
            netacct_test_processes 3

            """)
        #expect(Self.problems(in: text).isEmpty)
    }

    @Test func labelValuesEscapeBackslashQuoteAndNewlineOnly() {
        let text = Self.text { out in
            out.family("netacct_test_total", .counter, help: "h")
            out.sample("netacct_test_total", [("cgroup", "/a\\b\"c\nd"), ("name", "café {x=1} ok")], UInt64(1))
        }
        #expect(text.hasSuffix("netacct_test_total{cgroup=\"/a\\\\b\\\"c\\nd\",name=\"café {x=1} ok\"} 1\n"))
        #expect(Self.problems(in: text).isEmpty)
    }

    @Test func helpEscapesBackslashAndNewlineButNotQuotes() {
        let text = Self.text { out in out.family("netacct_test", .gauge, help: "a \\ b\nc in group=\"other\"") }
        #expect(text == "# HELP netacct_test a \\\\ b\\nc in group=\"other\"\n# TYPE netacct_test gauge\n")
    }

    @Test func floatsAreNumbersPrometheusParsesAndTheSpecialValuesItsWords() {
        let values: [(Double, String)] = [(0.5, "0.5"), (3, "3.0"), (1e-6, "1e-06"), (1.5e16, "1.5e+16"), (-2.25, "-2.25"),
                                          (.infinity, "+Inf"), (-.infinity, "-Inf"), (.nan, "NaN")]
        let text = Self.text { out in
            out.family("netacct_test_seconds", .gauge, help: "h")
            for (value, _) in values { out.sample("netacct_test_seconds", value) }
        }
        let written = text.split(separator: "\n").dropFirst(2).map { String($0.split(separator: " ")[1]) }
        #expect(written == values.map(\.1))
        for (value, word) in values where value.isFinite { #expect(Double(word) == value) }
        #expect(Self.problems(in: text).isEmpty)
    }

    @Test func aHistogramIsBucketsSumAndCountUnderOneHead() {
        let text = Self.text { out in
            out.family("netacct_test_latency_seconds", .histogram, help: "h")
            let labels = [("direction", "in"), ("stage", "ip")]
            out.sample("netacct_test_latency_seconds_bucket", labels + [("le", "1e-06")], UInt64(2))
            out.sample("netacct_test_latency_seconds_bucket", labels + [("le", "+Inf")], UInt64(5))
            out.sample("netacct_test_latency_seconds_sum", labels, 0.25)
            out.sample("netacct_test_latency_seconds_count", labels, UInt64(5))
        }
        #expect(text.components(separatedBy: "# HELP").count == 2 && text.components(separatedBy: "# TYPE").count == 2)
        #expect(text.contains("netacct_test_latency_seconds_bucket{direction=\"in\",stage=\"ip\",le=\"+Inf\"} 5\n"))
        #expect(Self.problems(in: text).isEmpty)
    }

    /// The checker itself finds each kind of mistake.
    @Test func theCheckerCatchesBrokenText() {
        #expect(!Self.problems(in: "# HELP a h\n# TYPE a counter\na 1\n").isEmpty, "a counter without _total")
        #expect(!Self.problems(in: "# HELP a h\n# TYPE a gauge\n# HELP a h\n# TYPE a gauge\na 1\n").isEmpty, "HELP and TYPE twice")
        #expect(!Self.problems(in: "# HELP a h\n# TYPE a gauge\nb 1\n").isEmpty, "a sample of another family")
        #expect(!Self.problems(in: "# HELP a h\n# TYPE a gauge\na one\n").isEmpty, "not a number")
        #expect(!Self.problems(in: "# HELP a h\n# TYPE a gauge\na 1").isEmpty, "no final newline")
    }

    /// The exporter's traffic families and the process metrics, as a scrape writes them: each
    /// family once, counters named `_total`, every sample in its family, all values numbers.
    @Test func theExportersFamiliesFollowTheFormat() {
        let rows: [([(String, String)], Traffic)] = [
            ([("group", "nginx")], Traffic(tcpTxPackets: 2, tcpTxBytes: 300, udpRxPackets: 1, udpRxBytes: 40)),
            ([("group", "a \"quoted\"\\name\n")], Traffic(tcpRxPackets: 1, tcpRxBytes: 9)),
            ([("group", "other")], Traffic()),
        ]
        let text = Self.text { out in
            MetricsExporter.traffic(&out, "netacct", "the machine's traffic", [([], rows.reduce(Traffic()) { $0 + $1.1 })])
            MetricsExporter.traffic(&out, "netacct_process_group", "traffic per process group, the rest in group=\"other\"", rows)
            MetricsExporter.processMetrics(&out, startTime: 1_700_000_000.5)
        }
        #expect(Self.problems(in: text) == [])
        let types = text.split(separator: "\n").filter { $0.hasPrefix("# TYPE ") }.map { $0.dropFirst(7) }
        #expect(Array(types.prefix(4)) == ["netacct_bytes_total counter", "netacct_calls_total counter",
                                            "netacct_process_group_bytes_total counter", "netacct_process_group_calls_total counter"])
        #expect(types.contains("process_cpu_seconds_total counter") && types.contains("process_start_time_seconds gauge"))
        // Four series (protocol × direction) per row and unit.
        #expect(text.split(separator: "\n").filter { $0.hasPrefix("netacct_process_group_bytes_total{") }.count == 12)
        #expect(text.contains("netacct_process_group_bytes_total{group=\"nginx\",protocol=\"tcp\",direction=\"tx\"} 300\n"))
        #expect(text.contains("netacct_process_group_calls_total{group=\"a \\\"quoted\\\"\\\\name\\n\",protocol=\"tcp\",direction=\"rx\"} 1\n"))
        #expect(text.contains("process_start_time_seconds 1700000000.5\n"))
    }
}
