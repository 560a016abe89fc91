import CTestSupport
import Foundation
import Glibc
import NetacctKit
import ProtocolClients

/// See main.swift: `netacct-bench metrics <netacct binary> [processes] [seconds] [scrape-interval]`.
func runMetricsBenchmark(_ arguments: [String]) {
    guard let binary = arguments.first else { fail("usage: netacct-bench metrics <netacct binary> [processes] [seconds]") }
    let processes = arguments.count > 1 ? Int(arguments[1]) ?? 10_000 : 10_000
    let seconds = arguments.count > 2 ? Int(arguments[2]) ?? 60 : 60
    // Seconds between scrapes while the CPU is measured (0: none, to tell HTTP's share apart).
    let scrapeInterval = arguments.count > 3 ? Int(arguments[3]) ?? 15 : 15
    let port: UInt16 = 19478 + UInt16(getpid() % 100)

    let (receiver, address) = boundLoopbackSocket(SOCK_DGRAM)
    defer { close(receiver) }
    let daemon = BenchDaemon(binary: binary, arguments: ["--listen", "127.0.0.1:\(port)"])
    defer { daemon.stop() }
    guard let atop = try? NetatopClient(path: daemon.socketPath) else { fail("cannot connect to the daemon") }

    var pids = [pid_t](repeating: 0, count: processes)
    let started = Int(test_spawn_senders(Int32(processes), address.sin_port.bigEndian, 100, &pids))
    defer {
        for pid in pids.prefix(started) { kill(pid, SIGKILL) }
        for pid in pids.prefix(started) { waitpid(pid, nil, 0) }
    }
    sleep(2)
    do {
        let known = try atop.sample().count
        var scrapes: [Double] = [], atopTimes: [Double] = [], size = 0
        for _ in 0..<20 {
            var start = Date()
            size = httpGet(port: port, path: "/metrics")
            scrapes.append(Date().timeIntervalSince(start) * 1000)
            start = Date()
            atop.request()
            _ = try atop.replyInBulk()
            atopTimes.append(Date().timeIntervalSince(start) * 1000)
        }
        scrapes.sort()
        atopTimes.sort()
        // As in production: one scrape per 15 s, one atop request per second.
        let before = cpuTicks(daemon.pid)
        let wall = Date()
        for second in 0..<seconds {
            sleep(1)
            if scrapeInterval > 0 && second % scrapeInterval == 0 { _ = httpGet(port: port, path: "/metrics") }
            _ = try atop.sample()
        }
        let cpuSeconds = Double(cpuTicks(daemon.pid) - before) / Double(sysconf(Int32(_SC_CLK_TCK)))
        let elapsed = Date().timeIntervalSince(wall)
        let memory = memoryKiB(daemon.pid)
        func ms(_ value: Double) -> String { String(format: "%.2f ms", value) }
        print("netacct-bench metrics: \(started) live processes, \(known) in atop's reply, /metrics \(size) bytes, kernel \(KernelProbe.kernelRelease)")
        print("")
        print("| figure | value | goal |")
        print("|---|---|---|")
        print("| one /metrics scrape, whole response (median of 20) | \(ms(scrapes[10])) (min \(ms(scrapes[0])), max \(ms(scrapes[19]))) | <= 20 ms |")
        print("| an atop request right after a scrape, read in bulk (median of 20) | \(ms(atopTimes[10])) (max \(ms(atopTimes[19]))) | <= 5 ms |")
        print("| daemon CPU, \(scrapeInterval > 0 ? "one scrape per \(scrapeInterval) s" : "no scrape") and one atop request per second for \(seconds) s | \(String(format: "%.2f", cpuSeconds / elapsed * 100))% of one core | <= 0.5% |")
        print("| daemon resident memory with HTTP on, after the scrapes (VmRSS) | \(memory.rss) KiB = \(megabytes(memory.rss)) | <= 24 MB |")
        print("| its peak since start (VmHWM) | \(memory.peak) KiB = \(megabytes(memory.peak)) | |")
    } catch {
        fail("\(error)")
    }
}

/// One HTTP/1.0 GET on loopback, read to the end; returns the bytes received.
func httpGet(port: UInt16, path: String) -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in(sin_family: sa_family_t(AF_INET), sin_port: port.bigEndian,
                              sin_addr: in_addr(s_addr: UInt32(0x7f00_0001).bigEndian), sin_zero: (0, 0, 0, 0, 0, 0, 0, 0))
    let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard connected == 0 else { fail("cannot connect to the daemon's HTTP port \(port)") }
    let request = "GET \(path) HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n"
    _ = request.withCString { send(fd, $0, strlen($0), 0) }
    var buffer = [UInt8](repeating: 0, count: 1 << 16), total = 0
    while true {
        let count = recv(fd, &buffer, buffer.count, 0)
        if count <= 0 { break }
        total += count
    }
    return total
}
