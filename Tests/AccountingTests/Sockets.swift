import Glibc

/// Plain loopback sockets for generating exactly known traffic, with no library in between
/// that could add, split or merge calls.
struct SocketError: Error, CustomStringConvertible {
    var call: String
    var code: Int32
    var description: String { "\(call): \(String(cString: strerror(code)))" }
}

@discardableResult
func check(_ result: Int32, _ call: String) throws -> Int32 {
    if result < 0 { throw SocketError(call: call, code: errno) }
    return result
}

@discardableResult
func check(_ result: Int, _ call: String) throws -> Int {
    if result < 0 { throw SocketError(call: call, code: errno) }
    return result
}

enum Family {
    case v4, v6
    var domain: Int32 { self == .v4 ? AF_INET : AF_INET6 }
}

/// A socket address on the loopback interface.
struct LoopbackAddress {
    var storage = sockaddr_storage()
    var length: socklen_t

    init(_ family: Family, port: UInt16 = 0) {
        switch family {
        case .v4:
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = port.bigEndian
            address.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
            length = socklen_t(MemoryLayout<sockaddr_in>.size)
            withUnsafeBytes(of: address) { raw in
                withUnsafeMutableBytes(of: &storage) { $0.copyMemory(from: raw) }
            }
        case .v6:
            var address = sockaddr_in6()
            address.sin6_family = sa_family_t(AF_INET6)
            address.sin6_port = port.bigEndian
            address.sin6_addr = in6addr_loopback
            length = socklen_t(MemoryLayout<sockaddr_in6>.size)
            withUnsafeBytes(of: address) { raw in
                withUnsafeMutableBytes(of: &storage) { $0.copyMemory(from: raw) }
            }
        }
    }

    func withPointer<T>(_ body: (UnsafePointer<sockaddr>, socklen_t) throws -> T) rethrows -> T {
        try withUnsafeBytes(of: storage) { raw in
            try body(raw.baseAddress!.assumingMemoryBound(to: sockaddr.self), length)
        }
    }
}

/// A socket that closes itself.
final class Socket {
    let fd: Int32

    init(_ family: Family, _ type: Int32) throws {
        fd = try check(socket(family.domain, type | Int32(SOCK_CLOEXEC.rawValue), 0), "socket")
    }

    init(fd: Int32) { self.fd = fd }

    deinit { close(fd) }

    func bind(_ address: LoopbackAddress) throws {
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        try address.withPointer { try check(Glibc.bind(fd, $0, $1), "bind") }
    }

    func connect(_ address: LoopbackAddress) throws {
        try address.withPointer { try check(Glibc.connect(fd, $0, $1), "connect") }
    }

    /// The address the socket is bound to (to learn the port the kernel chose).
    func localAddress() throws -> LoopbackAddress {
        var address = LoopbackAddress(.v4)
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        try withUnsafeMutableBytes(of: &address.storage) { raw in
            try check(getsockname(fd, raw.baseAddress!.assumingMemoryBound(to: sockaddr.self), &length), "getsockname")
        }
        address.length = length
        return address
    }

    func send(_ count: Int, flags: Int32 = 0) throws -> Int {
        let bytes = [UInt8](repeating: 0x61, count: count)
        return try check(Glibc.send(fd, bytes, count, flags), "send")
    }

    /// One send call whose failure is expected; returns its raw result.
    func sendFailing(_ count: Int) -> Int {
        let bytes = [UInt8](repeating: 0x61, count: count)
        return Glibc.send(fd, bytes, count, 0)
    }

    func sendTo(_ count: Int, _ address: LoopbackAddress) throws -> Int {
        let bytes = [UInt8](repeating: 0x62, count: count)
        return try address.withPointer { try check(sendto(fd, bytes, count, 0, $0, $1), "sendto") }
    }

    /// One recv call; returns its result (-1 with errno for a failure, as the kernel saw it).
    func receive(_ capacity: Int, flags: Int32 = 0) -> Int {
        var buffer = [UInt8](repeating: 0, count: capacity)
        return recv(fd, &buffer, capacity, flags)
    }

    /// Receives until `total` bytes have arrived; returns how many recv calls that took.
    func receiveAll(_ total: Int) throws -> Int {
        var received = 0, calls = 0
        while received < total {
            let n = try check(receive(total - received), "recv")
            if n == 0 { throw SocketError(call: "recv (peer closed)", code: 0) }
            received += n
            calls += 1
        }
        return calls
    }

    func setNonBlocking() {
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
    }
}

/// A connected TCP pair over loopback: (client, server side of the accepted connection).
func tcpPair(_ family: Family) throws -> (client: Socket, server: Socket) {
    let listener = try Socket(family, Int32(SOCK_STREAM.rawValue))
    try listener.bind(LoopbackAddress(family))
    try check(listen(listener.fd, 1), "listen")
    let client = try Socket(family, Int32(SOCK_STREAM.rawValue))
    try client.connect(try listener.localAddress())
    let server = Socket(fd: try check(accept(listener.fd, nil, nil), "accept"))
    return (client, server)
}

/// Two UDP sockets on loopback: a receiver bound to a port, a sender (connected to it if asked).
func udpPair(_ family: Family, connected: Bool) throws -> (sender: Socket, receiver: Socket, address: LoopbackAddress) {
    let receiver = try Socket(family, Int32(SOCK_DGRAM.rawValue))
    try receiver.bind(LoopbackAddress(family))
    let address = try receiver.localAddress()
    let sender = try Socket(family, Int32(SOCK_DGRAM.rawValue))
    if connected { try sender.connect(address) }
    return (sender, receiver, address)
}
