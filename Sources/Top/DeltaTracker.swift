import Accounting

/// Per-interval deltas from cumulative samples (what the daemon's API gives).
public struct DeltaTracker: Sendable {
    private var processes: [ProcessID: Traffic] = [:]
    private var threads: [ThreadID: Traffic] = [:]

    public init() {}

    public mutating func deltas(_ samples: [ProcessTable.ProcessSample]) -> [ProcessTable.ProcessSample] {
        var nextProcesses: [ProcessID: Traffic] = [:]
        var nextThreads: [ThreadID: Traffic] = [:]
        let result = samples.map { sample in
            var sample = sample
            sample.delta = sample.total.since(processes[sample.id] ?? .zero)
            for index in sample.threads.indices {
                let thread = sample.threads[index]
                sample.threads[index].delta = thread.total.since(threads[thread.id] ?? .zero)
                if !thread.exited && !sample.exited { nextThreads[thread.id] = thread.total }
            }
            if !sample.exited { nextProcesses[sample.id] = sample.total }
            return sample
        }
        processes = nextProcesses
        threads = nextThreads
        return result
    }
}
