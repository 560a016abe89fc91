import FoundationEssentials
import Glibc
import Logging
import SystemPackage
import Accounting
import DaemonProtocol
import NetacctKit

/// Where `top --wire` reads: a running daemon that counts the wire, else its own programs.
typealias WireSource = CollectorSource<WireEngine>

extension CollectorSource<WireEngine> {
    init(_ configuration: TopApp.Configuration, logger: Logger) throws {
        try self.init(configuration, reading: WireReply.self, what: "wire counters", option: "--wire", logger: logger) { try WireEngine(logger: logger) }
    }

    /// The counters since the daemon or the engine started.
    func sample() throws -> WireSample {
        switch self {
        case .local(let engine): try engine.sample()
        case .daemon(let connection): WireSample(try connection.request(WireReply.self))
        }
    }
}

extension WireSample {
    /// A daemon's reply as a sample: the same counts, the interfaces' unattributed frames kept
    /// as the daemon gave them (what it no longer keeps by owner is in `forgotten`).
    init(_ reply: WireReply) {
        self.init()
        func counters(_ c: WireCounts) -> WireCounters {
            WireCounters(txPackets: c.txPackets, txBytes: c.txBytes, rxPackets: c.rxPackets, rxBytes: c.rxBytes,
                         retransmittedSegments: c.retransmittedSegments, retransmittedBytes: c.retransmittedBytes,
                         udpTxPackets: c.udpTxPackets, udpTxBytes: c.udpTxBytes, udpRxPackets: c.udpRxPackets, udpRxBytes: c.udpRxBytes)
        }
        for process in reply.processes {
            let owner = WireOwner(pid: process.pid, start: UInt32(truncatingIfNeeded: process.startNs ?? 0))
            for on in process.interfaces {
                owned[owner, default: [:]][InterfaceID(netns: on.netns, ifindex: on.ifindex)] = counters(on.counts)
            }
            if let start = process.startNs, let comm = process.comm {
                processes[owner] = WireProcess(pid: process.pid, startNanoseconds: start, cgroupID: process.cgroupId ?? 0, comm: comm,
                                               exited: process.exited)
            }
        }
        for interface in reply.interfaces {
            let id = InterfaceID(netns: interface.netns, ifindex: interface.ifindex)
            interfaces[id] = Interface(name: interface.name, totals: counters(interface.totals))
            var attributed = WireCounters()
            for (_, byInterface) in owned { if let c = byInterface[id] { attributed += c } }
            forgotten[id] = counters(interface.totals).since(attributed + counters(interface.unattributed))
        }
        losses = Losses(ownersFull: reply.losses.ownersFull, interfacesFull: reply.losses.interfacesFull, storageFull: reply.losses.storageFull)
    }
}

/// The counters the devices of this network namespace keep themselves (their `statistics`), to
/// show beside netacct's where they differ: a veth counts a GSO packet once, netacct its segments.
enum DeviceCounters {
    static func read(sysfs: String = "/sys/class/net") -> [InterfaceID: WireCounters] {
        let namespace = NetworkNamespace.inode()
        var result: [InterfaceID: WireCounters] = [:]
        guard let directory = opendir(sysfs) else { return result }
        defer { closedir(directory) }
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            guard !name.hasPrefix(".") else { continue }
            func value(_ path: String) -> UInt64? {
                (try? String(contentsOfFile: "\(sysfs)/\(name)/\(path)", encoding: .utf8))
                    .flatMap { $0.split(whereSeparator: \.isWhitespace).first }.flatMap { UInt64($0) }
            }
            guard let index = value("ifindex"), let txPackets = value("statistics/tx_packets"), let txBytes = value("statistics/tx_bytes"),
                  let rxPackets = value("statistics/rx_packets"), let rxBytes = value("statistics/rx_bytes") else { continue }
            result[InterfaceID(netns: namespace, ifindex: UInt32(truncatingIfNeeded: index))] =
                WireCounters(txPackets: txPackets, txBytes: txBytes, rxPackets: rxPackets, rxBytes: rxBytes)
        }
        return result
    }
}

/// The table and the JSON lines of `top --wire`.
struct WireRenderer: IntervalRenderer {
    var configuration: TopApp.Configuration
    var cgroups: CgroupNames

    static let sortKeys: [(key: Character, name: String, set: @Sendable (inout TopApp.Configuration) -> Void)] = [
        ("r", "rx", { $0.sort = .rx }), ("t", "tx", { $0.sort = .tx }), ("T", "total", { $0.sort = .total }),
    ]

    static func sortName(_ configuration: TopApp.Configuration) -> String { configuration.sort.rawValue }

    static let hasConnections = false
    /// The interval's counts of the devices of this namespace, as they keep them.
    var devices: [InterfaceID: WireCounters] = [:]

    /// netacct's counts and the devices' own, read together.
    struct Sample {
        var counted: WireSample
        var devices: [InterfaceID: WireCounters]
    }

    /// netacct's counts over the interval, and the devices' (those that existed at both ends).
    mutating func interval(_ current: Sample, since previous: Sample) -> WireSample {
        devices = current.devices.reduce(into: [:]) { result, entry in
            if let before = previous.devices[entry.key] { result[entry.key] = entry.value.since(before) }
        }
        return current.counted.since(previous.counted)
    }

    struct Line {
        var pid: Int32?
        var name: String
        var exited: Bool
        var total: WireCounters
        var byInterface: [(id: InterfaceID, counters: WireCounters)]
    }

    /// The rows of an interval: per process or per cgroup, filtered and sorted.
    mutating func lines(_ sample: WireSample, selected: Set<InterfaceID>?, cgroups filter: Set<UInt64>?) -> [Line] {
        var rows = sample.rows(on: selected)
        if !configuration.pids.isEmpty { rows = rows.filter { configuration.pids.contains($0.owner.pid) } }
        if let filter { rows = rows.filter { $0.process.map { filter.contains($0.cgroupID) } ?? false } }
        var lines: [Line]
        switch configuration.grouping {
        case .process:
            lines = rows.map { Line(pid: $0.owner.pid, name: $0.process?.comm ?? "?", exited: $0.process?.exited ?? false,
                                    total: $0.total, byInterface: $0.byInterface) }
        case .cgroup:
            var byCgroup: [UInt64: (WireCounters, [InterfaceID: WireCounters])] = [:]
            for row in rows {
                let id = row.process?.cgroupID ?? 0
                var entry = byCgroup[id] ?? (WireCounters(), [:])
                entry.0 += row.total
                for (interface, counters) in row.byInterface { entry.1[interface, default: WireCounters()] += counters }
                byCgroup[id] = entry
            }
            lines = byCgroup.map { id, entry in
                Line(pid: nil, name: id == 0 ? "?" : cgroups.path(of: id) ?? "cgroup \(id)", exited: false, total: entry.0,
                     byInterface: entry.1.sorted { $0.key < $1.key }.map { ($0.key, $0.value) })
            }
        }
        func key(_ line: Line) -> UInt64 {
            switch configuration.sort {
            case .rx: line.total.rxBytes
            case .tx: line.total.txBytes
            case .total: line.total.totalBytes
            }
        }
        return lines.sorted { (key($0), $1.pid ?? 0) > (key($1), $0.pid ?? 0) }
    }

    func selection(_ sample: WireSample) -> Set<InterfaceID>? {
        configuration.interfaces.map { sample.interfaces(named: $0) }
    }

    static let header = "    PID COMM              TX PKTS  TX BYTES   RX PKTS  RX BYTES  RESENT RESENT-B"
    static let cgroupHeader = "TX PKTS  TX BYTES   RX PKTS  RX BYTES  RESENT RESENT-B CGROUP"

    mutating func table(_ sample: WireSample, time: Date, seconds: Double, cgroups filter: Set<UInt64>?) -> String {
        let selected = selection(sample)
        var text = "netacct top --wire   \(Units.clock(time))   interval \(Units.seconds(seconds))   frames on the wire, headers included\n"
        if configuration.summary {
            for row in sample.interfaceRows(selected) where !(row.totals.isZero && row.unattributed.isZero) {
                let t = row.totals, u = row.unattributed
                text += "\(row.name) (netns \(row.id.netns)): tx \(t.txPackets) pkts \(Units.bytes(t.txBytes)), rx \(t.rxPackets) pkts \(Units.bytes(t.rxBytes));"
                text += " unattributed tx \(u.txPackets) pkts \(Self.bytes(u.txBytes)), rx \(u.rxPackets) pkts \(Self.bytes(u.rxBytes))\n"
                if let d = devices[row.id], d != t {
                    text += "  the device's own counters: tx \(d.txPackets) pkts \(Units.bytes(d.txBytes)), rx \(d.rxPackets) pkts \(Units.bytes(d.rxBytes))"
                    text += d.txPackets < t.txPackets || d.rxPackets < t.rxPackets ? " (it counts a GSO/GRO packet once, netacct its segments)\n" : "\n"
                }
            }
            if let names = configuration.interfaces, selected?.isEmpty ?? true {
                text += "no traffic yet on \(names.sorted().joined(separator: ", "))\n"
            }
        }
        text += "\n" + (configuration.grouping == .process ? Self.header : Self.cgroupHeader) + "\n"
        func numbers(_ c: WireCounters) -> String {
            Units.pad(Units.count(c.txPackets), 7) + " " + Units.pad(Units.bytes(c.txBytes), 9) + " "
                + Units.pad(Units.count(c.rxPackets), 9) + " " + Units.pad(Units.bytes(c.rxBytes), 9) + " "
                + Units.pad(Units.count(c.retransmittedSegments), 7) + " " + Units.pad(Units.bytes(c.retransmittedBytes), 8)
        }
        for line in lines(sample, selected: selected, cgroups: filter) {
            if let pid = line.pid {
                let name = String((line.exited ? "*" + line.name : line.name).prefix(16))
                text += Units.pad("\(pid)", 7) + " " + Units.pad(name, 16, left: true) + " " + numbers(line.total) + "\n"
            } else {
                text += numbers(line.total) + " " + line.name + "\n"
            }
        }
        var unattributed = WireBalance()
        for row in sample.interfaceRows(selected) { unattributed += row.unattributed }
        if !unattributed.isZero {
            let u = unattributed
            let numbers = Units.pad(Self.count(u.txPackets), 7) + " " + Units.pad(Self.bytes(u.txBytes), 9) + " "
                + Units.pad(Self.count(u.rxPackets), 9) + " " + Units.pad(Self.bytes(u.rxBytes), 9)
            text += configuration.grouping == .process
                ? Units.pad("-", 7) + " " + Units.pad("(unattributed)", 16, left: true) + " " + numbers + "\n"
                : numbers + " (unattributed)\n"
        }
        return text
    }

    /// A count that may be negative (an interval's unattributed frames), in decimal units.
    static func count(_ value: Int64) -> String { value < 0 ? "-" + Units.count(value.magnitude) : Units.count(UInt64(value)) }
    static func bytes(_ value: Int64) -> String { value < 0 ? "-" + Units.bytes(value.magnitude) : Units.bytes(UInt64(value)) }

    /// One line of `top --wire --json` (without the newline).
    mutating func json(_ sample: WireSample, time: Date, seconds: Double, cgroups filter: Set<UInt64>?) -> String {
        let selected = selection(sample)
        var out = JSONWriter()
        out.begin("{")
        out.field("time", string: time.formatted(.iso8601.year().month().day()
            .time(includingFractionalSeconds: true).timeZone(separator: .omitted)))
        out.field("interval_s", number: Units.fixed(seconds, decimals: 3))
        out.key("interfaces")
        out.begin("[")
        for row in sample.interfaceRows(selected) {
            out.begin("{")
            interfaceFields(&out, row.id, name: row.name)
            counters(&out, row.totals, retransmissions: false)
            out.key("unattributed")
            out.begin("{")
            let u = row.unattributed
            for (key, value) in [("tx_packets", u.txPackets), ("tx_bytes", u.txBytes), ("rx_packets", u.rxPackets), ("rx_bytes", u.rxBytes)] {
                out.field(key, number: value)
            }
            out.end("}")
            // What the device itself counted (this namespace's devices only).
            out.key("device")
            if let d = devices[row.id] {
                out.begin("{")
                counters(&out, d, retransmissions: false)
                out.end("}")
            } else {
                out.null()
            }
            out.end("}")
        }
        out.end("]")
        out.key(configuration.grouping == .process ? "processes" : "cgroups")
        out.begin("[")
        for line in lines(sample, selected: selected, cgroups: filter) {
            out.begin("{")
            out.rowIdentity(pid: line.pid, name: line.name, exited: line.exited)
            counters(&out, line.total, retransmissions: true)
            out.key("interfaces")
            out.begin("[")
            for (id, c) in line.byInterface {
                out.begin("{")
                interfaceFields(&out, id, name: sample.interfaces[id]?.name)
                counters(&out, c, retransmissions: true)
                out.end("}")
            }
            out.end("]")
            out.end("}")
        }
        out.end("]")
        out.key("losses")
        out.begin("{")
        out.field("owners_full", number: sample.losses.ownersFull)
        out.field("interfaces_full", number: sample.losses.interfacesFull)
        out.field("storage_full", number: sample.losses.storageFull)
        out.end("}")
        out.end("}")
        return out.text
    }

    private func interfaceFields(_ out: inout JSONWriter, _ id: InterfaceID, name: String?) {
        out.field("netns", number: id.netns)
        out.field("ifindex", number: id.ifindex)
        out.field("name", string: id.ifindex == 0 ? nil : name)
    }

    private func counters(_ out: inout JSONWriter, _ c: WireCounters, retransmissions: Bool) {
        out.field("tx_packets", number: c.txPackets)
        out.field("tx_bytes", number: c.txBytes)
        out.field("rx_packets", number: c.rxPackets)
        out.field("rx_bytes", number: c.rxBytes)
        if retransmissions {
            out.field("retransmitted_segments", number: c.retransmittedSegments)
            out.field("retransmitted_bytes", number: c.retransmittedBytes)
        }
    }
}
