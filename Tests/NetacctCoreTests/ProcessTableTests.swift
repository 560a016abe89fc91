import NetacctCore
import Testing

/// ProcessTable's bookkeeping on made-up snapshots: no kernel involved.
struct ProcessTableTests {
    let process = ProcessID(pid: 100, startNanoseconds: 5_000)
    func thread(_ tid: Int32, start: UInt64 = 6_000) -> ThreadID {
        ThreadID(tid: tid, startNanoseconds: start, process: process)
    }
    func live(_ tid: Int32, _ traffic: Traffic) -> Snapshot.LiveThread {
        Snapshot.LiveThread(id: thread(tid), traffic: traffic, cgroupID: 1, comm: "t\(tid)")
    }
    var registered: [Snapshot.Process] { [Snapshot.Process(id: process, cgroupID: 1, comm: "app")] }
    func exit(_ tid: Int32, _ traffic: Traffic, last: Bool = false) -> Snapshot.ThreadExit {
        Snapshot.ThreadExit(id: thread(tid), traffic: traffic, cgroupID: 1, processExited: last, comm: "t\(tid)", processComm: "app")
    }
    let a = Traffic(tcpTxPackets: 1, tcpTxBytes: 10)
    let b = Traffic(udpRxPackets: 2, udpRxBytes: 20)

    @Test func totalsAndDeltas() {
        var table = ProcessTable()
        let first = table.ingest(Snapshot(threads: [live(100, a), live(101, b)], exits: []))
        #expect(first.count == 1)
        #expect(first[0].total == a + b)
        #expect(first[0].delta == a + b)
        let second = table.ingest(Snapshot(threads: [live(100, a + a), live(101, b)], exits: []))
        #expect(second[0].total == a + a + b)
        #expect(second[0].delta == a)
        #expect(second[0].threads.map(\.delta) == [a, .zero])
    }

    @Test func aRegisteredProcessWithoutLiveThreadsStaysAlive() {
        var table = ProcessTable()
        _ = table.ingest(Snapshot(processes: registered, threads: [live(101, a)], exits: []))
        // Its only talking thread exited; the process (in the registry) did not.
        let samples = table.ingest(Snapshot(processes: registered, threads: [], exits: [exit(101, a + b)]))
        #expect(samples.count == 1 && !samples[0].exited && samples[0].total == a + b)
        let later = table.ingest(Snapshot(processes: registered, threads: [], exits: []))
        #expect(later.count == 1 && !later[0].exited && later[0].total == a + b && later[0].delta == .zero)
        #expect(later[0].comm == "app")
    }

    @Test func exitsDrainedBetweenSamplesCountOnceAndShowNext() {
        var table = ProcessTable()
        _ = table.ingest(Snapshot(processes: registered, threads: [live(100, a), live(101, a)], exits: []))
        // The daemon drains the ledger between two samples: thread 101 exited...
        table.fold(exits: [exit(101, a + b)])
        // ...and its slot is still seen by the next sample (read before the exit hook freed it).
        let next = table.ingest(Snapshot(processes: registered, threads: [live(100, a), live(101, a + b)], exits: []))
        #expect(next.count == 1 && next[0].total == a + a + b && !next[0].exited)
        #expect(next[0].threads.first { $0.id.tid == 101 }?.exited == true)
        // The last thread's exit, drained: the process is reported exited once, then forgotten.
        table.fold(exits: [exit(100, a, last: true)])
        let last = table.ingest(Snapshot(threads: [], exits: []))
        #expect(last.count == 1 && last[0].exited && last[0].total == a + a + b && last[0].delta == .zero)
        #expect(table.ingest(Snapshot(threads: [], exits: [])).isEmpty)
    }

    @Test func slotHintsSurviveProcessesMovingAndSlotsChangingHands() {
        var table = ProcessTable(keepsThreads: false)
        func process(_ pid: Int32) -> ProcessID { ProcessID(pid: pid, startNanoseconds: UInt64(pid)) }
        func thread(_ pid: Int32, slot: Int32, _ traffic: Traffic) -> Snapshot.LiveThread {
            Snapshot.LiveThread(id: ThreadID(tid: pid, startNanoseconds: UInt64(pid), process: process(pid)),
                                traffic: traffic, cgroupID: 1, comm: "p\(pid)", slot: slot)
        }
        func totals(_ samples: [ProcessTable.ProcessSample]) -> [Int32: Traffic] {
            Dictionary(uniqueKeysWithValues: samples.map { ($0.id.pid, $0.total) })
        }
        _ = table.ingest(Snapshot(threads: [thread(1, slot: 0, a), thread(2, slot: 1, b), thread(3, slot: 2, a + b)], exits: []))
        // Process 1 exits: the last state moves into its position.
        let exit1 = Snapshot.ThreadExit(id: ThreadID(tid: 1, startNanoseconds: 1, process: process(1)), traffic: a + a,
                                        cgroupID: 1, processExited: true, comm: "p1", processComm: "p1")
        _ = table.ingest(Snapshot(threads: [thread(2, slot: 1, b), thread(3, slot: 2, a + b)], exits: [exit1]))
        // Slot 0 now belongs to a thread of a new process 4; process 3 keeps slot 2.
        let samples = table.ingest(Snapshot(threads: [thread(4, slot: 0, b), thread(2, slot: 1, b + b), thread(3, slot: 2, a + a + b)], exits: []))
        #expect(totals(samples) == [4: b, 2: b + b, 3: a + a + b])
        #expect(samples.allSatisfy { !$0.exited })
    }

    @Test func withoutThreadsNoRowsAreKept() {
        var table = ProcessTable(keepsThreads: false)
        let samples = table.ingest(Snapshot(threads: [live(100, a), live(101, b)], exits: []))
        #expect(samples.count == 1 && samples[0].total == a + b && samples[0].threads.isEmpty)
    }

    @Test func exitedThreadCountsOnceWhenSeenLiveAndInTheLedger() {
        var table = ProcessTable()
        _ = table.ingest(Snapshot(threads: [live(100, .zero), live(101, a)], exits: []))
        // The thread exited between the iterator and the ledger read: the final counters win.
        let racing = table.ingest(Snapshot(threads: [live(100, .zero), live(101, a)], exits: [exit(101, a + b)]))
        #expect(racing[0].total == a + b)
        #expect(racing[0].delta == b)
        #expect(racing[0].threads.first { $0.id.tid == 101 }?.exited == true)
        // Afterwards the thread's slot is free and the ledger entry consumed.
        let after = table.ingest(Snapshot(threads: [live(100, .zero)], exits: []))
        #expect(after[0].total == a + b)
        #expect(after[0].delta == .zero)
    }

    @Test func exitedProcessIsReportedOnceThenForgotten() {
        var table = ProcessTable()
        _ = table.ingest(Snapshot(threads: [live(100, a)], exits: []))
        let exiting = table.ingest(Snapshot(threads: [], exits: [exit(100, a + b, last: true)]))
        #expect(exiting.count == 1)
        #expect(exiting[0].exited)
        #expect(exiting[0].total == a + b)
        #expect(exiting[0].delta == b)
        #expect(table.ingest(Snapshot(threads: [], exits: [])).isEmpty)
        #expect(table.count == 0)
    }

    @Test func reusedPIDStartsFromZero() {
        var table = ProcessTable()
        _ = table.ingest(Snapshot(threads: [live(100, a)], exits: []))
        _ = table.ingest(Snapshot(threads: [], exits: [exit(100, a, last: true)]))
        let reborn = ProcessID(pid: 100, startNanoseconds: 9_000)
        let newThread = Snapshot.LiveThread(id: ThreadID(tid: 100, startNanoseconds: 9_000, process: reborn),
                                            traffic: b, cgroupID: 1, comm: "new")
        let samples = table.ingest(Snapshot(threads: [newThread], exits: []))
        #expect(samples.count == 1)
        #expect(samples[0].id == reborn)
        #expect(samples[0].total == b)
        #expect(samples[0].comm == "new")
    }

    @Test func processThatVanishedWithoutARecordIsReportedExited() {
        var table = ProcessTable()
        _ = table.ingest(Snapshot(threads: [live(100, a)], exits: []))
        let samples = table.ingest(Snapshot(threads: [], exits: []))
        #expect(samples.count == 1 && samples[0].exited && samples[0].total == a)
        #expect(table.count == 0)
    }
}
