import NetacctCore
import Testing

/// ProcessTable's bookkeeping on made-up snapshots: no kernel involved.
struct ProcessTableTests {
    let process = ProcessID(pid: 100, startNanoseconds: 5_000)
    func thread(_ tid: Int32, start: UInt64 = 6_000) -> ThreadID {
        ThreadID(tid: tid, startNanoseconds: start, process: process)
    }
    func live(_ tid: Int32, _ traffic: Traffic, exited: Bool = false) -> Snapshot.LiveThread {
        Snapshot.LiveThread(id: thread(tid), traffic: traffic, cgroupID: 1, exited: exited, comm: "t\(tid)", processComm: "app")
    }
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

    @Test func exitedThreadCountsOnceWhenSeenLiveAndInTheLedger() {
        var table = ProcessTable()
        _ = table.ingest(Snapshot(threads: [live(100, .zero), live(101, a)], exits: []))
        // The thread exited between the iterator and the ledger read: the final counters win.
        let racing = table.ingest(Snapshot(threads: [live(100, .zero), live(101, a)], exits: [exit(101, a + b)]))
        #expect(racing[0].total == a + b)
        #expect(racing[0].delta == b)
        #expect(racing[0].threads.first { $0.id.tid == 101 }?.exited == true)
        // Afterwards the zombie's state is marked exited and the ledger entry is consumed.
        let after = table.ingest(Snapshot(threads: [live(100, .zero), live(101, a + b, exited: true)], exits: []))
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
                                            traffic: b, cgroupID: 1, comm: "new", processComm: "new")
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
