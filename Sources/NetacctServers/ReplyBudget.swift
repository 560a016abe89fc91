/// A bound on the reply bytes that the daemon holds for clients that have not read them yet,
/// all clients together: whatever clients do (ask and never read, by the hundred), the
/// daemon's memory stays bounded. A reply that would pass the bound makes room by dropping
/// the clients whose replies have waited longest: a client that reads (atop, `netacct top`)
/// takes its reply within milliseconds, so the oldest unread replies are those of clients
/// that stopped reading. The client asking now is never the one dropped.
/// Used on the daemon's event loop only.
final class ReplyBudget {
    typealias Owner = ObjectIdentifier

    private struct Held {
        var bytes: Int
        var since: Double
        let drop: () -> Void
    }

    let limit: Int
    private let clock: () -> Double
    private var held: [Owner: Held] = [:]
    /// Unsent reply bytes, all clients together.
    private(set) var total = 0
    /// Clients dropped to make room, since start.
    private(set) var dropped = 0

    init(limit: Int, clock: @escaping () -> Double) {
        self.limit = limit
        self.clock = clock
    }

    /// `owner` is about to hold `bytes` more until they are sent; `drop` closes its client if
    /// room is needed later. Returns how many other clients were dropped to make room now.
    @discardableResult
    func hold(_ bytes: Int, for owner: Owner, drop: @escaping () -> Void) -> Int {
        var droppedNow = 0
        while total + bytes > limit,
              let (victim, entry) = held.filter({ $0.key != owner && $0.value.bytes > 0 }).min(by: { $0.value.since < $1.value.since }) {
            forget(victim)
            dropped += 1
            droppedNow += 1
            entry.drop()
        }
        if var entry = held[owner] {
            entry.bytes += bytes
            held[owner] = entry
        } else {
            held[owner] = Held(bytes: bytes, since: clock(), drop: drop)
        }
        total += bytes
        return droppedNow
    }

    /// `bytes` of `owner`'s have been sent (or thrown away).
    func release(_ bytes: Int, for owner: Owner) {
        guard var entry = held[owner] else { return }
        let released = min(bytes, entry.bytes)
        entry.bytes -= released
        total -= released
        if entry.bytes == 0 { held[owner] = nil } else { held[owner] = entry }
    }

    /// `owner`'s client has gone: whatever it held is freed. Returns whether it held any.
    @discardableResult
    func forget(_ owner: Owner) -> Bool {
        guard let entry = held.removeValue(forKey: owner) else { return false }
        total -= entry.bytes
        return true
    }
}
