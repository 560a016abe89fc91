import Glibc

/// SIGINT and SIGTERM as something to wait for: blocked for the calling thread (and the
/// threads it starts later) and taken synchronously with sigtimedwait, so no handler and
/// no global flag are involved. The waits double as the interval timer.
public struct StopSignals: Sendable {
    private let set: sigset_t

    public init() {
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, SIGINT)
        sigaddset(&set, SIGTERM)
        pthread_sigmask(SIG_BLOCK, &set, nil)
        self.set = set
    }

    /// Waits until `deadline` (CLOCK_MONOTONIC seconds, or .infinity); returns the signal if
    /// one came first.
    public func wait(until deadline: Double) -> Int32? {
        var set = self.set
        if deadline == .infinity {
            while true {
                let signal = sigwaitinfo(&set, nil)
                if signal > 0 { return signal }
            }
        }
        while true {
            let remaining = deadline - Self.now()
            if remaining <= 0 { return nil }
            var timeout = timespec(tv_sec: Int(remaining), tv_nsec: Int((remaining - remaining.rounded(.down)) * 1e9))
            let signal = sigtimedwait(&set, nil, &timeout)
            if signal > 0 { return signal }
            if errno == EAGAIN { return nil }
            // EINTR: some other signal; keep waiting for the rest of the time.
        }
    }

    /// A signal already pending, taken without waiting (for loops that wait on something else).
    public func pending() -> Int32? {
        var set = self.set
        var zero = timespec(tv_sec: 0, tv_nsec: 0)
        let signal = sigtimedwait(&set, nil, &zero)
        return signal > 0 ? signal : nil
    }

    /// CLOCK_MONOTONIC in seconds.
    public static func now() -> Double {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return Double(time.tv_sec) + Double(time.tv_nsec) / 1e9
    }
}

extension StopSignals {
    /// How a write that waits for a slow reader ended.
    public enum WriteOutcome: Sendable, Equatable {
        case written
        /// The reader has gone (EPIPE).
        case closed
        /// A stop signal came: what the reader took within 100 ms at a time was written, the rest not.
        case stopped(Int32)
    }

    /// Writes `bytes` to `fd`, waiting for a reader that is slow (a full pipe) without keeping
    /// SIGINT or SIGTERM from stopping netacct: it waits in poll (100 ms at a time) and writes no
    /// more than a pipe takes at once (PIPE_BUF after POLLOUT), so no write blocks. Once a stop
    /// signal has come it goes on only while the reader keeps taking (within 100 ms each time):
    /// a reader that reads gets every line, one that does not stops netacct within 100 ms.
    public func write(_ bytes: [UInt8], to fd: Int32) throws -> WriteOutcome {
        var offset = 0
        var stop: Int32?
        while offset < bytes.count {
            var request = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            let ready = poll(&request, 1, 100)
            if stop == nil, let signal = pending() {
                stop = signal
                continue
            }
            if ready < 0 {
                if errno == EINTR { continue }
                throw NetacctError("Cannot write the output: \(String(cString: strerror(errno))).")
            }
            if ready == 0 {
                if let stop { return .stopped(stop) }
                continue
            }
            if request.revents & Int16(POLLERR | POLLHUP) != 0 && request.revents & Int16(POLLOUT) == 0 { return .closed }
            let chunk = min(bytes.count - offset, Int(PIPE_BUF))
            let written = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + offset, chunk) }
            if written < 0 {
                if errno == EINTR || errno == EAGAIN { continue }
                if errno == EPIPE { return .closed }
                throw NetacctError("Cannot write the output: \(String(cString: strerror(errno))).")
            }
            offset += written
        }
        return stop.map { .stopped($0) } ?? .written
    }
}
