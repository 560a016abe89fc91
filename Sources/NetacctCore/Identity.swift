import CNetacct

/// A process: its PID and its start time. PIDs are reused; the pair never is.
public struct ProcessID: Hashable, Sendable, Comparable, Codable {
    public var pid: Int32
    /// CLOCK_MONOTONIC nanoseconds at which the process started.
    public var startNanoseconds: UInt64

    public init(pid: Int32, startNanoseconds: UInt64) {
        self.pid = pid
        self.startNanoseconds = startNanoseconds
    }

    public static func < (a: ProcessID, b: ProcessID) -> Bool {
        (a.pid, a.startNanoseconds) < (b.pid, b.startNanoseconds)
    }
}

/// A thread: its TID and start time, within its process.
public struct ThreadID: Hashable, Sendable, Codable {
    public var tid: Int32
    public var startNanoseconds: UInt64
    public var process: ProcessID

    public init(tid: Int32, startNanoseconds: UInt64, process: ProcessID) {
        self.tid = tid
        self.startNanoseconds = startNanoseconds
        self.process = process
    }

    init(_ id: netacct_task_id) {
        self.init(tid: Int32(bitPattern: id.tid), startNanoseconds: id.thread_start_ns,
                  process: ProcessID(pid: Int32(bitPattern: id.tgid), startNanoseconds: id.process_start_ns))
    }
}

/// A fixed-size C name (a task's comm) as a String.
func string<T>(fromCString tuple: T) -> String {
    withUnsafeBytes(of: tuple) { raw in
        let bytes = raw.prefix { $0 != 0 }
        return String(decoding: bytes, as: UTF8.self)
    }
}
