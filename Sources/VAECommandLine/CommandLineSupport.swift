import ArgumentParser
import Foundation
import Logging
import VAETraining
#if canImport(Glibc)
import Glibc
#endif

/// Writes one line to standard output at once (unbuffered), so that progress reaches a pipe or a
/// log file when it happens.
public func emit(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}

/// `words` as one command line a POSIX shell runs as given: words with characters other than
/// letters, digits and `_./:=@%+,-` are single-quoted.
public func shellCommand(_ words: [String]) -> String {
    let plain = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_./:=@%+,-")
    return words.map { word in
        !word.isEmpty && word.allSatisfy(plain.contains) ? word : "'" + word.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }.joined(separator: " ")
}

extension Thread {
    /// Runs `body` on a new thread and returns its result when it ends: for a loop that blocks
    /// its thread for a whole run (the coordinator's, the worker's), which should not hold one of
    /// the few threads of Swift's shared executor.
    public static func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async -> Result<T, any Error> {
        await withCheckedContinuation { continuation in
            let thread = Thread { continuation.resume(returning: Result { try body() }) }
            thread.stackSize = 16 << 20
            thread.start()
        }
    }
}

/// The logging option every command has.
public struct LoggingOptions: ParsableArguments, Sendable {
    public init() {}

    @Option(name: .customLong("log-level"), help: "Log level on standard error: trace, debug, info, notice, warning, error.")
    public var logLevel = "warning"

    /// Logging goes to standard error; swift-log allows setting that up once per process.
    private static let bootstrap: Void = LoggingSystem.bootstrap { StreamLogHandler.standardError(label: $0) }

    /// Sets up logging to standard error (once) and returns a logger at the chosen level.
    public func logger(_ label: String) -> Logger {
        Self.bootstrap
        var logger = Logger(label: label)
        logger.logLevel = Logger.Level(rawValue: logLevel) ?? .warning
        return logger
    }

    /// The option as given, for a command line that repeats it (empty at the default).
    public var arguments: [String] { logLevel == "warning" ? [] : ["--log-level", logLevel] }
}

/// How a command reports progress on standard output.
public struct OutputOptions: ParsableArguments, Sendable {
    public init() {}

    @Flag(help: "Print only the final line (and errors).")
    public var quiet = false
    @Flag(help: "Print one JSON object per epoch and the summary as JSON, nothing else.")
    public var json = false

    public func validate() throws {
        if quiet && json { throw ValidationError("give --quiet or --json, not both") }
    }

    /// The flags as given, for a command line that repeats them.
    public var arguments: [String] { quiet ? ["--quiet"] : json ? ["--json"] : [] }
}

/// Progress on standard output: a live bar redrawn in place on a terminal, one plain line per
/// epoch when output goes to a pipe or file, only the end with --quiet, JSON lines with --json.
public final class ProgressDisplay: @unchecked Sendable {
    // @unchecked: used from the one thread that runs the command.
    public enum Mode: Sendable { case terminal, lines, quiet, json }

    public let mode: Mode
    var lastDraw = ContinuousClock.now - .seconds(1)
    var barShown = false

    public init(_ options: OutputOptions) {
        mode = options.json ? .json : options.quiet ? .quiet : (isatty(1) != 0 ? .terminal : .lines)
    }

    public init(mode: Mode) { self.mode = mode }

    /// A step of an epoch finished (redraws the bar at most ten times a second).
    public func step(epoch: Int, epochs: Int, done: Int, of total: Int, samplesPerSecond: Double, secondsLeft: Double) {
        guard mode == .terminal, total > 0 else { return }
        let now = ContinuousClock.now
        guard now - lastDraw >= .milliseconds(100) || done == total else { return }
        lastDraw = now
        draw(String(format: "epoch %d/%d", epoch, epochs), done: done, total: total,
             detail: String(format: "%.0f samples/s, %.0f s left", samplesPerSecond, secondsLeft))
    }

    /// A long task without epochs (evaluation): `done` of `total` items.
    public func task(_ label: String, done: Int, of total: Int, itemsPerSecond: Double) {
        guard mode == .terminal, total > 0 else { return }
        let now = ContinuousClock.now
        guard now - lastDraw >= .milliseconds(100) || done == total else { return }
        lastDraw = now
        let left = itemsPerSecond > 0 ? Double(total - done) / itemsPerSecond : 0
        draw(label, done: done, total: total, detail: String(format: "%.1f/s, %.0f s left", itemsPerSecond, left))
    }

    /// A progress callback (items done, total) for a long task named `label`, timed from now.
    public func taskProgress(_ label: String) -> (Int, Int) -> Void {
        let start = ContinuousClock.now
        return { done, total in
            let seconds = (ContinuousClock.now - start) / .seconds(1)
            self.task(label, done: done, of: total, itemsPerSecond: Double(done) / max(seconds, 1e-9))
        }
    }

    private func draw(_ label: String, done: Int, total: Int, detail: String) {
        let width = 30
        let filled = min(width, done * width / total)
        let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
        FileHandle.standardOutput.write(Data("\r\u{1B}[K\(label) [\(bar)] \(done * 100 / total)%  \(detail)".utf8))
        barShown = true
    }

    /// A long task finished: remove its bar (nothing else is printed).
    public func endTask() { clearBar() }

    private func clearBar() {
        if barShown {
            FileHandle.standardOutput.write(Data("\r\u{1B}[K".utf8))
            barShown = false
        }
    }

    /// An epoch ended: its line, or its metrics as JSON.
    public func epoch(_ metrics: EpochMetrics, line: String) {
        switch mode {
        case .terminal, .lines:
            clearBar()
            emit(line)
        case .quiet:
            break
        case .json:
            if let data = try? RunOutput.encoder().encode(metrics) { emit(String(decoding: data, as: UTF8.self)) }
        }
    }

    /// An informational line (not printed with --quiet or --json).
    public func message(_ line: String) {
        guard mode == .terminal || mode == .lines else { return }
        clearBar()
        emit(line)
    }

    /// The end: the final line, or the summary as JSON.
    public func finish(_ summary: TrainingSummary, line: String) {
        clearBar()
        if mode == .json {
            if let data = try? RunOutput.encoder().encode(summary) { emit(String(decoding: data, as: UTF8.self)) }
        } else {
            emit(line)
        }
    }
}
