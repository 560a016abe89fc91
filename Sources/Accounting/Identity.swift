import CNetacct
import NetacctKit

/// A process: its PID and its start time. PIDs are reused; the pair never is.
public struct ProcessID: Hashable, Sendable, Comparable {
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
public struct ThreadID: Hashable, Sendable {
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

/// A task's name as the kernel keeps it (TASK_COMM_LEN bytes, NUL-padded), decoded to a
/// String only when read: a sample has thousands of them and rarely needs one.
struct TaskComm: Sendable, Equatable {
    private var low: UInt64 = 0
    private var high: UInt64 = 0

    /// From a C `char comm[16]` (a tuple in Swift).
    init<T>(cString tuple: T) {
        precondition(MemoryLayout<T>.size == 16)
        withUnsafeBytes(of: tuple) { raw in
            low = raw.loadUnaligned(fromByteOffset: 0, as: UInt64.self)
            high = raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self)
        }
    }

    /// The first 15 bytes of `name` (the kernel's limit).
    init(_ name: String) {
        withUnsafeMutableBytes(of: &self) { raw in
            for (index, byte) in name.utf8.prefix(15).enumerated() { raw[index] = byte }
        }
    }

    var string: String { Accounting.string(fromCString: (low, high)) }
}
