import ArgumentParser
import Foundation
import Logging

/// Writes one line to standard output at once (unbuffered), so that progress reaches a pipe or a
/// log file when it happens.
public func emit(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}

/// The logging option every command has.
public struct LoggingOptions: ParsableArguments, Sendable {
    public init() {}

    @Option(name: .customLong("log-level"), help: "Log level on standard error: trace, debug, info, notice, warning, error.")
    public var logLevel = "warning"

    /// Sets up logging to standard error and returns a logger.
    public func logger(_ label: String) -> Logger {
        LoggingSystem.bootstrap { StreamLogHandler.standardError(label: $0) }
        var logger = Logger(label: label)
        logger.logLevel = Logger.Level(rawValue: logLevel) ?? .warning
        return logger
    }
}
