import ArgumentParser
import Foundation
import ZeroMQ

/// The communication of one synchronous step without any computation: a ROUTER sends a
/// parameter-sized frame to each of N DEALER peers (threads of this process, each with its own
/// context, as separate processes would have), and each answers with a gradient-sized frame.
struct Transport: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Latency of a parameter broadcast and gradient gather over ZeroMQ (no compute).")
    @Option(help: "tcp or ipc.") var transport = "tcp"
    @Option(help: "Peers.") var workers = 2
    @Option(help: "Floats per message (652,824 = the 784-400-20 model).") var floats = 652_824
    @Option var rounds = 300
    @Option var warmup = 30

    func run() throws {
        let context = try ZMQContext()
        let router = try ZMQSocket(context, type: .router, linger: 0)
        try router.setOption(.routerMandatory, true)
        let endpoint: String
        switch transport {
        case "tcp": endpoint = try router.bind("tcp://127.0.0.1:*")
        case "ipc": endpoint = try router.bind("ipc://\(FileManager.default.temporaryDirectory.path)/vae-bench-\(getpid()).sock")
        default: throw ValidationError("--transport must be tcp or ipc")
        }
        // The socket's file outlives the process unless removed (its name is not needed once bound).
        defer { if endpoint.hasPrefix("ipc://") { unlink(String(endpoint.dropFirst("ipc://".count))) } }
        let bytes = floats * 4
        let total = rounds + warmup
        let count = workers
        var threads: [Thread] = []
        for i in 0..<count {
            let thread = Thread {
                do {
                    let ctx = try ZMQContext()
                    let dealer = try ZMQSocket(ctx, type: .dealer, linger: 0)
                    try dealer.setOption(.routingID, [UInt8(i)])
                    try dealer.connect(endpoint)
                    try dealer.send([0])  // hello
                    let reply = ZMQBuffer(count: bytes)
                    for _ in 0..<total {
                        guard try dealer.receive() != nil else { return }
                        try dealer.send(ZMQBuffer(copying: reply.withUnsafeBytes { $0 }))
                    }
                } catch {
                    FileHandle.standardError.write(Data("peer \(i): \(error)\n".utf8))
                }
            }
            thread.start()
            threads.append(thread)
        }
        // Wait for every peer's hello.
        var peers: [[UInt8]] = []
        while peers.count < count {
            if let frames = try router.receiveMultipart(timeout: .seconds(10)) { peers.append(frames[0].bytes) }
            else { throw ValidationError("the peers did not connect") }
        }
        let parameters = [UInt8](repeating: 1, count: bytes)
        var times: [Double] = []
        for round in 0..<total {
            let start = DispatchTime.now().uptimeNanoseconds
            for peer in peers {
                try router.send(peer, flags: .more)
                try parameters.withUnsafeBytes { _ = try router.send($0) }
            }
            for _ in 0..<count { _ = try router.receiveMultipart(timeout: .seconds(10)) }
            if round >= warmup { times.append(Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-6) }
        }
        times.sort()
        let result: [String: Any] = [
            "benchmark": "transport", "transport": transport, "workers": count, "bytes_each_way": bytes,
            "rounds": rounds, "median_ms": times[times.count / 2], "p10_ms": times[times.count / 10],
            "p90_ms": times[times.count * 9 / 10],
            "bytes_per_round": 2 * bytes * count,
        ]
        let data = try JSONSerialization.data(withJSONObject: result, options: [.sortedKeys])
        print(String(decoding: data, as: UTF8.self))
    }
}
