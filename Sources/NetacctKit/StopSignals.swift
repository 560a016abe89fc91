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
