import Foundation
import Glibc
import Accounting
import NetacctKit
import Testing
import CTestSupport

/// Real BPF programs, real sockets: every expected count is traffic the test made itself,
/// asserted exactly for the thread or process that made it, with each engine (the sock
/// engine and the syscall engine of older kernels count the same).
@Suite(.serialized, .enabled(if: BPFEnvironment.available, "needs root and Linux >= 6.3 with BTF"))
struct AccountingTests {
    /// `child` is counted live with `total`; then, its standard input closed, it exits with
    /// status 0 and is reported exited with `total`.
    static func expectLiveThenExited(_ child: PythonChild, _ recorder: Recorder, total: Traffic) throws {
        let running = try #require(recorder.process(child.pid))
        #expect(!running.exited && running.total == total, "\(running)")
        #expect(try child.finish() == 0)
        try recorder.poll { recorder.process(child.pid)?.exited == true }
        let final = try #require(recorder.process(child.pid))
        #expect(final.exited && final.total == total, "\(final)")
    }

    /// The final counters of a worker thread, once its exit is recorded.
    func finalTraffic(of tid: Int32, _ recorder: Recorder) throws -> Traffic? {
        try recorder.poll { recorder.threads[tid]?.exited == true }
        return recorder.threads[tid]?.total
    }

    @Test(arguments: AccountingEngine.Kind.allCases, [Family.v4, .v6])
    func tcp(_ kind: AccountingEngine.Kind, _ family: Family) throws {
        let recorder = try Recorder(kind: kind)
        let (tid, calls) = try onNewThread {
            let (client, server) = try tcpPair(family)
            for _ in 0..<10 { _ = try client.send(1000) }
            let calls = try server.receiveAll(10_000)
            _ = try server.send(42)
            _ = try client.receiveAll(42)
            return calls + 1
        }
        let traffic = try #require(try finalTraffic(of: tid, recorder))
        #expect(traffic == Traffic(tcpTxPackets: 11, tcpTxBytes: 10_042, tcpRxPackets: UInt64(calls), tcpRxBytes: 10_042))
    }

    @Test(arguments: AccountingEngine.Kind.allCases, [(Family.v4, true), (.v4, false), (.v6, true), (.v6, false)])
    func udp(_ kind: AccountingEngine.Kind, _ setup: (family: Family, connected: Bool)) throws {
        let (family, connected) = setup
        let recorder = try Recorder(kind: kind)
        let (tid, _) = try onNewThread {
            let (sender, receiver, address) = try udpPair(family, connected: connected)
            for size in 1...7 {
                _ = connected ? try sender.send(size * 100) : try sender.sendTo(size * 100, address)
            }
            for _ in 1...7 { try check(receiver.receive(2000), "recv") }
        }
        let traffic = try #require(try finalTraffic(of: tid, recorder))
        #expect(traffic == Traffic(udpTxPackets: 7, udpTxBytes: 2800, udpRxPackets: 7, udpRxBytes: 2800))
    }

    /// Every data system call on a socket counts once, whichever engine: write and read,
    /// writev and readv, sendmsg and recvmsg, sendfile; a write to a file or a pipe is not traffic.
    @Test(arguments: AccountingEngine.Kind.allCases)
    func everyDataCallCounts(_ kind: AccountingEngine.Kind) throws {
        let recorder = try Recorder(kind: kind)
        let (tid, _) = try onNewThread {
            let (client, server) = try tcpPair(.v4)
            var bytes = [UInt8](repeating: 0x63, count: 4096)
            var buffer = [UInt8](repeating: 0, count: 4096)
            // write and read: 100 bytes each way.
            try check(write(client.fd, bytes, 100), "write")
            try check(read(server.fd, &buffer, 100) == 100 ? 100 : -1, "read 100")
            // writev and readv: 300 bytes in two pieces.
            try bytes.withUnsafeMutableBytes { raw in
                var pieces = [iovec(iov_base: raw.baseAddress, iov_len: 100), iovec(iov_base: raw.baseAddress! + 100, iov_len: 200)]
                try check(writev(client.fd, &pieces, 2), "writev")
                var message = msghdr()
                try pieces.withUnsafeMutableBufferPointer { iov in
                    message.msg_iov = iov.baseAddress
                    message.msg_iovlen = 2
                    try check(sendmsg(client.fd, &message, 0), "sendmsg")
                }
            }
            try buffer.withUnsafeMutableBytes { raw in
                var piece = iovec(iov_base: raw.baseAddress, iov_len: 300)
                _ = try check(readv(server.fd, &piece, 1) == 300 ? 300 : -1, "readv 300")
                var message = msghdr()
                withUnsafeMutablePointer(to: &piece) { message.msg_iov = $0; message.msg_iovlen = 1 }
                _ = try check(recvmsg(server.fd, &message, Int32(MSG_WAITALL)) == 300 ? 300 : -1, "recvmsg 300")
            }
            // sendfile from a file: 1000 bytes; the file's own write and read are not traffic.
            let path = "/tmp/netacct-sendfile-\(getpid())-\(test_gettid())"
            let file = try check(open(path, O_RDWR | O_CREAT | O_TRUNC, 0o600), "open")
            defer { close(file); unlink(path) }
            try check(write(file, bytes, 1000), "write(file)")
            var offset: off_t = 0
            try check(sendfile(client.fd, file, &offset, 1000), "sendfile")
            _ = try server.receiveAll(1000)
            var pipeFDs: [Int32] = [0, 0]
            try check(pipe(&pipeFDs), "pipe")
            try check(write(pipeFDs[1], bytes, 10), "write(pipe)")
            try check(read(pipeFDs[0], &buffer, 10), "read(pipe)")
            close(pipeFDs[0]); close(pipeFDs[1])
        }
        let traffic = try #require(try finalTraffic(of: tid, recorder))
        #expect(traffic.tcpTxPackets == 4 && traffic.tcpTxBytes == 1700, "\(traffic)")
        // The sendfile's 1000 bytes may arrive in more than one receive.
        #expect(traffic.tcpRxPackets >= 4 && traffic.tcpRxBytes == 1700, "\(traffic)")
        #expect(traffic.udpTxPackets == 0 && traffic.udpRxPackets == 0)
    }

    /// A blind spot named: a large sendfile is one system call, so the syscall engine counts it
    /// as one call; the sock engine counts each send the kernel makes of it (Linux >= 6.5). The
    /// bytes are the same.
    @Test(arguments: AccountingEngine.Kind.allCases)
    func aLargeSendfileIsOneCallOnTheSyscallEngine(_ kind: AccountingEngine.Kind) throws {
        let recorder = try Recorder(kind: kind)
        let size = 1 << 20
        let (client, server) = try tcpPair(.v4)
        let path = "/tmp/netacct-sendfile-\(getpid())-\(kind)"
        let file = try check(open(path, O_RDWR | O_CREAT | O_TRUNC, 0o600), "open")
        defer { close(file); unlink(path) }
        try check(ftruncate(file, off_t(size)), "ftruncate")
        let ready = DispatchSemaphore(value: 0), done = DispatchSemaphore(value: 0)
        let (reader, _) = try onNewThreadInBackground(ready: ready, until: done) { _ = try server.receiveAll(size) }
        let (tid, sent) = try onNewThread {
            var offset: off_t = 0
            return try check(sendfile(client.fd, file, &offset, size), "sendfile")
        }
        ready.wait()
        done.signal()
        _ = reader
        #expect(sent == size)
        let traffic = try #require(try finalTraffic(of: tid, recorder))
        #expect(traffic.tcpTxBytes == UInt64(size))
        if kind == .syscalls {
            #expect(traffic.tcpTxPackets == 1)
        } else {
            #expect(traffic.tcpTxPackets > 1, "the sock engine counts the kernel's sends of it: \(traffic.tcpTxPackets)")
        }
    }

    /// A blind spot named: io_uring sends make no send system call. The sock engine counts them
    /// (in the thread that submitted, which runs them here); the syscall engine does not see them.
    @Test(arguments: AccountingEngine.Kind.allCases)
    func ioUringSendsAreNotSeenByTheSyscallEngine(_ kind: AccountingEngine.Kind) throws {
        let recorder = try Recorder(kind: kind)
        let (tid, sent) = try onNewThread {
            let (sender, receiver, _) = try udpPair(.v4, connected: true)
            let sent = test_io_uring_send(sender.fd, 100, 3)
            for _ in 0..<max(0, sent) { try check(receiver.receive(200), "recv") }
            return sent
        }
        #expect(sent == 3, "io_uring on this kernel: \(sent)")
        let traffic = try #require(try finalTraffic(of: tid, recorder))
        #expect(traffic.udpRxPackets == 3 && traffic.udpRxBytes == 300)
        #expect(traffic.udpTxPackets == (kind == .sock ? 3 : 0) && traffic.udpTxBytes == (kind == .sock ? 300 : 0), "\(traffic)")
    }

    @Test(arguments: AccountingEngine.Kind.allCases)
    func threadsSharingOneSlotCountSeparately(_ kind: AccountingEngine.Kind) throws {
        let recorder = try Recorder(slots: 1, kind: kind)
        // Two live threads at once: one owns the only slot, the other counts in task storage.
        let ready = DispatchSemaphore(value: 0), done = DispatchSemaphore(value: 0)
        let (sender, receiver, _) = try udpPair(.v4, connected: true)
        let (helper, _) = try onNewThreadInBackground(ready: ready, until: done) {
            for _ in 0..<4 { _ = try sender.send(25) }
        }
        ready.wait()
        let (main, _) = try onNewThread {
            for _ in 0..<4 { try check(receiver.receive(100), "recv") }
            #expect(receiver.sendFailing(25) < 0) // not connected: fails, so it is not traffic
        }
        done.signal()
        let helperTraffic = try #require(try finalTraffic(of: helper.tid, recorder))
        let mainTraffic = try #require(try finalTraffic(of: main, recorder))
        #expect(helperTraffic == Traffic(udpTxPackets: 4, udpTxBytes: 100))
        #expect(mainTraffic == Traffic(udpRxPackets: 4, udpRxBytes: 100))
    }

    @Test(arguments: AccountingEngine.Kind.allCases)
    func mmsgCountsEachMessage(_ kind: AccountingEngine.Kind) throws {
        let recorder = try Recorder(kind: kind)
        let (tid, (sent, received)) = try onNewThread {
            let (sender, receiver, _) = try udpPair(.v4, connected: true)
            return (test_sendmmsg(sender.fd, 50, 5), test_recvmmsg(receiver.fd, 50, 5))
        }
        #expect(received == 5)
        #expect(sent == 5)
        let traffic = try #require(try finalTraffic(of: tid, recorder))
        #expect(traffic == Traffic(udpTxPackets: 5, udpTxBytes: 250, udpRxPackets: 5, udpRxBytes: 250))
    }

    @Test(arguments: AccountingEngine.Kind.allCases)
    func failedReceivesAreNotTraffic(_ kind: AccountingEngine.Kind) throws {
        let recorder = try Recorder(kind: kind)
        let (tid, failures) = try onNewThread {
            let (sender, receiver, _) = try udpPair(.v6, connected: true)
            receiver.setNonBlocking()
            var failures = 0
            for _ in 0..<100 where receiver.receive(100) < 0 && errno == EAGAIN { failures += 1 }
            _ = try sender.send(10)
            try check(receiver.receive(100), "recv")
            return failures
        }
        #expect(failures == 100)
        let traffic = try #require(try finalTraffic(of: tid, recorder))
        #expect(traffic == Traffic(udpTxPackets: 1, udpTxBytes: 10, udpRxPackets: 1, udpRxBytes: 10))
    }

    @Test(arguments: AccountingEngine.Kind.allCases)
    func peekingIsNotTraffic(_ kind: AccountingEngine.Kind) throws {
        let recorder = try Recorder(kind: kind)
        let (tid, peeked) = try onNewThread {
            let (client, server) = try tcpPair(.v4)
            _ = try client.send(64)
            // Wait until the data is there, then peek at it twice before reading it once.
            var peeked = 0
            for _ in 0..<2 { peeked += try check(server.receive(64, flags: Int32(MSG_PEEK | MSG_WAITALL)), "recv(MSG_PEEK)") }
            try check(server.receive(64), "recv")
            return peeked
        }
        #expect(peeked == 128)
        let traffic = try #require(try finalTraffic(of: tid, recorder))
        #expect(traffic == Traffic(tcpTxPackets: 1, tcpTxBytes: 64, tcpRxPackets: 1, tcpRxBytes: 64))
    }

    /// With one slot, every thread but one takes the task-storage path, and the slot is
    /// freed and claimed again as threads come and go: the counts stay exact either way.
    @Test(arguments: AccountingEngine.Kind.allCases, [nil, 1] as [UInt32?])
    func exitedThreadsStayInTheProcessTotal(_ kind: AccountingEngine.Kind, slots: UInt32?) throws {
        let recorder = try Recorder(slots: slots, kind: kind)
        let me = getpid()
        let (first, _) = try onNewThread {
            let (sender, receiver, _) = try udpPair(.v4, connected: true)
            for _ in 0..<3 { _ = try sender.send(10) }
            for _ in 0..<3 { try check(receiver.receive(100), "recv") }
        }
        _ = try finalTraffic(of: first, recorder)
        let (second, _) = try onNewThread {
            let (client, server) = try tcpPair(.v4)
            for _ in 0..<2 { _ = try client.send(500) }
            return try server.receiveAll(1000)
        }
        let secondTraffic = try #require(try finalTraffic(of: second, recorder))
        let process = try #require(recorder.process(me))
        #expect(!process.exited)
        let firstTraffic = try #require(recorder.threads[first]?.total)
        #expect(firstTraffic == Traffic(udpTxPackets: 3, udpTxBytes: 30, udpRxPackets: 3, udpRxBytes: 30))
        #expect(secondTraffic.tcpTxBytes == 1000 && secondTraffic.tcpRxBytes == 1000 && secondTraffic.tcpTxPackets == 2)
        // The process total is exactly the sum of its threads' final counters, though every
        // one of them has exited (other suites running in this process may add threads).
        let threads = recorder.threads.values.filter { $0.id.process == process.id }
        #expect(threads.contains { $0.id.tid == first && $0.exited } && threads.contains { $0.id.tid == second && $0.exited })
        #expect(process.total == threads.reduce(.zero) { $0 + $1.total })
        // Later samples keep both threads' counters in the total although both are gone.
        try recorder.poll()
        let later = try #require(recorder.process(me))
        let laterThreads = recorder.threads.values.filter { $0.id.process == process.id }
        #expect(later.total == laterThreads.reduce(.zero) { $0 + $1.total })
        #expect(laterThreads.contains { $0.id.tid == first && $0.total == firstTraffic })
        #expect(laterThreads.contains { $0.id.tid == second && $0.total == secondTraffic })
    }

    @Test(arguments: AccountingEngine.Kind.allCases)
    func exitedChildIsReportedOnceWithItsFinalCounters(_ kind: AccountingEngine.Kind) throws {
        let recorder = try Recorder(kind: kind)
        let (_, receiver, address) = try udpPair(.v4, connected: false)
        let port = try portNumber(address)
        let child = try runBash("exec 3<>/dev/udp/127.0.0.1/\(port); printf 'hello netacct' >&3; printf '!!' >&3")
        #expect(receiver.receive(100) == 13)
        try recorder.poll { recorder.process(child)?.exited == true }
        let sample = try #require(recorder.process(child))
        #expect(sample.exited)
        #expect(sample.comm == "bash")
        #expect(sample.total == Traffic(udpTxPackets: 2, udpTxBytes: 15))
        #expect(sample.delta == sample.total)
        // Reported once: the next sample no longer has it.
        let next = try recorder.sample()
        #expect(!next.contains { $0.id == sample.id })
    }

    /// A thread that is not its process's leader calls exec: the kernel ends the other threads
    /// and gives it the leader's TID. Its counts before the exec are its exit record (its slot
    /// is freed), the program it runs counts as the leader, and the process is reported exited
    /// once when it ends, with every byte of every thread.
    @Test(arguments: AccountingEngine.Kind.allCases)
    func anExecFromASecondThreadEndsThatThreadAndTheProcessStillExits(_ kind: AccountingEngine.Kind) throws {
        let recorder = try Recorder(kind: kind)
        let (_, receiver, address) = try udpPair(.v4, connected: false)
        let port = try portNumber(address)
        let child = try PythonChild("""
            import ctypes, os, socket, sys, threading
            port = int(sys.argv[1])
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.sendto(b"m" * 10, ("127.0.0.1", port))
            def second():
                ctypes.CDLL(None).prctl(15, b"worker", 0, 0, 0)  # PR_SET_NAME: the thread's own name
                s.sendto(b"t" * 100, ("127.0.0.1", port))
                print(threading.get_native_id(), flush=True)
                os.execv("/bin/bash", ["bash", "-c", f"exec 3<>/dev/udp/127.0.0.1/{port}; printf 1234567 >&3; printf 7654321 >&3; echo sent; read x; exit 0"])
            threading.Thread(target=second).start()
            threading.Event().wait()
            """, ["\(port)"])
        let second = try #require(Int32(child.line()), "the second thread's TID")
        #expect(child.line() == "sent")
        #expect(second != child.pid)
        for size in [10, 100, 7, 7] { #expect(receiver.receive(200) == size) }
        let all = Traffic(udpTxPackets: 4, udpTxBytes: 124)
        // The second thread's counts are its exit record; the process lives on with all of them.
        try recorder.poll { recorder.threads[second]?.exited == true && recorder.process(child.pid)?.total == all }
        #expect(recorder.threads[second].map { $0.exited && $0.comm == "worker" && $0.total == Traffic(udpTxPackets: 1, udpTxBytes: 100) } == true)
        for _ in 0..<3 {
            try recorder.poll()
            usleep(50_000)
        }
        // Its end is seen as it happens, not left to a look at /proc.
        try Self.expectLiveThenExited(child, recorder, total: all)
        #expect(try recorder.engine.losses().droppedExits == 0)
    }

    /// The record an exec from a second thread leaves names the thread by its own name and its
    /// process by the process's: the process is not renamed after the thread (its leader never
    /// counted, so no other record names it meanwhile).
    @Test(arguments: AccountingEngine.Kind.allCases)
    func anExecFromASecondThreadKeepsItsProcesssName(_ kind: AccountingEngine.Kind) throws {
        let recorder = try Recorder(kind: kind)
        let (_, receiver, address) = try udpPair(.v4, connected: false)
        let child = try PythonChild("""
            import ctypes, os, socket, sys, threading
            port = int(sys.argv[1])
            def second():
                ctypes.CDLL(None).prctl(15, b"worker", 0, 0, 0)  # PR_SET_NAME
                socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"w" * 40, ("127.0.0.1", port))
                print(threading.get_native_id(), flush=True)
                os.execv("/bin/sh", ["sh", "-c", "echo exec; read x; exit 0"])
            threading.Thread(target=second).start()
            threading.Event().wait()
            """, ["\(try portNumber(address))"])
        let second = try #require(Int32(child.line()), "the second thread's TID")
        #expect(child.line() == "exec")
        #expect(receiver.receive(200) == 40)
        try recorder.poll { recorder.threads[second]?.exited == true }
        #expect(recorder.threads[second].map { $0.comm == "worker" && $0.total == Traffic(udpTxPackets: 1, udpTxBytes: 40) } == true)
        let process = try #require(recorder.process(child.pid))
        #expect(process.comm == "python3" && !process.exited, "\(process)")
        #expect(try child.finish() == 0)
    }

    /// A thread that counted in the overflow hash while another thread of its process owned its
    /// slot, and then claims that slot when it is freed, is still one counted thread: its process
    /// is reported exited when it ends, with every byte. (One slot; only the child counted, so
    /// the slot is its threads' alone.)
    @Test(arguments: AccountingEngine.Kind.allCases)
    func aThreadThatMovesFromTheOverflowToAFreedSlotIsCountedOnce(_ kind: AccountingEngine.Kind) throws {
        let (_, receiver, address) = try udpPair(.v4, connected: false)
        let port = try portNumber(address)
        let child = try PythonChild("""
            import os, socket, sys, threading, time
            address = ("127.0.0.1", int(sys.argv[1]))
            sys.stdin.readline()
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            first_sent, second_sent = threading.Event(), threading.Event()
            def first():
                s.sendto(b"a" * 10, address)
                first_sent.set()
                second_sent.wait()
            a = threading.Thread(target=first)
            a.start()
            first_sent.wait()
            def second():
                s.sendto(b"b" * 20, address)
                second_sent.set()
                while os.path.exists(f"/proc/self/task/{a.native_id}"):
                    time.sleep(0.001)
                s.sendto(b"c" * 30, address)
            b = threading.Thread(target=second)
            b.start()
            b.join()
            print("sent", flush=True)
            sys.stdin.readline()
            """, ["\(port)"])
        let recorder = try Recorder(onlyPID: child.pid, slots: 1, kind: kind)
        child.write("go\n")
        #expect(child.line() == "sent")
        for size in [10, 20, 30] { #expect(receiver.receive(200) == size) }
        let all = Traffic(udpTxPackets: 3, udpTxBytes: 60)
        try recorder.poll { recorder.process(child.pid)?.total == all }
        try Self.expectLiveThenExited(child, recorder, total: all)
    }

    @Test(arguments: AccountingEngine.Kind.allCases)
    func aFullRegistryNeverMakesALiveProcessExited(_ kind: AccountingEngine.Kind) throws {
        // Room for two processes: others on the machine may take them; most of ours find it full.
        let recorder = try Recorder(registryEntries: 2, kind: kind)
        let (_, receiver, address) = try udpPair(.v4, connected: false)
        _ = receiver
        var pids = [pid_t](repeating: 0, count: 8)
        let started = Int(test_spawn_worker_senders(8, try portNumber(address), 100, &pids))
        #expect(started == 8)
        var killed = false
        defer { if !killed { for pid in pids { kill(pid, SIGKILL); waitpid(pid, nil, 0) } } }
        // Each process's one talking thread has exited; the processes live on.
        try recorder.poll { pids.allSatisfy { recorder.process($0)?.total.udpTxPackets == 1 } }
        for _ in 0..<5 {
            try recorder.poll()
            usleep(100_000)
        }
        for pid in pids {
            let sample = recorder.process(pid)
            #expect(sample?.exited == false, "process \(pid) reported exited while it runs")
            #expect(sample?.total == Traffic(udpTxPackets: 1, udpTxBytes: 100))
        }
        #expect(try recorder.engine.losses().unregisteredProcesses >= 6)
        // When they end, each is reported exited once, with its counters.
        for pid in pids { kill(pid, SIGKILL); waitpid(pid, nil, 0) }
        killed = true
        try recorder.poll { pids.allSatisfy { recorder.process($0)?.exited == true } }
        for pid in pids {
            #expect(recorder.process(pid).map { $0.exited && $0.total == Traffic(udpTxPackets: 1, udpTxBytes: 100) } == true)
        }
    }

    @Test(arguments: AccountingEngine.Kind.allCases)
    func onlyPIDCountsOneProcess(_ kind: AccountingEngine.Kind) throws {
        let recorder = try Recorder(onlyPID: getpid(), kind: kind)
        let (_, receiver, address) = try udpPair(.v4, connected: false)
        let child = try runBash("exec 3<>/dev/udp/127.0.0.1/\(try portNumber(address)); printf 'x' >&3")
        #expect(receiver.receive(100) == 1)
        try recorder.poll()
        #expect(recorder.process(child) == nil)
        #expect(recorder.process(getpid())?.total.udpRxBytes == 1)
    }

    @Test(arguments: AccountingEngine.Kind.allCases)
    func mptcpCountsAsTCP(_ kind: AccountingEngine.Kind) throws {
        let recorder = try Recorder(kind: kind)
        let listener: Int32 = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 262)
        try #require(listener >= 0 || errno != EPROTONOSUPPORT, "this kernel has no MPTCP")
        close(listener)
        let (tid, _) = try onNewThread {
            let listener = Socket(fd: try check(socket(AF_INET, Int32(SOCK_STREAM.rawValue), 262), "socket(MPTCP)"))
            try listener.bind(LoopbackAddress(.v4))
            try check(listen(listener.fd, 1), "listen")
            let client = Socket(fd: try check(socket(AF_INET, Int32(SOCK_STREAM.rawValue), 262), "socket(MPTCP)"))
            try client.connect(try listener.localAddress())
            let server = Socket(fd: try check(accept(listener.fd, nil, nil), "accept"))
            _ = try client.send(300)
            return try server.receiveAll(300)
        }
        let traffic = try #require(try finalTraffic(of: tid, recorder))
        #expect(traffic.tcpTxPackets == 1 && traffic.tcpTxBytes == 300 && traffic.tcpRxBytes == 300)
        #expect(traffic.udpTxPackets == 0 && traffic.udpRxPackets == 0)
    }
}

func portNumber(_ address: LoopbackAddress) throws -> UInt16 {
    withUnsafeBytes(of: address.storage) { raw in
        raw.load(fromByteOffset: 2, as: UInt16.self).bigEndian
    }
}

/// Runs `bash -c script` to completion and returns its PID.
func runBash(_ script: String) throws -> Int32 {
    var pid: pid_t = 0
    let arguments = ["bash", "-c", script]
    var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
    defer { argv.forEach { free($0) } }
    let result = posix_spawnp(&pid, "bash", nil, nil, &argv, environ)
    guard result == 0 else { throw SocketError(call: "posix_spawnp(bash)", code: result) }
    var status: Int32 = 0
    waitpid(pid, &status, 0)
    return pid
}
