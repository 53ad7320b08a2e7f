import Foundation
import Testing
import WireProtocol
import ZeroMQ
@testable import ClusterRuntime

/// The coordinator's ZeroMQ transport takes every message an honest worker may send, whatever
/// the model's size: real sockets on loopback, ephemeral ports.
@Suite struct CoordinatorTransportTests {
    /// A ring group of one member (what is left of two when one dies) reports, at each catch-up
    /// of the coordinator's copy, its chunk of the training state: every parameter and both of
    /// Adam's moments, three times a gradient. For MNIST's 784-400-20 model (652,824 parameters)
    /// that is 7.8 MB, which a limit of one gradient plus slack refused as oversized, so that
    /// a run that lost a worker could never catch up again (found with `--sync-every 16`).
    @Test func aOneMemberGroupsStateShardOfAFullSizeModelIsTakenAsAMessage() throws {
        let parameterCount = 652_824
        let transport = try ZMQCoordinatorTransport(CoordinatorOptions(bind: "tcp://127.0.0.1:*", workers: 1),
                                                    parameterCount: parameterCount)
        let context = try ZMQContext()
        let worker = try ZMQSocket(context, type: .dealer)
        try worker.connect(transport.endpoint)
        let floats = [UInt8](repeating: 0, count: 4 * parameterCount)
        let header = Message.shardHeader(step: 15, group: 2, chunk: 0, report: .state, count: parameterCount,
                                         squaredNorm: 1, optimizerStep: 16)
        #expect(try worker.sendMultipart([header, floats, floats, floats]))
        var events: [TransportEvent] = []
        // Bounded: the message is on loopback at once; 100 waits of at most 100 ms.
        for _ in 0..<100 where events.isEmpty {
            events = try transport.wait(timeout: .milliseconds(100))
        }
        guard case .message(let inbound)? = events.first else {
            Issue.record("the SHARD was not delivered as a message: \(events)")
            return
        }
        let decoded = try Message.decode(inbound.frames, limits: Limits(parameterCount: parameterCount))
        guard case .shard(let shard) = decoded, case .state(let state) = shard.content else {
            Issue.record("not a SHARD of the training state: \(decoded.type)")
            return
        }
        #expect(shard.count == parameterCount && state.parameters.count == parameterCount && state.second?.count == parameterCount)
        #expect(ZMQCoordinatorTransport.maxMessageBytes(parameterCount: parameterCount) >= 3 * 4 * parameterCount + header.count)
    }
}
