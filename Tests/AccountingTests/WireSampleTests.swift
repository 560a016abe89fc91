import Accounting
import Testing

/// The arithmetic of unattributed frames, on samples made by hand (no kernel).
struct WireSampleTests {
    static let veth = InterfaceID(netns: 4_026_532_000, ifindex: 2)
    static let owner = WireOwner(pid: 42, start: 7)

    static func sample(totalRx: UInt64, ownedRx: UInt64, forgottenRx: UInt64 = 0, owner: WireOwner? = owner) -> WireSample {
        var sample = WireSample()
        sample.interfaces[veth] = .init(name: "veth0", totals: WireCounters(rxPackets: totalRx, rxBytes: totalRx * 100))
        if let owner { sample.owned[owner] = [veth: WireCounters(rxPackets: ownedRx, rxBytes: ownedRx * 100)] }
        if forgottenRx > 0 { sample.forgotten[veth] = WireCounters(rxPackets: forgottenRx, rxBytes: forgottenRx * 100) }
        return sample
    }

    /// A frame the device had received when a sample was read, and its socket took after: one
    /// interval has it unattributed, the next gives it back (-1); the sum is exact.
    @Test func aFrameBetweenItsDeviceAndItsSocketIsGivenBackInTheNextInterval() {
        let start = Self.sample(totalRx: 10, ownedRx: 10)
        let inFlight = Self.sample(totalRx: 15, ownedRx: 14)
        let settled = Self.sample(totalRx: 15, ownedRx: 15)
        let first = inFlight.since(start).unattributed(Self.veth), second = settled.since(inFlight).unattributed(Self.veth)
        #expect(first == WireBalance(rxPackets: 1, rxBytes: 100))
        #expect(second == WireBalance(rxPackets: -1, rxBytes: -100))
        #expect(first + second == settled.unattributed(Self.veth) + WireBalance() && (first + second).isZero)
        #expect(inFlight.unattributed(Self.veth).atLeastZero == WireCounters(rxPackets: 1, rxBytes: 100))
    }

    /// An owner whose counters are no longer kept: its frames stay attributed, in all and in
    /// the interval it went in.
    @Test func aForgottenOwnersFramesStayAttributed() {
        let before = Self.sample(totalRx: 20, ownedRx: 20)
        let after = Self.sample(totalRx: 23, ownedRx: 0, forgottenRx: 22, owner: nil)
        #expect(after.unattributed(Self.veth) == WireBalance(rxPackets: 1, rxBytes: 100))
        let interval = after.since(before)
        #expect(interval.unattributed(Self.veth) == WireBalance(rxPackets: 1, rxBytes: 100), "3 frames, 2 of them the forgotten owner's")
    }
}
