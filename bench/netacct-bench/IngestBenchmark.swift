import Foundation
import NetacctCore

/// `netacct-bench ingest [processes]`: user-space cost of folding one snapshot of that many
/// single-thread processes into a ProcessTable, without the kernel.
func runIngestBenchmark(_ arguments: [String]) {
    let count = arguments.first.flatMap { Int($0) } ?? 10_000
    let processes = (0..<count).map { Snapshot.Process(id: ProcessID(pid: Int32($0 + 1), startNanoseconds: 7), cgroupID: 1, comm: "sender") }
    let threads = processes.map { Snapshot.LiveThread(id: ThreadID(tid: $0.id.pid, startNanoseconds: 7, process: $0.id), traffic: Traffic(udpTxPackets: 1, udpTxBytes: 100), cgroupID: 1, comm: "sender") }
    for keepsThreads in [false, true] {
        var table = ProcessTable(keepsThreads: keepsThreads)
        var times: [Double] = []
        for round in 0..<10 {
            let start = Date()
            let samples = table.ingest(Snapshot(processes: processes, processesChanged: round == 0, threads: threads, exits: []))
            times.append(Date().timeIntervalSince(start) * 1000)
            precondition(samples.count == count)
        }
        print("ingest of \(count) processes, keepsThreads \(keepsThreads): \(times.sorted()[5]) ms (median of 10)")
    }
}
