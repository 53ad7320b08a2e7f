import Foundation
import Testing
import TestSupport

/// The ring data plane's promise, measured on real links: with the MNIST-sized model (784-400-20,
/// 2,611,296 bytes of parameters) and N workers each on a lab host of its own, no host's link
/// carries more than 1.1 x 2 x the parameter bytes per step in either direction (plus the sample
/// rows the coordinator sent, `row_bytes_per_step`), whatever N is; the star's coordinator carried N x that. Bytes are read from each host's
/// interface counters (everything on the wire: TCP/IP headers, heartbeats, the one-time GROUP and
/// STATE included) and set beside the coordinator's own count (`bytes_per_step`).
@Suite(.serialized, .enabled(if: Lab.isAvailable, "needs root, network namespaces and tbf: \(Lab.unavailableReason ?? "")"))
struct RingTrafficLabTests {
    static let parameterBytes = 2_611_296.0
    static let steps = 24

    @Test(arguments: [2, 4, 8])
    func noHostsLinkCarriesMoreThanTwiceTheParametersPerStepWhateverTheNumberOfWorkers(_ n: Int) throws {
        let dir = SyntheticData.temporaryDirectory("vae-ring-traffic")
        defer { SyntheticData.cleanup(dir) }
        let train = dir.appendingPathComponent("train.npy"), test = dir.appendingPathComponent("test.npy")
        SyntheticData.writePrototypes(to: train, count: 1024, dimension: 784, seed: 1)
        SyntheticData.writePrototypes(to: test, count: 64, dimension: 784, seed: 2)
        let binaries = try #require(ChildProcess.binaries)
        let lab = try Lab(hosts: n + 1, rate: "1gbit")
        defer { lab.down() }
        let out = dir.appendingPathComponent("run")
        let before = try (0...n).map { try lab.counters($0) }
        let coordinator = try lab.run(
            on: 0, binaries.appendingPathComponent("vae-coordinator").path,
            ["start", "--bind", "tcp://\(lab.address(0)):5555", "--insecure", "--workers", "\(n)",
             "--data", train.path, "--test-data", test.path, "--hidden", "400", "--latent", "20",
             "--batch", "\(16 * n)", "--max-steps", "\(Self.steps)", "--epochs", "100", "--seed", "3", "--no-tensorboard",
             "--out", out.path],
            directory: dir, name: "coordinator")
        #expect(coordinator.waitForOutput(containing: "coordinator at ", timeout: .seconds(120)) != nil, "\(coordinator.stderr)")
        let workers = try (1...n).map {
            try lab.run(on: $0, binaries.appendingPathComponent("vae-worker").path,
                        ["join", "--coordinator", "tcp://\(lab.address(0)):5555", "--insecure", "--coordinator-timeout", "60"],
                        directory: dir, name: "worker-\($0)")
        }
        #expect(coordinator.wait(timeout: .seconds(300)) == 0, "\(coordinator.stdout)\n\(coordinator.stderr)")
        for worker in workers { #expect(worker.wait(timeout: .seconds(60)) == 0, "\(worker.stderr)") }
        let after = try (0...n).map { try lab.counters($0) }

        let summary = try StopAndResumeTests.summary(out)
        #expect(summary["ring_steps"] as? Int == Self.steps, "every step went around the ring: \(summary)")
        let rowBytes = try #require(summary["row_bytes_per_step"] as? Double)
        let reported = try #require(summary["bytes_per_step"] as? Double)
        // The rows' allowance is the coordinator's row bytes per step over the run, every worker's
        // rows together. Each worker's cache (1024 MiB) holds the 1,024 training rows, so in epoch 1
        // each worker is sent the rows of the whole step (its part's in WORK, the others' in ROWS),
        // N times the step's rows from the coordinator's link: all of them counted in that figure.
        // One worker's link receives 1/N of them, and the coordinator's link sends all of them, so
        // the allowance covers both (from epoch 2 on no row travels: for N = 4 and 8 the 24 steps
        // run past epoch 1, of 16 and 8 steps, and lower the average).
        let bound = 1.1 * 2 * Self.parameterBytes + rowBytes
        let perStep = zip(before, after).map { b, a in
            (sent: Double(a.sent - b.sent) / Double(Self.steps), received: Double(a.received - b.received) / Double(Self.steps))
        }
        func mb(_ bytes: Double) -> String { String(format: "%.2f MB", bytes / 1e6) }
        print("ring traffic, \(n) workers: coordinator sent \(mb(perStep[0].sent)), received \(mb(perStep[0].received)) per step (its own count \(mb(reported))); "
              + "busiest worker sent \(mb(perStep.dropFirst().map(\.sent).max()!)), received \(mb(perStep.dropFirst().map(\.received).max()!)); bound \(mb(bound))")
        for (host, bytes) in perStep.enumerated() {
            #expect(max(bytes.sent, bytes.received) <= bound,
                    "host \(host)'s link carried \(mb(bytes.sent)) out and \(mb(bytes.received)) in per step, above \(mb(bound))")
        }
        // Each worker's link did carry its ring chunks: hosts are network namespaces of one
        // machine, and ring neighbours in different namespaces never pass them through shared
        // memory (its hand-over socket is one namespace's), so the lab measures its links.
        let ringShare = 2 * Double(n - 1) / Double(n) * Self.parameterBytes
        for (host, bytes) in perStep.enumerated().dropFirst() {
            #expect(bytes.sent >= 0.95 * ringShare && bytes.received >= 0.95 * ringShare,
                    "host \(host)'s link carried \(mb(bytes.sent)) out and \(mb(bytes.received)) in per step, less than its ring chunks (\(mb(ringShare)))")
        }
        // The coordinator's own count agrees with its link (which also carries headers).
        #expect(reported <= perStep[0].sent + perStep[0].received)
    }
}
