import Foundation
import Accounting
import NetacctKit

/// `netacct-bench ingest [processes]`: user-space cost of folding one snapshot of that many
/// single-thread processes into a ProcessTable, without the kernel. The registry comes in
/// random order (a hash), the threads in slot order as the engine reads them; threads outside
/// the slot array (the kernel's overflow hash, for colliding TIDs) are measured apart.
func runIngestBenchmark(_ arguments: [String]) {
    let count = arguments.first.flatMap { Int($0) } ?? 10_000
    let processes = (0..<count).map { Snapshot.Process(id: ProcessID(pid: Int32($0 + 1), startNanoseconds: 7), cgroupID: 1, comm: "sender") }.shuffled()
    for (label, slotted) in [("in slots", true), ("outside the slots", false)] {
        let threads = processes.map {
            Snapshot.LiveThread(id: ThreadID(tid: $0.id.pid, startNanoseconds: 7, process: $0.id), traffic: Traffic(udpTxPackets: 1, udpTxBytes: 100),
                                cgroupID: 1, comm: "sender", slot: slotted ? $0.id.pid & 32767 : -1)
        }.sorted { $0.slot < $1.slot }
        for keepsThreads in [false, true] {
            var table = ProcessTable(keepsThreads: keepsThreads)
            var times: [Double] = []
            for round in 0..<40 {
                let start = Date()
                let samples = table.ingest(Snapshot(processes: processes, processesChanged: round == 0, threads: threads, exits: []))
                times.append(Date().timeIntervalSince(start) * 1000)
                precondition(samples.count == count)
            }
            let steady = times.suffix(20).sorted()
            print("ingest of \(count) processes, threads \(label), keepsThreads \(keepsThreads): \(steady[10]) ms (median of the last 20 of 40)")
        }
    }
    runServiceBenchmark(count)
}

/// The same through AccountingService (what the daemon does per request), fresh threads each time.
func runServiceBenchmark(_ count: Int) {
    let processes = (0..<count).map { Snapshot.Process(id: ProcessID(pid: Int32($0 + 1), startNanoseconds: 7), cgroupID: 1, comm: "sender") }
    var round = 0
    let service = AccountingService(source: {
        round += 1
        let threads = processes.map { Snapshot.LiveThread(id: ThreadID(tid: $0.id.pid, startNanoseconds: 7, process: $0.id), traffic: Traffic(udpTxPackets: UInt64(round), udpTxBytes: 100), cgroupID: 1, comm: "sender") }
        return Snapshot(processes: processes, processesChanged: round == 1, threads: threads, exits: [])
    })
    let client = service.connect()
    var times: [Double] = []
    for _ in 0..<10 {
        let start = Date()
        try? service.refresh()
        let reply = service.processes(for: client)
        times.append(Date().timeIntervalSince(start) * 1000)
        precondition(reply.count == count)
    }
    print("service refresh + reply list of \(count) processes (snapshot made in the source): \(times.sorted()[5]) ms (median of 10)")
}
