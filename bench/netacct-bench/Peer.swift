import BPF
import BPFTestPrograms
import Foundation
import Glibc

/// bytedance/netatop-bpf's programs, built from a checkout of its public source for the events
/// benchmark's side-by-side figure (`netacct-bench events … --peer DIR`): its `netatop.bpf.c`
/// compiled with the toolchain's clang against Debian's libbpf headers and a `vmlinux.h` that
/// Debian's bpftool writes from this kernel's BTF, as its Makefile does with its vendored copies.
/// Nothing of it is kept: the object is built in a temporary folder and loaded from memory.
struct NetatopPeer {
    let image: BPFObjectImage
    /// The checkout's commit, when it is a git work tree.
    let revision: String

    init(checkout: String) {
        guard FileManager.default.fileExists(atPath: checkout + "/netatop.bpf.c") else {
            fail("--peer \(checkout): no netatop.bpf.c there (a checkout of github.com/bytedance/netatop-bpf)")
        }
        let folder = sh("mktemp -d /tmp/netacct-bench-peer.XXXXXX")
        defer { sh("rm -rf '\(folder)'") }
        sh("""
            command -v bpftool >/dev/null || { echo 'netacct-bench: --peer needs bpftool (apt-get install bpftool)' >&2; exit 1; }
            cp '\(checkout)/netatop.bpf.c' '\(checkout)/netatop.h' '\(folder)/'
            bpftool btf dump file /sys/kernel/btf/vmlinux format c > '\(folder)/vmlinux.h'
            clang -O2 -g -target bpf -D__TARGET_ARCH_x86 -I'\(folder)' -c '\(folder)/netatop.bpf.c' -o '\(folder)/netatop.bpf.o'
            """)
        guard let bytes = FileManager.default.contents(atPath: folder + "/netatop.bpf.o") else { fail("--peer: the build left no object") }
        image = BPFObjectImage(name: "netatop", bytes: [UInt8](bytes))
        revision = sh("git -C '\(checkout)' rev-parse --short HEAD 2>/dev/null || echo 'not a git checkout'")
    }

    /// netatop-bpf's two programs (classic tracepoints on sock_send_length and sock_recv_length,
    /// a per-CPU hash entry per process) under `load`: ns per event.
    func costPerEvent(under load: (Int) -> Void) throws -> Double {
        try cost(of: BPFObject(image: image), programs: ["handle_tp_send", "handle_tp_recv"], under: load)
    }

    /// The floor it is read against: empty classic tracepoint programs on the same two tracepoints.
    static func floorCostPerEvent(under load: (Int) -> Void) throws -> Double {
        try cost(of: BPFObject(image: BPFObjects.floor), programs: ["floor_send_tp", "floor_recv_tp"], under: load)
    }
}

/// A private nginx on loopback serving a 50-byte page, for the HTTP load: wrk's requests and
/// nginx's responses, each a send and a receive on each side (the "nginx under wrk").
final class PrivateNginx {
    static let port = 18090
    let folder: String
    let process: Process

    /// nil when nginx or wrk is not installed (the HTTP load is then left out, and said).
    init?() {
        guard sh("command -v nginx >/dev/null && command -v wrk >/dev/null && echo yes || true") == "yes" else { return nil }
        folder = sh("mktemp -d /tmp/netacct-bench-nginx.XXXXXX")
        // mktemp makes the folder 0700: nginx's workers (www-data) must read the page, or every
        // request is answered 403.
        sh("""
            chmod 755 '\(folder)'
            mkdir -m 755 '\(folder)/html'
            printf '%049d\\n' 0 > '\(folder)/html/index.html'
            chmod 644 '\(folder)/html/index.html'
            cat > '\(folder)/nginx.conf' <<'EOF'
            worker_processes 1;
            daemon off;
            pid \(folder)/nginx.pid;
            error_log \(folder)/error.log;
            events { worker_connections 1024; }
            http {
                access_log off;
                keepalive_requests 100000000;
                server { listen 127.0.0.1:\(Self.port); root \(folder)/html; }
            }
            EOF
            """)
        process = Process()
        process.executableURL = URL(fileURLWithPath: sh("command -v nginx"))
        process.arguments = ["-p", folder, "-c", folder + "/nginx.conf"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        do { try process.run() } catch { fail("nginx: \(error)") }
        let answers = { sh("curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:\(Self.port)/ || true") == "200" }
        for _ in 0..<100 where !answers() { usleep(50_000) }
        guard answers() else { fail("nginx did not answer on 127.0.0.1:\(Self.port) within 5 s (its log: \(folder)/error.log)") }
    }

    /// Two seconds of wrk, one thread and two connections (the event count is the kernel's to say).
    func load(events _: Int) {
        sh("wrk -t1 -c2 -d2s http://127.0.0.1:\(Self.port)/ > /dev/null")
    }

    func stop() {
        process.terminate()
        process.waitUntilExit()
        sh("rm -rf '\(folder)'")
    }
}
