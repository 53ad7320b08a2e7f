import Collectives

/// A ring member's gradient and parameters, each one flat vector of the plan's floats: in the
/// shared region the member offers its successor for the group (`RingOutbox`), or in this
/// process's own memory when there is none (the successor is on another host, shared memory is
/// off, a ring of one).
///
/// In the region, the gradient is the reduce-scatter's slot and the parameters the all-gather's,
/// so a chunk sent to a successor on this host is already where it reads it: sending publishes
/// the slot's sequence tag and copies nothing. What changes either vector in place marks the
/// pieces it changes first (`willWrite`): a successor still reading what they held before finds
/// its read torn (`SequenceTag`) instead of using half of each. An honest successor never does:
/// the ring's order has it done with a slot before its writer changes it again
/// (docs/SCALING.md).
final class RingBuffers {
    let gradient: UnsafeMutableBufferPointer<Float>
    let parameters: UnsafeMutableBufferPointer<Float>
    /// The region both live in; nil when they are this process's own.
    let outbox: RingOutbox?

    /// Buffers of `count` floats, zeroed: in `outbox`'s slots if it is given and holds `count`
    /// floats per slot, else allocated here.
    init(count: Int, outbox: RingOutbox?) {
        if let outbox, outbox.layout.floatCount == count {
            gradient = outbox.slot(.reduceScatter)
            parameters = outbox.slot(.allGather)
            self.outbox = outbox
            willWriteAll(.reduceScatter)
            willWriteAll(.allGather)
            gradient.update(repeating: 0)
            parameters.update(repeating: 0)
        } else {
            gradient = .allocate(capacity: count)
            gradient.initialize(repeating: 0)
            parameters = .allocate(capacity: count)
            parameters.initialize(repeating: 0)
            self.outbox = nil
        }
    }

    deinit {
        guard outbox == nil else { return }
        gradient.deallocate()
        parameters.deallocate()
    }

    /// Piece `piece` of chunk `chunk` of the vector `phase` sends from is about to change.
    func willWrite(_ phase: RingPhase, chunk: Int, piece: Int) {
        outbox?.beginWrite(phase, chunk: chunk, piece: piece)
    }

    /// Every piece of chunk `chunk` of the vector `phase` sends from is about to change.
    func willWrite(_ phase: RingPhase, chunk: Int) {
        guard let outbox else { return }
        for piece in 0..<outbox.layout.pieces { outbox.beginWrite(phase, chunk: chunk, piece: piece) }
    }

    /// The whole vector `phase` sends from is about to change.
    func willWriteAll(_ phase: RingPhase) {
        guard let outbox else { return }
        for chunk in 0..<outbox.layout.members { willWrite(phase, chunk: chunk) }
    }
}
