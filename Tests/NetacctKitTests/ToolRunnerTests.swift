import Foundation
import Glibc
import NetacctKit
import SystemPackage
import Testing

/// The two loops every tool runs, on made-up batches and intervals, writing to pipes. Stop
/// signals are sent to the test's own thread (pthread_kill), where the runner blocked them.
struct ToolRunnerTests {
    /// A pipe whose write end a runner writes to; `text()` closes it and reads what came.
    final class Pipe {
        let read: Int32, write: Int32
        init() {
            var fds: [Int32] = [0, 0]
            pipe(&fds)
            (read, write) = (fds[0], fds[1])
        }
        var fd: FileDescriptor { FileDescriptor(rawValue: write) }
        func text() -> String {
            close(write)
            defer { close(read) }
            var bytes: [UInt8] = [], buffer = [UInt8](repeating: 0, count: 4096)
            while case let count = Glibc.read(read, &buffer, buffer.count), count > 0 { bytes += buffer.prefix(count) }
            return String(decoding: bytes, as: UTF8.self)
        }
    }

    /// Runs an EventRunner over `batches` (one per poll, then none); `stopAt`: the poll at
    /// which a stop signal comes. The output, standard error, and each poll's wait.
    static func events(_ batches: [[Int]], count: Int? = nil, stopAt: Int? = nil) throws -> (out: String, err: String, waits: [Int32]) {
        let out = Pipe(), err = Pipe()
        let runner = EventRunner(count: count, output: out.fd, errors: err.fd)
        var waits: [Int32] = [], lost: UInt64 = 0
        var losses = LossCounter("records lost")
        try runner.run(header: "HEADER\n") { milliseconds in
            waits.append(milliseconds)
            if waits.count == stopAt { pthread_kill(pthread_self(), SIGINT) }
            if waits.count > batches.count + 5 { pthread_kill(pthread_self(), SIGINT) }  // never forever
            lost += 2
            return waits.count <= batches.count ? batches[waits.count - 1] : []
        } render: { record, text in
            text.append(UInt64(record))
            text.append("\n")
        } losses: {
            losses.news(lost)
        } summary: { shown in
            "\(shown) shown, \(losses.said) lost\n"
        }
        return (out.text(), err.text(), waits)
    }

    @Test func eachBatchIsWrittenUnderTheHeaderAndLossesAreSaidAfterIt() throws {
        let (out, err, waits) = try Self.events([[1, 2], [], [3]], stopAt: 4)
        #expect(out == "HEADER\n1\n2\n3\n")
        #expect(waits == [100, 100, 100, 100, 0], "a 100 ms wait each time, then the drain")
        #expect(err == (1...5).map { "netacct: 2 records lost; \($0 * 2) in all\n" }.joined() + "3 shown, 10 lost\n")
    }

    @Test func countStopsItWithinABatch() throws {
        let (out, err, waits) = try Self.events([[1, 2, 3], [4, 5, 6], [7]], count: 4)
        #expect(out == "HEADER\n1\n2\n3\n4\n")
        #expect(waits == [100, 100])
        #expect(err.hasSuffix("4 shown, 4 lost\n"))
    }

    @Test func whatTheKernelSentBeforeAStopSignalIsStillShown() throws {
        // The signal comes while nothing was sent: one more batch, taken without waiting.
        let (out, _, waits) = try Self.events([[1], [], [2]], stopAt: 2)
        #expect(out == "HEADER\n1\n2\n")
        #expect(waits == [100, 100, 0])
    }

    @Test func aStopSignalWhileABatchIsWrittenEndsItAfterThatBatch() throws {
        let (out, err, waits) = try Self.events([[1], [2, 3], [4]], stopAt: 2)
        #expect(out == "HEADER\n1\n2\n3\n")
        #expect(waits == [100, 100])
        #expect(err.hasSuffix("3 shown, 4 lost\n"))
    }

    /// Runs an IntervalRunner every `seconds`; each interval's text is its number.
    static func intervals(every seconds: Double, count: Int?, last: Int? = nil, signalAfter delay: Double? = nil)
        throws -> (out: String, err: String, lengths: [Double], elapsed: Double) {
        let out = Pipe(), err = Pipe()
        let runner = IntervalRunner(every: seconds, count: count, output: out.fd, errors: err.fd)
        if let delay {
            let thread = pthread_self()
            Thread.detachNewThread {
                usleep(UInt32(delay * 1e6))
                pthread_kill(thread, SIGINT)
            }
        }
        var lengths: [Double] = []
        let start = StopSignals.now()
        try runner.run { length in
            lengths.append(length)
            return ("\(lengths.count)\n", lengths.count == last)
        } losses: {
            "after \(lengths.count)\n"
        } summary: { shown in
            "\(shown) intervals\n"
        }
        return (out.text(), err.text(), lengths, StopSignals.now() - start)
    }

    @Test func intervalsFollowEachOtherFromTheStartUntilTheCount() throws {
        let (out, err, lengths, elapsed) = try Self.intervals(every: 0.02, count: 3)
        #expect(out == "1\n2\n3\n")
        #expect(err == "after 1\nafter 2\nafter 3\nafter 3\n3 intervals\n")
        #expect(lengths.allSatisfy { $0 >= 0.02 && $0 < 2 }, "\(lengths)")
        #expect(elapsed >= 0.06)
    }

    @Test func theIntervalThatSaysItIsTheLastEndsIt() throws {
        let (out, _, lengths, _) = try Self.intervals(every: 0.01, count: nil, last: 2)
        #expect(out == "1\n2\n" && lengths.count == 2)
    }

    @Test func aStopSignalShowsTheIntervalInProgress() throws {
        let (out, err, lengths, _) = try Self.intervals(every: 30, count: nil, signalAfter: 0.05)
        #expect(out == "1\n")
        #expect(lengths.count == 1 && lengths[0] >= 0.05 && lengths[0] < 5, "\(lengths)")
        #expect(err.hasSuffix("1 intervals\n"))
    }

    @Test func aLossCounterSaysOnlyWhatIsNew() {
        var counter = LossCounter("events lost: the ring buffer was full")
        #expect(counter.news(0) == "")
        #expect(counter.news(5) == "netacct: 5 events lost: the ring buffer was full; 5 in all\n")
        #expect(counter.news(5) == "" && counter.news(7) == "netacct: 2 events lost: the ring buffer was full; 7 in all\n")
        #expect(counter.said == 7)
    }

    @Test func familiesAreTheKernelsAddressFamilies() {
        #expect(Family.ipv4.addressFamily == UInt16(AF_INET) && Family.ipv6.addressFamily == UInt16(AF_INET6))
        #expect(Family(addressFamily: UInt16(AF_INET6)) == .ipv6 && Family(addressFamily: UInt16(AF_INET)) == .ipv4)
        #expect(Optional<Family>.none.addressFamily == 0, "no filter: both")
        #expect(Family?.some(.ipv6).addressFamily == UInt16(AF_INET6))
    }
}
