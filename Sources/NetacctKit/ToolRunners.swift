import SystemPackage

/// The loop of a tool that shows what the kernel sends through a ring buffer (connections,
/// drops, latency): each batch rendered into one buffer and written at once, `count` records
/// at most, what was lost said on standard error after it; at a stop signal, what the kernel
/// sent before it still shown (a signal that comes during a write ends it after that batch);
/// then the summary line. Made before the engine, so that SIGINT and SIGTERM wait for it.
public struct EventRunner {
    let signals = StopSignals()
    let count: Int?, output: FileDescriptor, errors: FileDescriptor

    public init(count: Int?, output: FileDescriptor = .standardOutput, errors: FileDescriptor = .standardError) {
        (self.count, self.output, self.errors) = (count, output, errors)
    }

    /// `poll(milliseconds)`: a batch, waiting up to 100 ms for it (0 after a stop signal).
    /// `losses`: what to say after each batch ("" when nothing more was lost). `summary`: the
    /// last line, given how many records were shown.
    public func run<Record>(header: String?, poll: (_ milliseconds: Int32) throws -> [Record],
                            render: (Record, inout TextBuffer) -> Void, losses: () throws -> String,
                            summary: (_ shown: Int) throws -> String) throws {
        var text = TextBuffer()
        var shown = 0, stopping = false
        // Until the output is closed, or a stop signal comes while it is not being read.
        var going = try header.map { try signals.write(Array($0.utf8), to: output.rawValue) == .written } ?? true
        while going {
            for record in try poll(stopping ? 0 : 100) {
                if let count, shown >= count { break }
                render(record, &text)
                shown += 1
            }
            if !text.bytes.isEmpty { going = try signals.write(text.bytes, to: output.rawValue) == .written }
            text.bytes.removeAll(keepingCapacity: true)
            if let count, shown >= count { going = false }
            errors.say(try losses())
            if stopping { break }
            stopping = signals.pending() != nil
        }
        errors.say(try losses() + summary(shown))
    }
}

/// The loop of a tool that shows what the kernel counted every interval (nic, drops --summary,
/// latency --hist): each interval from the end of the last, the first from `start`; until
/// `count` intervals, the output closed, or a stop signal, which ends the interval in progress
/// (shown, shorter). Made before the engine, so that SIGINT and SIGTERM wait for it.
public struct IntervalRunner {
    let signals = StopSignals()
    let seconds: Double, count: Int?, output: FileDescriptor, errors: FileDescriptor

    public init(every seconds: Double, count: Int?, output: FileDescriptor = .standardOutput, errors: FileDescriptor = .standardError) {
        (self.seconds, self.count, self.output, self.errors) = (seconds, count, output, errors)
    }

    /// `interval(seconds)`: the text of an interval that lasted `seconds`, and whether it is
    /// the last. `losses`: what to say after each. `summary`: a last line, if any. `tick`:
    /// what to do at least every second meanwhile (follow what comes and goes).
    public func run(from start: Double = StopSignals.now(), _ interval: (_ seconds: Double) throws -> (text: String, last: Bool),
                    losses: () throws -> String = { "" }, summary: (_ shown: Int) throws -> String = { _ in "" },
                    tick: (() throws -> Void)? = nil) throws {
        var start = start, shown = 0
        while count.map({ shown < $0 }) ?? true {
            var stopped = false
            if let tick {
                while !stopped && StopSignals.now() < start + seconds {
                    stopped = signals.wait(until: min(start + seconds, StopSignals.now() + 1)) != nil
                    if !stopped { try tick() }
                }
            } else {
                stopped = signals.wait(until: start + seconds) != nil
            }
            let end = StopSignals.now()
            let (text, last) = try interval(end - start)
            guard try signals.write(Array(text.utf8), to: output.rawValue) == .written else { break }
            shown += 1
            errors.say(try losses())
            start = end
            if stopped || last { break }
        }
        errors.say(try losses() + summary(shown))
    }
}

/// A kernel counter of what could not be shown or followed, said as it grows ("netacct: 5
/// events lost: …; 12 in all"); `said` is for the summary.
public struct LossCounter {
    public private(set) var said: UInt64 = 0
    let what: String

    public init(_ what: String) { self.what = what }

    /// What to say now that the counter is at `total`: "" unless it grew.
    public mutating func news(_ total: UInt64) -> String {
        guard total > said else { return "" }
        defer { said = total }
        return "netacct: \(total - said) \(what); \(total) in all\n"
    }
}

extension FileDescriptor {
    /// Standard error: `text`, if any, come what may.
    fileprivate func say(_ text: String) {
        if !text.isEmpty { _ = try? writeAll(Array(text.utf8)) }
    }
}
