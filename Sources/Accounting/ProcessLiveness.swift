import Glibc
import NetacctKit

/// Whether a process still runs, from /proc: asked by the engine for a process the kernel side
/// no longer lists and has no exit record of (a full registry or exit ledger), so that a live
/// process is never reported exited.
enum ProcessLiveness {
    /// Whether `/proc/<pid>` is the process that started at `startNanoseconds` (the kernel's
    /// CLOCK_MONOTONIC start time). /proc gives the start in clock ticks of CLOCK_BOOTTIME,
    /// which runs ahead of CLOCK_MONOTONIC by the time the machine was suspended: the same
    /// process lies between the two, within a tick. A reused PID started later.
    /// Only a process that /proc says is gone is not running: a /proc that cannot be read now
    /// (no descriptor or memory left) answers "running", the side that loses nothing (a record
    /// freed while its process lives would be given to another socket under its live threads).
    static func isRunning(_ process: ProcessID) -> Bool {
        guard let ticks = ProcessStart.ticks(process.pid) else { return !isGone(process.pid) }
        let tick = 1_000_000_000 / UInt64(max(sysconf(Int32(_SC_CLK_TCK)), 1))
        let bootNanoseconds = ticks &* tick
        let start = process.startNanoseconds
        return bootNanoseconds + tick >= start && bootNanoseconds <= start + suspended() + tick
    }

    /// Whether /proc says there is no process `pid` (not merely that it could not be read).
    static func isGone(_ pid: Int32) -> Bool {
        guard access("/proc/\(pid)", F_OK) != 0 else { return false }
        return errno == ENOENT || errno == ESRCH
    }

    /// CLOCK_BOOTTIME - CLOCK_MONOTONIC: how long the machine has been suspended.
    static func suspended() -> UInt64 {
        var boot = timespec(), monotonic = timespec()
        clock_gettime(CLOCK_BOOTTIME, &boot)
        clock_gettime(CLOCK_MONOTONIC, &monotonic)
        let difference = (Int64(boot.tv_sec) - Int64(monotonic.tv_sec)) * 1_000_000_000 + Int64(boot.tv_nsec - monotonic.tv_nsec)
        return UInt64(max(difference, 0))
    }
}
