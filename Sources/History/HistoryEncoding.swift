import DaemonProtocol

/// An interval's processes as one BLOB: each entry the process's number in the `processes`
/// table (as the difference from the one before, entries sorted), a varint of flags (which of
/// the eight counters are not zero, and whether it exited), then those counters as varints.
/// 8.4 bytes a process on average; a row per process and interval took 46.9 (BENCHMARKS.md,
/// History).
struct IntervalEntries {
    struct Entry: Equatable {
        var process: Int64
        var counters: Counters
        var exited: Bool
    }

    static func encode(_ entries: [Entry]) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(entries.count * 10)
        func varint(_ value: UInt64) {
            var value = value
            while value >= 0x80 {
                bytes.append(UInt8(truncatingIfNeeded: value) | 0x80)
                value >>= 7
            }
            bytes.append(UInt8(value))
        }
        var previous: Int64 = 0
        for entry in entries.sorted(by: { $0.process < $1.process }) {
            varint(UInt64(entry.process - previous))
            previous = entry.process
            let values = entry.counters.values
            var flags: UInt64 = entry.exited ? 0x100 : 0
            for (bit, value) in values.enumerated() where value != 0 { flags |= 1 << UInt64(bit) }
            varint(flags)
            for value in values where value != 0 { varint(value) }
        }
        return bytes
    }

    /// The entries of `bytes` (a damaged BLOB: those before the damage).
    static func decode(_ bytes: UnsafeRawBufferPointer, _ body: (Entry) -> Void) {
        var index = 0
        func varint() -> UInt64? {
            var value: UInt64 = 0, shift: UInt64 = 0
            while index < bytes.count, shift < 64 {
                let byte = bytes[index]
                index += 1
                value |= UInt64(byte & 0x7F) << shift
                if byte & 0x80 == 0 { return value }
                shift += 7
            }
            return nil
        }
        var process: Int64 = 0
        while index < bytes.count {
            guard let delta = varint(), let flags = varint() else { return }
            process &+= Int64(bitPattern: delta)
            var values = [UInt64](repeating: 0, count: 8)
            for bit in 0..<8 where flags & (1 << UInt64(bit)) != 0 {
                guard let value = varint() else { return }
                values[bit] = value
            }
            body(Entry(process: process, counters: Counters(values), exited: flags & 0x100 != 0))
        }
    }
}

extension Counters {
    init(_ values: [UInt64]) {
        self.init(tcpTxPackets: values[0], tcpTxBytes: values[1], tcpRxPackets: values[2], tcpRxBytes: values[3],
                  udpTxPackets: values[4], udpTxBytes: values[5], udpRxPackets: values[6], udpRxBytes: values[7])
    }
}
