import NIOCore
import Accounting
import NetacctKit

/// atop's `struct netpertask`, as the netatop-bpf protocol carries it: 96 bytes, native
/// (little-endian) layout, as atop (>= 2.10) and netatop-bpf define it.
///
/// ```
/// 0  int32 id (TGID; 0 ends a reply)   4 padding   8 uint64 btime   16 char command[16]
/// 32 tcpsndpacks 40 tcpsndbytes 48 tcprcvpacks 56 tcprcvbytes
/// 64 udpsndpacks 72 udpsndbytes 80 udprcvpacks 88 udprcvbytes       (uint64 each)
/// ```
public struct NetatopRecord: Equatable, Sendable {
    public static let size = 96

    public var pid: Int32
    /// Start time (atop ignores it for netatop-bpf; netacct sends seconds since boot).
    public var startSeconds: UInt64
    public var command: String
    public var traffic: Traffic

    public init(pid: Int32, startSeconds: UInt64 = 0, command: String = "", traffic: Traffic = .zero) {
        self.pid = pid
        self.startSeconds = startSeconds
        self.command = command
        self.traffic = traffic
    }

    /// The record that ends a reply.
    public static let terminator = NetatopRecord(pid: 0)

    /// Appends the record's 96 bytes to `buffer`.
    public func encode(into buffer: inout ByteBuffer) {
        Self.encode(pid: pid, startSeconds: startSeconds, command: command, traffic: traffic, into: &buffer)
    }

    /// Appends a record without making a `NetatopRecord` first (the daemon's reply loop).
    public static func encode(pid: Int32, startSeconds: UInt64, command: String, traffic: Traffic, into buffer: inout ByteBuffer) {
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: Self.size) { raw in
            raw.storeBytes(of: pid.littleEndian, toByteOffset: 0, as: Int32.self)
            raw.storeBytes(of: 0, toByteOffset: 4, as: UInt32.self)
            raw.storeBytes(of: startSeconds.littleEndian, toByteOffset: 8, as: UInt64.self)
            raw.storeBytes(of: 0, toByteOffset: 16, as: UInt64.self)
            raw.storeBytes(of: 0, toByteOffset: 24, as: UInt64.self)
            var command = command
            command.withUTF8 { name in
                let count = min(name.count, 15)
                UnsafeMutableRawBufferPointer(rebasing: raw[16..<(16 + count)])
                    .copyMemory(from: UnsafeRawBufferPointer(UnsafeBufferPointer(rebasing: name[0..<count])))
            }
            let t = traffic
            let values = (t.tcpTxPackets, t.tcpTxBytes, t.tcpRxPackets, t.tcpRxBytes,
                          t.udpTxPackets, t.udpTxBytes, t.udpRxPackets, t.udpRxBytes)
            withUnsafeBytes(of: values) { counters in
                // Native little-endian UInt64s, as atop's struct has them.
                UnsafeMutableRawBufferPointer(rebasing: raw[32..<96]).copyMemory(from: counters)
            }
            return Self.size
        }
    }

    /// Decodes one record (for clients and tests); nil if `bytes` is not 96 long.
    public init?(decoding bytes: some Collection<UInt8>) {
        guard bytes.count == Self.size else { return nil }
        let raw = Array(bytes)
        func get<T: FixedWidthInteger>(_ offset: Int, _: T.Type) -> T {
            raw.withUnsafeBytes { T(littleEndian: $0.loadUnaligned(fromByteOffset: offset, as: T.self)) }
        }
        let name = raw[16..<32].prefix { $0 != 0 }
        let v = (0..<8).map { get(32 + $0 * 8, UInt64.self) }
        self.init(pid: get(0, Int32.self), startSeconds: get(8, UInt64.self),
                  command: String(decoding: name, as: UTF8.self),
                  traffic: Traffic(tcpTxPackets: v[0], tcpTxBytes: v[1], tcpRxPackets: v[2], tcpRxBytes: v[3],
                                   udpTxPackets: v[4], udpTxBytes: v[5], udpRxPackets: v[6], udpRxBytes: v[7]))
    }
}
