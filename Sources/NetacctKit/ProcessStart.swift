import Glibc

/// When a process started, as /proc says: field 22 of `/proc/PID/stat`, in clock ticks of
/// CLOCK_BOOTTIME since boot. It tells a process from a later one that reused its PID, and the
/// older of two processes.
public enum ProcessStart {
    /// The start of process `pid`; nil when there is no such process (or /proc cannot be read).
    public static func ticks(_ pid: Int32) -> UInt64? {
        let fd = open("/proc/\(pid)/stat", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 1024)
        let count = read(fd, &buffer, buffer.count)
        // After "pid (comm)" (the name may hold any byte): field 3 (state) is the first.
        guard count > 0, let close = buffer[..<count].lastIndex(of: UInt8(ascii: ")")) else { return nil }
        let fields = buffer[(close + 1)..<count].split(separator: UInt8(ascii: " "))
        guard fields.count > 19 else { return nil }
        return UInt64(String(decoding: fields[19], as: UTF8.self))
    }
}
