import Glibc
import NetacctServers
import NetacctKit

/// A client of the netatop-bpf protocol that behaves exactly as atop does: one 96-byte
/// request (its content is not looked at), then 96-byte `recv`s until a record with id 0,
/// taking a short read as a broken reply. For tests and benchmarks of the daemon.
public final class NetatopClient {
    private let socket: UnixSocket
    public var fd: Int32 { socket.fd }

    public init(path: String, timeoutSeconds: Int = 5) throws {
        do {
            socket = try UnixSocket.connect(path)
        } catch let error as UnixSocket.ConnectError {
            throw NetacctError(error.description)
        }
        socket.setReceiveTimeout(seconds: timeoutSeconds)
    }

    /// Sends raw bytes (a test may send half a request).
    public func send(_ bytes: [UInt8]) {
        socket.send(bytes)
    }

    /// Sends one request of uninitialised-looking bytes, as atop does.
    public func request() {
        send((0..<NetatopRecord.size).map { _ in UInt8.random(in: 0...255) })
    }

    /// Reads one reply up to its terminator; every recv must return a whole record.
    public func reply() throws -> [NetatopRecord] {
        var records: [NetatopRecord] = []
        var buffer = [UInt8](repeating: 0, count: NetatopRecord.size)
        while true {
            let count = recv(fd, &buffer, NetatopRecord.size, 0)
            guard count == NetatopRecord.size, let record = NetatopRecord(decoding: buffer) else {
                throw NetacctError(count < 0 ? "recv: \(String(cString: strerror(errno)))"
                                             : "recv returned \(count) bytes, not a whole \(NetatopRecord.size)-byte record")
            }
            if record.pid == 0 { return records }
            records.append(record)
        }
    }

    /// Reads one reply with large reads instead of atop's 96-byte ones: what the daemon's
    /// answer costs without atop's own reading cost. Returns the number of data records.
    public func replyInBulk() throws -> Int {
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        var pending: [UInt8] = []
        var records = 0
        while true {
            let count = recv(fd, &buffer, buffer.count, 0)
            guard count > 0 else { throw NetacctError("recv: \(count < 0 ? String(cString: strerror(errno)) : "closed")") }
            pending.append(contentsOf: buffer[..<count])
            var offset = 0
            while pending.count - offset >= NetatopRecord.size {
                let id = pending.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: offset, as: Int32.self) }
                offset += NetatopRecord.size
                if id == 0 { return records }
                records += 1
            }
            pending.removeFirst(offset)
        }
    }

    public func sample() throws -> [NetatopRecord] {
        request()
        return try reply()
    }
}
