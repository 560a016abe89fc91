import Foundation
import Glibc
import Accounting
import NetacctKit
import Testing
import CTestSupport

/// Whether this machine can load the accounting programs. Tests that need it are enabled
/// only when it can; in CI (CI=true) `ciCanLoadPrograms` turns "cannot" into a failure, so
/// CI always proves the real thing.
enum BPFEnvironment {
    static let unavailableReason: String? = {
        do {
            try KernelRequirements.check()
            return nil
        } catch {
            return "\(error)"
        }
    }()
    static var available: Bool { unavailableReason == nil }
    static var isCI: Bool { ProcessInfo.processInfo.environment["CI"] == "true" }
}

@Test func ciCanLoadPrograms() {
    if BPFEnvironment.isCI {
        #expect(BPFEnvironment.unavailableReason == nil, "CI must load real BPF programs: \(BPFEnvironment.unavailableReason ?? "")")
    }
}

/// Runs `body` on a new kernel thread, waits until the thread has been joined, and returns
/// the thread's TID with what `body` returned.
func onNewThread<T>(_ body: @escaping () throws -> T) throws -> (tid: Int32, value: T) {
    let box = ThreadBox(body)
    var thread = pthread_t()
    let context = Unmanaged.passRetained(box).toOpaque()
    let created = pthread_create(&thread, nil, { context in
        (Unmanaged<AnyObject>.fromOpaque(context!).takeRetainedValue() as! any Runnable).run()
        return nil
    }, context)
    precondition(created == 0, "pthread_create failed")
    pthread_join(thread, nil)
    return (box.tid, try box.result!.get())
}

protocol Runnable: AnyObject { func run() }

final class ThreadBox<T>: Runnable, @unchecked Sendable {
    let body: () throws -> T
    var tid: Int32 = 0
    var result: Result<T, Error>?
    init(_ body: @escaping () throws -> T) { self.body = body }
    func run() {
        tid = test_gettid()
        result = Result { try body() }
    }
}

/// Loads the accounting programs and keeps folding snapshots into one ProcessTable.
final class Recorder {
    let engine: AccountingEngine
    var table = ProcessTable()
    /// The newest sample of each process, and every thread sample seen, newest last.
    var processes: [ProcessID: ProcessTable.ProcessSample] = [:]
    var threads: [Int32: ProcessTable.ThreadSample] = [:]

    init(onlyPID: Int32? = nil, slots: UInt32? = nil, registryEntries: UInt32? = nil, kind: AccountingEngine.Kind? = nil) throws {
        var options = AccountingEngine.Options(onlyPID: onlyPID, kind: kind)
        if let slots { options.slots = slots }
        if let registryEntries { options.registryEntries = registryEntries }
        engine = try AccountingEngine(options: options)
    }

    /// Reads the kernel into the table as the daemon does (streaming, not a snapshot).
    func sample() throws -> [ProcessTable.ProcessSample] {
        var source = engine
        return try table.ingest(from: &source, reporting: .all)
    }

    func poll() throws {
        for sample in try sample() {
            processes[sample.id] = sample
            for thread in sample.threads { threads[thread.id.tid] = thread }
        }
    }

    /// Polls until `condition` holds (at most 3 s), so that exits recorded a moment after
    /// the test saw them happen are in.
    func poll(until condition: () -> Bool) throws {
        let deadline = Date().addingTimeInterval(3)
        repeat {
            try poll()
            if condition() { return }
            usleep(20_000)
        } while Date() < deadline
    }

    func process(_ pid: Int32) -> ProcessTable.ProcessSample? {
        processes.values.filter { $0.id.pid == pid }.max { $0.id.startNanoseconds < $1.id.startNanoseconds }
    }
}

/// Starts `body` on a new thread that signals `ready` after it and stays alive until
/// `done` is signalled; returns at once. The thread's TID is in the box once `ready` fired.
func onNewThreadInBackground(ready: DispatchSemaphore, until done: DispatchSemaphore,
                             _ body: @escaping () throws -> Void) throws -> (ThreadBox<Void>, Void) {
    let box = ThreadBox<Void> {
        try body()
        ready.signal()
        done.wait()
    }
    var thread = pthread_t()
    let context = Unmanaged.passRetained(box as AnyObject).toOpaque()
    let created = pthread_create(&thread, nil, { context in
        (Unmanaged<AnyObject>.fromOpaque(context!).takeRetainedValue() as! any Runnable).run()
        return nil
    }, context)
    precondition(created == 0, "pthread_create failed")
    pthread_detach(thread)
    return (box, ())
}

/// A python3 child of a test, its standard input and output piped, killed if the test leaves it
/// running.
final class PythonChild {
    let process = Process()
    private let output = Pipe(), input = Pipe()
    var pid: Int32 { process.processIdentifier }

    init(_ script: String, _ arguments: [String]) throws {
        process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        process.arguments = ["-c", script] + arguments
        process.standardOutput = output
        process.standardInput = input
        try process.run()
    }

    /// The next line it wrote, without its newline ("" at the end of its output).
    func line() -> String {
        var bytes: [UInt8] = []
        var byte: UInt8 = 0
        while read(output.fileHandleForReading.fileDescriptor, &byte, 1) == 1 && byte != 10 { bytes.append(byte) }
        return String(decoding: bytes, as: UTF8.self)
    }

    func write(_ text: String) { input.fileHandleForWriting.write(Data(text.utf8)) }

    /// Closes its standard input and waits for it to exit: its status.
    func finish() throws -> Int32 {
        try input.fileHandleForWriting.close()
        process.waitUntilExit()
        return process.terminationStatus
    }

    deinit {
        if process.isRunning {
            kill(pid, SIGKILL)
            process.waitUntilExit()
        }
    }
}
