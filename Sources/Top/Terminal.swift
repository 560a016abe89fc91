import CGlibcExtras
import Glibc
import NetacctKit

/// The terminal the interactive screen runs on: keys read as they are typed, without echo (a
/// signal key still signals: Ctrl-C stops netacct as always), the alternate screen while it
/// runs, the cursor hidden; all put back when it ends. Nil when standard input or output is not
/// a terminal.
final class Terminal {
    let input: Int32
    let output: Int32
    private var saved = termios()

    init?(input: Int32 = STDIN_FILENO, output: Int32 = STDOUT_FILENO) {
        guard isatty(input) == 1, isatty(output) == 1, tcgetattr(input, &saved) == 0 else { return nil }
        self.input = input
        self.output = output
        var raw = saved
        raw.c_lflag &= ~tcflag_t(ICANON | ECHO)
        withUnsafeMutableBytes(of: &raw.c_cc) { cc in
            cc[Int(VMIN)] = 0
            cc[Int(VTIME)] = 0
        }
        guard tcsetattr(input, TCSANOW, &raw) == 0 else { return nil }
        write("\u{1B}[?1049h\u{1B}[?25l")
    }

    deinit {
        write("\u{1B}[?25h\u{1B}[?1049l")
        tcsetattr(input, TCSANOW, &saved)
    }

    func write(_ text: String) {
        var bytes = Array(text.utf8)[...]
        while !bytes.isEmpty {
            let written = bytes.withUnsafeBytes { Glibc.write(output, $0.baseAddress, $0.count) }
            if written < 0 && errno == EINTR { continue }
            if written <= 0 { return }
            bytes = bytes.dropFirst(written)
        }
    }

    /// Rows and columns (24 × 80 when the terminal does not say).
    var size: (rows: Int, columns: Int) {
        var rows: UInt16 = 0, columns: UInt16 = 0
        guard netacct_terminal_size(output, &rows, &columns) == 0, rows > 0, columns > 0 else { return (24, 80) }
        return (Int(rows), Int(columns))
    }

    /// The bytes typed within `milliseconds` (empty if none).
    func keys(waiting milliseconds: Int32) -> [UInt8] {
        var request = pollfd(fd: input, events: Int16(POLLIN), revents: 0)
        guard poll(&request, 1, milliseconds) > 0 else { return [] }
        var buffer = [UInt8](repeating: 0, count: 64)
        let count = read(input, &buffer, buffer.count)
        return count > 0 ? Array(buffer[..<count]) : []
    }

    /// Replaces the screen with `lines`, each cut to the width.
    func show(_ lines: [String]) {
        let width = size.columns
        write("\u{1B}[H\u{1B}[2J" + lines.map { String($0.prefix(width)) }.joined(separator: "\r\n"))
    }
}

extension Terminal {
    enum KeyOutcome { case redraw, quit, nothing }

    /// The interactive screens' loop: keys as they come (`key`), the screen redrawn after one
    /// that changed it and when the terminal is resized (`draw`), and at each interval's end
    /// `interval(seconds)`, which says whether it showed one; until `count` are shown, `q`, or a
    /// stop signal.
    func run(every seconds: Double, count: Int?, signals: StopSignals, key: (UInt8) -> KeyOutcome, draw: () -> Void,
             interval: (_ seconds: Double) throws -> Bool) throws {
        var size = self.size
        var start = StopSignals.now()
        var shown = 0
        draw()
        while count.map({ shown < $0 }) ?? true {
            while StopSignals.now() < start + seconds {
                if signals.pending() != nil { return }
                let remaining = start + seconds - StopSignals.now()
                var redraw = false
                for typed in keys(waiting: Int32(max(1, min(100, remaining * 1000)))) {
                    switch key(typed) {
                    case .quit: return
                    case .redraw: redraw = true
                    case .nothing: break
                    }
                }
                if self.size != size {
                    size = self.size
                    redraw = true
                }
                if redraw { draw() }
            }
            let end = StopSignals.now()
            if try interval(end - start) { shown += 1 }
            start = end
        }
    }
}

