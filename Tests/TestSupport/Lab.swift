import Foundation

/// A multi-host lab made by `Deploy/lab/lab.sh` for one test: hosts as network namespaces with
/// shaped links (and optionally a Slurm cluster). Each lab gets a name of its own, so that tests
/// may run side by side; `deinit` (or `down()`) removes it, so no test leaves a namespace behind.
public final class Lab: @unchecked Sendable {
    // @unchecked: used from one test at a time.
    public static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()
    public static let script = repository.appendingPathComponent("Deploy/lab/lab.sh")

    /// Why no lab can be made on this machine (not root, no network namespaces, no tbf), or nil
    /// when it can. Computed once, by `lab.sh check`.
    public static let unavailableReason: String? = {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("lab-check-\(getpid())")
        try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        guard let check = try? ChildProcess("/bin/bash", [script.path, "check"], directory: dir, name: "lab-check",
                                            environment: ["LAB": "lchk\(getpid() % 1000)x"]) else {
            return "could not run \(script.path)"
        }
        guard check.wait(timeout: .seconds(60)) == 0 else {
            return "the lab cannot be made here: \((check.stdout + check.stderr).trimmingCharacters(in: .whitespacesAndNewlines))"
        }
        return nil
    }()

    public static var isAvailable: Bool { unavailableReason == nil }

    /// The lab's name (LAB of lab.sh): host i is "\(name)\(i)".
    public let name: String
    public let hostCount: Int
    private let directory: URL
    private var isUp = true

    /// Brings up `hosts` hosts with links of `rate` (tc syntax, e.g. "200mbit") each way;
    /// `slurm` also starts a Slurm cluster across them. `prefix` (one letter) begins the lab's
    /// name, which is unique among the labs of this machine's test processes.
    public init(hosts: Int, rate: String, slurm: Bool = false, prefix: String = "t") throws {
        Self.lock.lock()
        Self.made += 1
        let serial = Self.made
        Self.lock.unlock()
        // Ends with a letter, so that no lab's host names ("\(name)0", ...) begin another lab's name.
        let letters = Array("abcdefghijklmnopqrstuvwxyz")
        name = "\(prefix.prefix(1))\(getpid() % 10000)\(letters[(serial / 26) % 26])\(letters[serial % 26])"
        hostCount = hosts
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("lab-\(name)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        var arguments = [Self.script.path, "up", "\(hosts)", "--rate", rate]
        if slurm { arguments.append("--slurm") }
        let up = try ChildProcess("/bin/bash", arguments, directory: directory, name: "lab-up", environment: ["LAB": name])
        guard up.wait(timeout: .seconds(120)) == 0 else {
            isUp = false
            down()
            throw ChildProcessError("lab.sh up \(hosts) --rate \(rate) failed:\n\(up.stdout)\n\(up.stderr)")
        }
    }

    private static let lock = NSLock()
    nonisolated(unsafe) private static var made = 0

    /// The name of host `index` (also its hostname and its name in /etc/hosts).
    public func host(_ index: Int) -> String { "\(name)\(index)" }

    /// The environment for commands that use this lab (LAB, and SLURM_CONF when Slurm is up).
    public var environment: [String: String] {
        var environment = ["LAB": name]
        let conf = "/run/\(name)/slurm/slurm.conf"
        if FileManager.default.fileExists(atPath: conf) { environment["SLURM_CONF"] = conf }
        return environment
    }

    /// Starts `executable` with `arguments` on host `index` (its network and hostname), through
    /// `lab.sh exec`; the output goes to files under `directory` named after `name`.
    public func run(on index: Int, _ executable: String, _ arguments: [String], directory: URL, name: String,
                    environment extra: [String: String] = [:], newSession: Bool = false) throws -> ChildProcess {
        var environment = self.environment
        environment.merge(extra) { $1 }
        return try ChildProcess("/bin/bash", [Self.script.path, "exec", host(index), executable] + arguments,
                                directory: directory, name: name, environment: environment, newSession: newSession)
    }

    /// One TCP transfer of `megabytes` MB from host `from` to host `to`: (bytes, seconds).
    public func transfer(from: Int, to: Int, megabytes: Int) throws -> (bytes: Int, seconds: Double) {
        let measure = try ChildProcess("/bin/bash", [Self.script.path, "measure", host(from), host(to), "\(megabytes)"],
                                       directory: directory, name: "measure-\(from)-\(to)", environment: environment)
        guard measure.wait(timeout: .seconds(180)) == 0 else {
            throw ChildProcessError("lab.sh measure failed:\n\(measure.stdout)\n\(measure.stderr)")
        }
        let fields = measure.stdout.split(whereSeparator: \.isWhitespace)
        guard fields.count >= 2, let bytes = Int(fields[0]), let seconds = Double(fields[1]) else {
            throw ChildProcessError("lab.sh measure printed '\(measure.stdout)'")
        }
        return (bytes, seconds)
    }

    /// Bytes sent and received by host `index`'s interface so far.
    public func counters(_ index: Int) throws -> (sent: Int, received: Int) {
        let counters = try ChildProcess("/bin/bash", [Self.script.path, "counters", host(index)],
                                        directory: directory, name: "counters", environment: environment)
        guard counters.wait(timeout: .seconds(30)) == 0 else { throw ChildProcessError("lab.sh counters failed: \(counters.stderr)") }
        let fields = counters.stdout.split(whereSeparator: \.isWhitespace)
        guard fields.count == 3, let sent = Int(fields[1]), let received = Int(fields[2]) else {
            throw ChildProcessError("lab.sh counters printed '\(counters.stdout)'")
        }
        return (sent, received)
    }

    /// Removes the lab (namespaces, Slurm daemons, /etc/hosts lines); idempotent.
    public func down() {
        if let down = try? ChildProcess("/bin/bash", [Self.script.path, "down"], directory: directory, name: "lab-down",
                                        environment: ["LAB": name]) {
            _ = down.wait(timeout: .seconds(120))
        }
        isUp = false
        try? FileManager.default.removeItem(at: directory)
    }

    deinit { if isUp { down() } }
}
