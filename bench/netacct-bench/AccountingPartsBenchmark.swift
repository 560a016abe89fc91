import BPF
import BPFTestPrograms
import Foundation
import NetacctKit

// netacct-bench accounting-parts [events] [rounds]
//
// Where a counted call's time goes: the accounting programs cut after each step of the per-call
// path, and variants of it (bpf/tests/accounting_parts.bpf.c, which includes accounting.bpf.c
// whole), each pair alone on the two sock tracepoints, beside the empty programs, under the
// two-thread TCP ping-pong, the one-thread UDP loop and (when nginx and wrk are installed) a
// private nginx under wrk; then the syscall engine's path the same way on the exits of sendto and
// recvfrom, under the benchmark's own loads.
// Every step runs in every round, in turn, so that drift hits them alike.
func runAccountingPartsBenchmark(_ arguments: [String]) {
    let events = arguments.first.flatMap { Int($0) } ?? 200_000
    let rounds = arguments.dropFirst().first.flatMap { Int($0) } ?? 9
    typealias Names = BPFObjects.AccountingParts.Program
    let steps: [(String, String, String)] = [
        ("empty programs (floor)", "floor_send", "floor_recv"),
        ("the socket's class (family, protocol)", "parts_classify_send", "parts_classify_recv"),
        ("+ the thread's id (bpf_get_current_pid_tgid)", "parts_pid_send", "parts_pid_recv"),
        ("+ the thread's id from the task (bpf_get_current_task_btf)", "parts_task_send", "parts_task_recv"),
        ("+ the thread's slot found and checked", "parts_slot_send", "parts_slot_recv"),
        ("variant: the slot in a 64-entry array, counted", "parts_small_send", "parts_small_recv"),
        ("variant: the same keyed by the task's address", "parts_taskkey_send", "parts_taskkey_recv"),
        ("+ the two counters (count_send, count_recv whole)", "count_send", "count_recv"),
        ("variant: no class (every socket TCP): the lower bound", "parts_unclassified_send", "parts_unclassified_recv"),
    ]
    // The syscall engine (older kernels) on the exits of sendto and recvfrom, which the
    // benchmark's own loads make (nginx makes others: not under HTTP).
    let syscallSteps: [(String, String, String)] = [
        ("empty programs on the exits (floor)", "floor_sendto", "floor_recvfrom"),
        ("the task and its saved registers (two helper calls)", "parts_regs_sendto", "parts_regs_recvfrom"),
        ("+ the descriptor's file (one read)", "parts_file_sendto", "parts_file_recvfrom"),
        ("+ the socket behind it, checked (two reads)", "parts_socket_sendto", "parts_socket_recvfrom"),
        ("+ its class (two reads)", "parts_class_sendto", "parts_class_recvfrom"),
        ("+ the thread's counters (count_sendto, count_recvfrom whole)", "count_sendto", "count_recvfrom"),
    ]
    do {
        let session = try StatisticsSession()
        try KernelProbe.requireTracefs()
        let nginx = PrivateNginx()
        defer { nginx?.stop() }
        var loads: [(String, (Int) -> Void)] = [("TCP ping-pong, 2 threads", tcpLoad), ("UDP send+recv, 1 thread", udpLoad)]
        if let nginx { loads.append(("HTTP, nginx under wrk", nginx.load)) }
        print("netacct-bench accounting-parts: \(rounds) rounds, \(events) events per load (HTTP: 2 s of wrk)")
        for (loadName, load) in loads {
            let tables = loadName.hasPrefix("HTTP") ? [("sock tracepoints", steps)] : [("sock tracepoints", steps), ("the syscall engine", syscallSteps)]
            for (tableName, steps) in tables {
                var costs = [[Double]](repeating: [], count: steps.count)
                for _ in 0..<rounds {
                    for (index, step) in steps.enumerated() {
                        let object = try BPFObject(image: index == 0 ? BPFObjects.floor : BPFObjects.accountingParts)
                        if index > 0 {
                            for name in Names.allCases { try object.program(name).autoload = [step.1, step.2].contains(name.rawValue) }
                        }
                        costs[index].append(try cost(of: object, programs: [step.1, step.2], under: load, events: events))
                    }
                }
                print("")
                print("\(loadName), \(tableName):")
                print("")
                print("| program | ns/event | above floor | rounds |")
                print("|---|---|---|---|")
                let floor = median(costs[0])
                for (index, step) in steps.enumerated() {
                    print("| \(step.0) | \(format(median(costs[index]))) | \(format(median(costs[index]) - floor)) | \(costs[index].map(format).joined(separator: " ")) |")
                }
            }
        }
        withExtendedLifetime(session) {}
    } catch {
        fail("\(error)")
    }
}
