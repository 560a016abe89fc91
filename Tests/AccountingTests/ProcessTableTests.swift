@testable import Accounting
import NetacctKit
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

    /// The process's exit record (tid 0) after its threads'.
    func processExit() -> Snapshot.ThreadExit {
        Snapshot.ThreadExit(id: ThreadID(tid: 0, startNanoseconds: 0, process: process), traffic: .zero, cgroupID: 1,
                            processExited: true, comm: "", processComm: "app")
    }

    @Test func aProcessIsReportedExitedOnlyOnceNoRecordOfItsThreadsCanCome() {
        var table = ProcessTable()
        _ = table.ingest(Snapshot(processes: registered, threads: [live(100, a), live(101, a)], exits: []))
        // The process's exit is read while thread 101 is still seen in its slot (its exit hook
        // has not run yet): the process stays live, with what is counted.
        let racing = table.ingest(Snapshot(processes: [], threads: [live(101, a + b)], exits: [exit(100, a), processExit()]))
        #expect(racing.count == 1 && !racing[0].exited && racing[0].total == a + a + b)
        var live: [ProcessID] = []
        table.forEachLive { id, _, _ in live.append(id) }
        #expect(live == [process]) // still in an atop reply
        // Thread 101's record: now the process is reported exited, once, with everything.
        let next = table.ingest(Snapshot(threads: [], exits: [exit(101, a + b + b)]))
        #expect(next.count == 1 && next[0].exited && next[0].total == a + a + b + b && next[0].delta == b)
        #expect(table.ingest(Snapshot(threads: [], exits: [])).isEmpty)
    }

    @Test func aLateRecordMakesNoGhostExit() {
        var table = ProcessTable()
        _ = table.ingest(Snapshot(processes: registered, threads: [live(100, a)], exits: []))
        let exited = table.ingest(Snapshot(threads: [], exits: [exit(100, a), processExit()]))
        #expect(exited.count == 1 && exited[0].exited && exited[0].total == a)
        // A record of the process that comes after all: no second exit, no new process; counted.
        let after = table.ingest(Snapshot(threads: [], exits: [exit(101, b)]))
        #expect(after.isEmpty)
        #expect(table.lateExitRecords == 1)
        #expect(table.count == 0)
    }

    @Test func anUnregisteredProcessIsNotReportedExitedWhileItRuns() {
        var table = ProcessTable()
        // The registry was full: the process is not in it; its one talking thread exits.
        _ = table.ingest(Snapshot(processes: [], threads: [live(101, a)], exits: []))
        let samples = table.ingest(Snapshot(processes: [], threads: [], exits: [exit(101, a + b)], running: [process]))
        #expect(samples.count == 1 && !samples[0].exited && samples[0].total == a + b)
        let later = table.ingest(Snapshot(processes: [], threads: [], exits: [], running: [process]))
        #expect(later.count == 1 && !later[0].exited && later[0].total == a + b)
        // Once it is gone from /proc (its exit record lost), it is reported exited, once.
        let gone = table.ingest(Snapshot(processes: [], threads: [], exits: []))
        #expect(gone.count == 1 && gone[0].exited && gone[0].total == a + b)
        #expect(table.ingest(Snapshot(threads: [], exits: [])).isEmpty)
    }

    @Test func theExitOfAProcessNeverCountedIsNoSample() {
        var table = ProcessTable()
        #expect(table.ingest(Snapshot(threads: [], exits: [processExit()])).isEmpty)
        #expect(table.count == 0)
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
        // The thread sent more and exited between the read of its slot and the ledger read:
        // this sample keeps the live count, the next one has the final counters. Never twice,
        // never going back.
        let racing = table.ingest(Snapshot(threads: [live(100, .zero), live(101, a + a)], exits: [exit(101, a + a + b)]))
        #expect(racing[0].total == a + a)
        #expect(racing[0].delta == a)
        #expect(racing[0].threads.first { $0.id.tid == 101 }?.exited == false)
        // Afterwards the thread's slot is free and the ledger entry consumed.
        let after = table.ingest(Snapshot(threads: [live(100, .zero)], exits: []))
        #expect(after[0].total == a + a + b)
        #expect(after[0].delta == b)
        #expect(after[0].threads.first { $0.id.tid == 101 }.map { $0.exited && $0.delta == b } == true)
        let later = table.ingest(Snapshot(threads: [live(100, .zero)], exits: []))
        #expect(later[0].total == a + a + b && later[0].delta == .zero)
    }

    @Test func lastThreadExitingAfterItsSlotWasReadEndsTheProcessNextSample() {
        var table = ProcessTable(keepsThreads: false)
        func slotted(_ traffic: Traffic) -> Snapshot.LiveThread {
            Snapshot.LiveThread(id: thread(100), traffic: traffic, cgroupID: 1, comm: "t100", slot: 100)
        }
        let last = Snapshot.ThreadExit(id: thread(100), traffic: a + b, cgroupID: 1, processExited: true,
                                       comm: "t100", processComm: "app", slot: 100)
        _ = table.ingest(Snapshot(processes: registered, threads: [slotted(a)], exits: []))
        // Counted live from its slot, then its exit record (same slot, same thread) arrives.
        let racing = table.ingest(Snapshot(processes: registered, threads: [slotted(a)], exits: [last]))
        #expect(racing.count == 1 && !racing[0].exited && racing[0].total == a)
        // Next sample: gone from the registry and the slots; reported exited, final counters.
        let next = table.ingest(Snapshot(processes: [], threads: [], exits: []))
        #expect(next.count == 1 && next[0].exited && next[0].total == a + b && next[0].delta == b)
        #expect(table.ingest(Snapshot(threads: [], exits: [])).isEmpty)
    }

    @Test func anExitRecordForAnotherThreadOfTheSlotIsFoldedAtOnce() {
        var table = ProcessTable(keepsThreads: false)
        // Slot 4 holds thread 100 (start 6,000); the exit record is of thread 100's
        // predecessor in that slot (start 1,000), which was never counted live by this sample.
        let living = Snapshot.LiveThread(id: thread(100), traffic: a, cgroupID: 1, comm: "t100", slot: 4)
        let predecessor = Snapshot.ThreadExit(id: thread(100, start: 1_000), traffic: b, cgroupID: 1, processExited: false,
                                              comm: "old", processComm: "app", slot: 4)
        let samples = table.ingest(Snapshot(processes: registered, threads: [living], exits: [predecessor]))
        #expect(samples.count == 1 && samples[0].total == a + b)
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

    /// The table reorders its states to follow the slot array (registry order is random to
    /// it); totals, exits and slot hints stay right through it.
    @Test(arguments: [false, true])
    func reorderingByThreadSlotsKeepsEveryTotal(keepsThreads: Bool) {
        var table = ProcessTable(keepsThreads: keepsThreads)
        let count: Int32 = 200
        func process(_ index: Int32) -> ProcessID { ProcessID(pid: 1000 + index, startNanoseconds: UInt64(index) + 1) }
        let registry = (0..<count).map { Snapshot.Process(id: process($0), cgroupID: 1, comm: "p\($0)") }
        func threads(round: UInt64, without gone: Int32? = nil) -> [Snapshot.LiveThread] {
            // Slot order is the reverse of the registry order.
            (0..<count).reversed().filter { $0 != gone }.map { index in
                Snapshot.LiveThread(id: ThreadID(tid: 1000 + index, startNanoseconds: UInt64(index) + 1, process: process(index)),
                                    traffic: Traffic(tcpTxPackets: round, tcpTxBytes: round * UInt64(index + 1)),
                                    cgroupID: 1, comm: "p\(index)", slot: count - 1 - index)
            }
        }
        for round in UInt64(1)...40 {
            let samples = table.ingest(Snapshot(processes: round == 1 ? registry : [], processesChanged: round == 1,
                                                threads: threads(round: round), exits: []))
            #expect(samples.count == Int(count))
            #expect(samples.allSatisfy { $0.total == Traffic(tcpTxPackets: round, tcpTxBytes: round * UInt64($0.id.pid - 999)) })
            if keepsThreads {
                #expect(samples.allSatisfy { $0.threads.count == 1 && $0.threads[0].id.process == $0.id && $0.threads[0].total == $0.total })
            }
        }
        let exit = Snapshot.ThreadExit(id: ThreadID(tid: 1007, startNanoseconds: 8, process: process(7)),
                                       traffic: Traffic(tcpTxPackets: 41, tcpTxBytes: 41 * 8), cgroupID: 1,
                                       processExited: true, comm: "p7", processComm: "p7", slot: count - 1 - 7)
        let registryWithout = registry.filter { $0.id != process(7) }
        let samples = table.ingest(Snapshot(processes: registryWithout, threads: threads(round: 41, without: 7), exits: [exit]))
        #expect(samples.count == Int(count))
        #expect(samples.first { $0.id == process(7) }.map { $0.exited && $0.total == exit.traffic } == true)
        #expect(samples.filter { !$0.exited }.allSatisfy { $0.total == Traffic(tcpTxPackets: 41, tcpTxBytes: 41 * UInt64($0.id.pid - 999)) })
        #expect(table.count == Int(count) - 1)
        #expect(table.orderings == 1, "reordered once, after 16 samples out of order; in order since")
    }
}
