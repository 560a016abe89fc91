import Glibc
import NetacctKit

/// `netacct drops --summary`'s arithmetic, on the kernel's cumulative counts: each interval the
/// drops since the last one by reason, protocol and owner (the sockets of one owner summed),
/// and, per reason and protocol, the rest of the totals that no socket's count holds (the
/// per-socket table was full: owner unknown); under -p only the rows of those processes;
/// busiest first.
public struct DropsSummary {
    let reasons: DropReasons
    /// -p: only drops for sockets of these processes; empty: any.
    let pids: [Int32]
    /// The counts at the end of the last interval (one that goes back later gives 0).
    public private(set) var counted: [DropKey: UInt64]
    private var totals: [DropKey: UInt64]

    public init(reasons: DropReasons, pids: [Int32], counted: [DropKey: UInt64], totals: [DropKey: UInt64]) {
        (self.reasons, self.pids, self.counted, self.totals) = (reasons, pids, counted, totals)
    }

    struct Group: Hashable { var reason: UInt32, proto: UInt8, owner: SocketOwners.Owner?, netns: UInt32 }

    /// The rows of the interval that ends with these counts; `owner` is asked only about sockets
    /// that had drops in it.
    /// `namespace`, when rows name their namespace (-A, --netns): the label of one.
    public mutating func interval(counted current: [DropKey: UInt64], totals currentTotals: [DropKey: UInt64],
                                  namespace: ((UInt32) -> NamespaceLabel)? = nil,
                                  owner: (_ inode: UInt64) -> SocketOwners.Owner?) -> [DropsRenderer.Interval.Row] {
        var grouped: [Group: UInt64] = [:]
        var attributed: [DropKey: UInt64] = [:]   // by (reason, protocol)
        for (key, value) in current {
            let delta = value - min(value, counted[key] ?? 0)
            guard delta > 0 else { continue }
            grouped[Group(reason: key.reason, proto: key.proto, owner: owner(key.inode), netns: namespace == nil ? 0 : key.netns), default: 0] += delta
            attributed[DropKey(inode: 0, reason: key.reason, proto: key.proto), default: 0] += delta
        }
        var rows = grouped.map { group, count in
            var row = row(group.reason, group.proto, owner: group.owner, count: count)
            row.namespace = namespace?(group.netns)
            return row
        }
        for (key, value) in currentTotals {
            let delta = value - min(value, totals[key] ?? 0)
            let rest = delta - min(delta, attributed[key] ?? 0)
            if rest > 0 { rows.append(row(key.reason, key.proto, owner: nil, unattributed: true, count: rest)) }
        }
        if !pids.isEmpty { rows = rows.filter { row in row.owner.map { pids.contains($0.pid) } ?? false } }
        rows.sort { ($0.count, $1.reason) > ($1.count, $0.reason) }
        (counted, totals) = (current, currentTotals)
        return rows
    }

    /// Sockets' counts taken out of the kernel's table: if one comes back, it counts from zero.
    public mutating func forget(_ keys: some Sequence<DropKey>) {
        for key in keys { counted[key] = nil }
    }

    func row(_ reason: UInt32, _ proto: UInt8, owner: SocketOwners.Owner?, unattributed: Bool = false, count: UInt64) -> DropsRenderer.Interval.Row {
        .init(reason: reasons.name(reason), reasonWords: reasons.words(reason), proto: proto == UInt8(IPPROTO_UDP) ? "udp" : "tcp",
              owner: owner, unattributed: unattributed, count: count)
    }
}
