import Accounting
import NetacctKit
import Testing

/// The service's delivery of exited processes to several clients, on made-up snapshots.
struct AccountingServiceTests {
    final class Feed {
        var next = Snapshot(threads: [], exits: [])
        var now = 0.0
    }

    static let process = ProcessID(pid: 42, startNanoseconds: 1)
    static let thread = ThreadID(tid: 42, startNanoseconds: 1, process: process)
    static let traffic = Traffic(tcpTxPackets: 3, tcpTxBytes: 300)

    func service(_ feed: Feed, retention: Double = 60, maximumExited: Int = 100) -> AccountingService {
        AccountingService(configuration: .init(retention: retention, maximumExited: maximumExited),
                          clock: { feed.now }, source: { feed.next })
    }

    func live(_ feed: Feed) {
        feed.next = Snapshot(threads: [.init(id: Self.thread, traffic: Self.traffic, cgroupID: 1, comm: "c")], exits: [])
    }

    func exit(_ feed: Feed) {
        feed.next = Snapshot(threads: [], exits: [.init(id: Self.thread, traffic: Self.traffic + Self.traffic, cgroupID: 1,
                                                          processExited: true, comm: "c", processComm: "c")])
    }

    /// The process is seen live, then its exit is noticed by the maintenance at time 1.
    func liveThenExited(_ feed: Feed, _ service: AccountingService) throws {
        live(feed)
        try service.refresh()
        exit(feed)
        feed.now = 1
        try service.maintain(interval: 1)
        feed.next = Snapshot(threads: [], exits: [])
    }

    @Test func everyConnectedClientGetsAnExitedProcessOnce() throws {
        let feed = Feed()
        let service = service(feed)
        let a = service.connect(), b = service.connect()
        live(feed)
        try service.refresh()
        #expect(service.processes(for: a).map(\.total) == [Self.traffic])
        exit(feed)
        try service.refresh()
        feed.next = Snapshot(threads: [], exits: [])
        let late = service.connect() // connected after the exit: not its business
        let first = service.processes(for: a)
        #expect(first.count == 1 && first[0].exited && first[0].total == Self.traffic + Self.traffic)
        #expect(service.processes(for: a).isEmpty)
        #expect(service.processes(for: late).isEmpty)
        #expect(service.exitedCount == 1) // b has not had it yet
        #expect(service.processes(for: b).map(\.exited) == [true])
        #expect(service.exitedCount == 0)
    }

    @Test func exitsAreNoticedAndExpireWithNoClientConnected() throws {
        let feed = Feed()
        let service = service(feed, retention: 10)
        live(feed)
        try service.maintain(interval: 1)
        exit(feed)
        feed.now = 1
        try service.maintain(interval: 1) // no client: the exit is noticed all the same
        feed.next = Snapshot(threads: [], exits: [])
        #expect(service.exitedCount == 1)
        feed.now = 12
        try service.maintain(interval: 1) // and forgotten after the retention time
        #expect(service.exitedCount == 0)
        let late = service.connect()
        try service.refresh()
        #expect(service.processes(for: late).isEmpty)
    }

    @Test func everyClientThatAsksWithinTheRetentionGetsExitsNoticedWhileNoneWasConnected() throws {
        let feed = Feed()
        let service = service(feed, retention: 10)
        try liveThenExited(feed, service)
        #expect(service.exitedCount == 1)
        feed.now = 2
        let first = service.connect()
        try service.refresh()
        #expect(service.processes(for: first).map(\.exited) == [true])
        feed.now = 3
        let second = service.connect()
        try service.refresh()
        #expect(service.processes(for: second).map(\.total) == [Self.traffic + Self.traffic])
        #expect(service.processes(for: second).isEmpty && service.processes(for: first).isEmpty)
    }

    /// The metrics exporter is always connected, passively: it gets every exit, and an atop
    /// that connects later within the retention time still gets the exits it missed.
    @Test func aPassiveClientGetsExitsWithoutKeepingThemFromLaterClients() throws {
        let feed = Feed()
        let service = service(feed, retention: 10)
        let exporter = service.connect(passive: true)
        try liveThenExited(feed, service)
        #expect(service.exitedProcesses(for: exporter).map(\.total) == [Self.traffic + Self.traffic])
        #expect(service.exitedProcesses(for: exporter).isEmpty, "once")
        feed.now = 2
        let atop = service.connect()
        try service.refresh()
        #expect(service.processes(for: atop).map(\.exited) == [true], "an atop that came later has it too")
    }

    @Test func twoLiveProcessesWithOnePIDGoToAtopOneAtATime() throws {
        let feed = Feed()
        let service = service(feed)
        let client = service.connect()
        func thread(_ start: UInt64) -> ThreadID {
            ThreadID(tid: 42, startNanoseconds: start, process: ProcessID(pid: 42, startNanoseconds: start))
        }
        feed.next = Snapshot(threads: [.init(id: thread(1), traffic: Self.traffic, cgroupID: 1, comm: "c")], exits: [])
        try service.refresh(reporting: .exited)
        // The old process's exit is read while its thread is still seen (so it stays live one
        // more sample), and a new process already has its PID.
        feed.next = Snapshot(threads: [.init(id: thread(1), traffic: Self.traffic, cgroupID: 1, comm: "c"),
                                       .init(id: thread(5), traffic: Self.traffic, cgroupID: 1, comm: "c")],
                             exits: [.init(id: ThreadID(tid: 0, startNanoseconds: 0, process: thread(1).process), traffic: .zero,
                                           cgroupID: 1, processExited: true, comm: "", processComm: "c")])
        try service.refresh(reporting: .exited)
        var pids: [Int32] = []
        service.forEachProcess(for: client) { id, _, _ in pids.append(id.pid) }
        #expect(pids == [42])
    }

    @Test func aReplyNeverCarriesOnePIDTwice() throws {
        let feed = Feed()
        let service = service(feed)
        let client = service.connect()
        func thread(_ start: UInt64) -> ThreadID {
            ThreadID(tid: 42, startNanoseconds: start, process: ProcessID(pid: 42, startNanoseconds: start))
        }
        func records() -> [(ProcessID, Traffic)] {
            var result: [(ProcessID, Traffic)] = []
            service.forEachProcess(for: client) { id, _, total in result.append((id, total)) }
            return result
        }
        // PID 42 exits twice and is reused a third time, all within one interval.
        feed.next = Snapshot(threads: [.init(id: thread(3), traffic: Self.traffic, cgroupID: 1, comm: "c")], exits: [
            .init(id: thread(1), traffic: Self.traffic, cgroupID: 1, processExited: true, comm: "c", processComm: "c"),
            .init(id: thread(2), traffic: Self.traffic + Self.traffic, cgroupID: 1, processExited: true, comm: "c", processComm: "c"),
        ])
        try service.refresh(reporting: .exited)
        feed.next = Snapshot(threads: [.init(id: thread(3), traffic: Self.traffic + Self.traffic, cgroupID: 1, comm: "c")], exits: [])
        var replies: [[(ProcessID, Traffic)]] = []
        for _ in 0..<3 {
            replies.append(records())
            try service.refresh(reporting: .exited)
        }
        #expect(replies.map(\.count) == [1, 1, 1])
        #expect(replies.map { $0.first?.0.startNanoseconds } == [1, 2, 3])
        // The new process's counters are cumulative: nothing of it is lost by waiting.
        #expect(replies[2].first?.1 == Self.traffic + Self.traffic)
    }

    @Test func aDisconnectedClientDoesNotHoldExitedProcesses() throws {
        let feed = Feed()
        let service = service(feed)
        let a = service.connect()
        live(feed)
        try service.refresh()
        exit(feed)
        try service.refresh()
        #expect(service.exitedCount == 1)
        service.disconnect(a)
        #expect(service.exitedCount == 0)
    }

    @Test func withNoClientExitsWaitForTheRetentionTime() throws {
        let feed = Feed()
        let service = service(feed, retention: 10)
        live(feed)
        try service.refresh()
        exit(feed)
        try service.refresh()
        feed.next = Snapshot(threads: [], exits: [])
        feed.now = 5
        let a = service.connect()
        #expect(service.processes(for: a).map(\.exited) == [true])
        #expect(service.processes(for: a).isEmpty)
        feed.now = 11
        try service.refresh()
        #expect(service.exitedCount == 0)
    }

    @Test func aClientThatNeverAsksCannotGrowMemoryForever() throws {
        let feed = Feed()
        let service = service(feed, retention: 10, maximumExited: 5)
        _ = service.connect()
        for pid in Int32(1)...20 {
            let process = ProcessID(pid: pid, startNanoseconds: 1)
            let thread = ThreadID(tid: pid, startNanoseconds: 1, process: process)
            feed.next = Snapshot(threads: [], exits: [.init(id: thread, traffic: Self.traffic, cgroupID: 1, processExited: true, comm: "x", processComm: "x")])
            try service.refresh()
        }
        #expect(service.exitedCount == 5)
        #expect(service.losses.forgottenExits == 15)
        #expect(service.losses.phrases == ["15 exited processes forgotten before delivery (exit backlog full)"])
        feed.now = 20
        feed.next = Snapshot(threads: [], exits: [])
        try service.refresh()
        #expect(service.exitedCount == 0)
    }
}
