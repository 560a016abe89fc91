import FoundationEssentials
import Glibc

/// The daemon's local API, for `netacct top` and other local programs: a Unix stream socket
/// where each request is a line ("sample\n") and each reply one JSON line with every process's
/// cumulative counters (exited ones once, as for atop) and the kernel side's losses.
public enum DaemonAPI {
    public static let defaultSocket = "/run/netacct.sock"

    public struct Reply: Codable, Sendable {
        public var processes: [ProcessTable.ProcessSample]
        public var losses: Snapshot.Losses
        /// The daemon keeps per-thread rows (`netacct daemon --threads`).
        public var threads: Bool
        public init(processes: [ProcessTable.ProcessSample], losses: Snapshot.Losses, threads: Bool) {
            self.processes = processes
            self.losses = losses
            self.threads = threads
        }
    }

    /// A blocking client connection to a running daemon.
    public final class Connection {
        private let fd: Int32
        private var buffer: [UInt8] = []

        /// Connects to the daemon's API socket; nil when no daemon listens there.
        public init?(path: String = DaemonAPI.defaultSocket) {
            var address = sockaddr_un()
            address.sun_family = sa_family_t(AF_UNIX)
            let bytes = Array(path.utf8)
            guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { return nil }
            withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
            let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard fd >= 0 else { return nil }
            let connected = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
            }
            guard connected == 0 else {
                close(fd)
                return nil
            }
            self.fd = fd
        }

        deinit { close(fd) }

        public func sample() throws -> Reply {
            let request = Array("sample\n".utf8)
            guard send(fd, request, request.count, Int32(MSG_NOSIGNAL)) == request.count else {
                throw NetacctError("The netacct daemon closed the connection (\(String(cString: strerror(errno)))).")
            }
            while true {
                if let newline = buffer.firstIndex(of: 0x0A) {
                    let line = Data(buffer[..<newline])
                    buffer.removeSubrange(...newline)
                    do {
                        return try JSONDecoder().decode(Reply.self, from: line)
                    } catch {
                        throw NetacctError("The netacct daemon sent a reply this netacct does not understand: \(error)")
                    }
                }
                var chunk = [UInt8](repeating: 0, count: 1 << 16)
                let count = recv(fd, &chunk, chunk.count, 0)
                if count < 0 && errno == EINTR { continue }
                guard count > 0 else { throw NetacctError("The netacct daemon closed the connection.") }
                buffer.append(contentsOf: chunk[..<count])
            }
        }
    }
}

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
