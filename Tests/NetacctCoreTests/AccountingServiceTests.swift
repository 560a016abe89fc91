import NetacctCore
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

    @Test func exitsDrainedBetweenRequestsReachTheNextReply() throws {
        let feed = Feed()
        var drained: [Snapshot.ThreadExit] = []
        let service = AccountingService(configuration: .init(retention: 60), clock: { feed.now },
                                        source: { feed.next }, drain: { defer { drained = [] }; return drained })
        let a = service.connect()
        live(feed)
        try service.refresh()
        // The process exits; the periodic drain takes its record out of the ledger...
        drained = [.init(id: Self.thread, traffic: Self.traffic + Self.traffic, cgroupID: 1, processExited: true,
                         comm: "c", processComm: "c")]
        try service.drainExits()
        // ...and the next request's refresh (the slot is gone) reports it, once.
        feed.next = Snapshot(threads: [], exits: [])
        try service.refresh()
        let reply = service.processes(for: a)
        #expect(reply.count == 1 && reply[0].exited && reply[0].total == Self.traffic + Self.traffic)
        try service.refresh()
        #expect(service.processes(for: a).isEmpty)
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
        #expect(service.droppedExited == 15)
        feed.now = 20
        feed.next = Snapshot(threads: [], exits: [])
        try service.refresh()
        #expect(service.exitedCount == 0)
    }
}
