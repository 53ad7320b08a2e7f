import Testing
import Checksums
@testable import WireProtocol

/// Frames as a receiver sees them.
func received(_ frames: [OutgoingFrame]) -> [any FrameBytes] {
    frames.map { frame -> any FrameBytes in
        switch frame {
        case .bytes(let b): b
        case .floats(let f): Array(f.bytes)
        }
    }
}

@Suite struct MessageTests {
    let limits = Limits(parameterCount: 5)

    @Test func everyMessageRoundTrips() throws {
        if case .hello(let h) = try Message.decode(received(Message.hello(Hello(name: "w1", threads: 2, rowCacheBytes: 1 << 30))), limits: limits) {
            #expect(h == Hello(name: "w1", threads: 2, rowCacheBytes: 1 << 30))
        } else { Issue.record("not a hello") }

        let welcome = Welcome(runID: 42, workerID: 3, parameterCount: 5, configuration: Array("{\"a\":1}".utf8))
        if case .welcome(let w) = try Message.decode(received(Message.welcome(welcome)), limits: limits) {
            #expect(w == welcome)
        } else { Issue.record("not a welcome") }

        let params = SharedFloats([1, 2, 3, -0.0, .infinity])
        if case .params(let step, let p) = try Message.decode(received(Message.params(step: 9, params)), limits: limits) {
            #expect(step == 9)
            #expect(p.array.map(\.bitPattern) == Array(params.values).map(\.bitPattern))
        } else { Issue.record("not params") }

        let work = Work(step: 7, part: 2, seed: 99, sampleIDs: [5, 1, 40_000], dimension: 2, sampleType: .uint8, samples: [1, 2, 3, 4, 5, 6])
        if case .work(let w) = try Message.decode(received(Message.work(work)), limits: limits) {
            #expect(w.step == 7 && w.part == 2 && w.seed == 99 && w.sampleIDs == [5, 1, 40_000] && w.samples == [1, 2, 3, 4, 5, 6])
            #expect(w.dimension == 2 && w.sampleType == .uint8 && w.carriesRow == [true, true, true])
        } else { Issue.record("not work") }

        // Nine samples (a bitmap of two bytes), the rows of three of them.
        let partial = Work(step: 8, part: 1, seed: 3, sampleIDs: Array(10..<19), dimension: 1, sampleType: .float32,
                           carriesRow: [false, true, false, false, false, false, false, true, true], samples: Array(0..<12))
        if case .work(let w) = try Message.decode(received(Message.work(partial)), limits: limits) {
            #expect(w.sampleIDs == Array(10..<19) && w.carriesRow == partial.carriesRow && w.samples == Array(0..<12))
            #expect(w.carriedCount == 3 && w.rowBytes == 4)
        } else { Issue.record("not work") }
        // Ids only.
        let idsOnly = Work(step: 8, seed: 3, sampleIDs: [4, 2], dimension: 5, sampleType: .uint8, carriesRow: [false, false], samples: [])
        if case .work(let w) = try Message.decode(received(Message.work(idsOnly)), limits: limits) {
            #expect(w.sampleIDs == [4, 2] && w.carriesRow == [false, false] && w.samples.isEmpty)
        } else { Issue.record("not work") }

        let grad = Message.gradient(step: 7, part: 1, sampleCount: 3, sums: [1.5, 2.5], gradient: SharedFloats([0.5, 1, 2, 3, 4]))
        if case .gradient(let g) = try Message.decode(received(grad), limits: limits) {
            #expect(g.step == 7 && g.part == 1 && g.sampleCount == 3 && g.sums == [1.5, 2.5])
            #expect(g.gradient.array == [0.5, 1, 2, 3, 4])
            g.gradient.withFloats { #expect(Array($0) == [0.5, 1, 2, 3, 4]) }
        } else { Issue.record("not a gradient") }

        if case .stop(let reason, let text) = try Message.decode(received(Message.stop(.finished, "done")), limits: limits) {
            #expect(reason == .finished && text == "done")
        } else { Issue.record("not stop") }
        if case .heartbeat(let step) = try Message.decode(received(Message.heartbeat(step: 12)), limits: limits) {
            #expect(step == 12)
        } else { Issue.record("not a heartbeat") }
        if case .leave = try Message.decode(received(Message.leave()), limits: limits) {} else { Issue.record("not leave") }
        if case .reject(let reason, let text) = try Message.decode(received(Message.reject(.versionMismatch, "v")), limits: limits) {
            #expect(reason == .versionMismatch && text == "v")
        } else { Issue.record("not reject") }
    }

    @Test func headerIsFixedLittleEndian() throws {
        let frames: [OutgoingFrame] = Message.heartbeat(step: 0x0102_0304_0506_0708)
        try #require(frames.count == 1)
        guard case .bytes(let header) = frames[0] else {
            Issue.record("the header frame should be bytes, not \(frames[0])")
            return
        }
        #expect(header == [0x56, 0x41, 0x45, 0x43, UInt8(protocolVersion), 0, 7, 0, 8, 7, 6, 5, 4, 3, 2, 1])
    }

    func expectError(_ code: WireError.Code, _ frames: [any FrameBytes], limits: Limits? = nil) {
        #expect {
            _ = try Message.decode(frames, limits: limits ?? self.limits)
        } throws: { ($0 as? WireError)?.code == code }
    }

    @Test func malformedFramesAreRejectedWithAReason() {
        let good = received(Message.params(step: 1, SharedFloats([1, 2, 3, 4, 5])))
        expectError(.wrongFrameCount, [])
        expectError(.badMagic, [[0x47, 0x45, 0x54, 0x20, 1, 0, 3, 0]] + good.dropFirst())
        expectError(.truncated, [Array((good[0] as! [UInt8]).prefix(10))] + good.dropFirst())
        expectError(.wrongFrameCount, Array(good.prefix(1)))
        expectError(.malformed, [good[0], [0, 0, 0, 0]])  // wrong payload length
        expectError(.malformed, good, limits: Limits(parameterCount: 6))  // wrong parameter count
        expectError(.unexpected, good, limits: Limits(parameterCount: 0))  // before WELCOME
        var unknown = good[0] as! [UInt8]
        unknown[6] = 99
        expectError(.unknownType, [unknown] + good.dropFirst())
        var future = good[0] as! [UInt8]
        future[4] = UInt8(protocolVersion + 1)
        expectError(.unsupportedVersion, [future] + good.dropFirst())
        var trailing = good[0] as! [UInt8]
        trailing.append(0)
        expectError(.malformed, [trailing] + good.dropFirst())
    }

    @Test func stepNumbersBeyondAnyRunAreRejected() {
        expectError(.malformed, received(Message.heartbeat(step: UInt64.max)))
        expectError(.malformed, received(Message.gradient(step: (1 << 48) + 1, part: 0, sampleCount: 1, sums: [], gradient: SharedFloats([1, 2, 3, 4, 5]))))
    }

    @Test func sizesAreCheckedBeforeAllocation() {
        // A WORK header claiming 2^31 samples, with tiny frames (the sample count at offset 36).
        var frames = received(Message.work(Work(step: 1, seed: 1, sampleIDs: [1], dimension: 1, sampleType: .uint8, samples: [0])))
        var header = frames[0] as! [UInt8]
        header.replaceSubrange(36..<40, with: [0, 0, 0, 0x80])
        frames[0] = header
        expectError(.tooLarge, frames)
        // A name longer than the limit.
        let hello = received(Message.hello(Hello(name: String(repeating: "x", count: 5000), threads: 1)))
        expectError(.tooLarge, hello)
    }

    @Test func aHelloOfAnotherVersionIsReadAsFarAsItsNameSoThatItCanBeRefused() throws {
        // Version 1's HELLO: threads and name, no cache capacity, no ring endpoint.
        var frames = received(Message.hello(Hello(name: "old", threads: 4)))
        var header = frames[0] as! [UInt8]
        header.removeLast(12)
        header[4] = 1
        frames[0] = header
        guard case .hello(let hello) = try Message.decode(frames, limits: limits) else {
            Issue.record("not a hello")
            return
        }
        #expect(hello.version == 1 && hello.name == "old" && hello.threads == 4 && hello.rowCacheBytes == 0 && hello.ringEndpoint.isEmpty)
        // This version's HELLO without the capacity and the ring endpoint is truncated.
        header[4] = UInt8(protocolVersion)
        expectError(.truncated, [header])
    }

    /// A WORK with `carriesRow`, its frames as received, and its header's checksum recomputed
    /// after `edit` changes them (so that only the edited property is wrong).
    func work(carrying carries: [Bool], dimension: Int = 2, _ edit: (inout [UInt8], inout [[UInt8]]) -> Void) -> [any FrameBytes] {
        let n = carries.count
        let rows = carries.filter { $0 }.count
        let frames = received(Message.work(Work(step: 1, seed: 1, sampleIDs: (0..<n).map(UInt32.init), dimension: UInt32(dimension),
                                                 sampleType: .uint8, carriesRow: carries, samples: [UInt8](repeating: 9, count: rows * dimension))))
        var header = frames[0] as! [UInt8]
        var payload = frames.dropFirst().map { $0 as! [UInt8] }
        edit(&header, &payload)
        if payload.count == 3 {
            let checksum = crc32(of: payload[0], continuing: crc32(of: payload[1], continuing: crc32(of: payload[2])))
            withUnsafeBytes(of: checksum.littleEndian) { header.replaceSubrange((header.count - 4)..<header.count, with: $0) }
        }
        return [header] + payload
    }

    @Test func workWhoseRowBitmapDisagreesWithItsSizesIsRefused() {
        let carries = [true, false, true, false, false, false, false, false, false, true]  // 10 samples, 3 rows
        // The header's row count (offset 45) says 4, the bitmap marks 3 (data frame resized to match the header).
        expectError(.malformed, work(carrying: carries) { header, payload in
            header[45] = 4
            payload[2] += [9, 9]
        })
        // More rows than samples.
        expectError(.malformed, work(carrying: carries) { header, _ in header[45] = 11 })
        // A bitmap one byte short, and one byte long.
        expectError(.malformed, work(carrying: carries) { _, payload in payload[1].removeLast() })
        expectError(.malformed, work(carrying: carries) { _, payload in payload[1].append(0) })
        // A bit set beyond the tenth sample (the count adjusted to match it).
        expectError(.malformed, work(carrying: carries) { header, payload in
            payload[1][1] |= 0x80
            header[45] = 4
            payload[2] += [9, 9]
        })
        // A data frame that is not the carried rows' size.
        expectError(.malformed, work(carrying: carries) { _, payload in payload[2].removeLast() })
        // A bitmap changed in transit.
        var frames = work(carrying: carries) { _, _ in }
        var bitmap = frames[2] as! [UInt8]
        bitmap[0] ^= 2
        frames[2] = bitmap
        expectError(.checksumMismatch, frames)
        // The old three frames.
        expectError(.wrongFrameCount, Array(work(carrying: carries) { _, _ in }.prefix(3)))
        // Unchanged, it decodes.
        #expect(throws: Never.self) { try Message.decode(work(carrying: carries) { _, _ in }, limits: limits) }
    }

    @Test func corruptedWorkSamplesAreDetected() {
        var frames = received(Message.work(Work(step: 1, seed: 1, sampleIDs: [1, 2], dimension: 3, sampleType: .float32,
                                                 samples: [UInt8](repeating: 7, count: 24))))
        var data = frames[3] as! [UInt8]
        data[5] ^= 1
        frames[3] = data
        expectError(.checksumMismatch, frames)
    }

    @Test func randomAndMutatedFramesNeverCrashTheDecoder() {
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next() -> UInt64 {
            state ^= state << 13
            state ^= state >> 7
            state ^= state << 17
            return state
        }
        let seeds: [[any FrameBytes]] = [
            received(Message.hello(Hello(name: "w", threads: 1))),
            received(Message.params(step: 1, SharedFloats([1, 2, 3, 4, 5]))),
            received(Message.work(Work(step: 1, seed: 1, sampleIDs: [1, 2], dimension: 2, sampleType: .uint8, samples: [1, 2, 3, 4]))),
            received(Message.work(Work(step: 1, seed: 1, sampleIDs: Array(0..<9), dimension: 1, sampleType: .uint8,
                                       carriesRow: [true, false, false, true, false, false, false, false, true], samples: [1, 2, 3]))),
            received(Message.gradient(step: 1, sampleCount: 2, sums: [1], gradient: SharedFloats([1, 2, 3, 4, 5]))),
            received(Message.group(Group(generation: 1, rank: 0, size: 2, successorEndpoint: "tcp://h:1"))),
            received(Message.state(step: 1, generation: 1, optimizerStep: 1, shard: 1..<3, parameters: SharedFloats([1, 2, 3, 4, 5]),
                                   first: SharedFloats([1, 2]), second: nil)),
            [Message.shardHeader(step: 1, group: 1, chunk: 0, count: 2), [UInt8](repeating: 0, count: 8)],
            received(Message.norms(step: 1, group: 1, squaredNorms: [1, 2])),
            received(Message.rows(Rows(step: 1, part: 1, sampleIDs: [4, 9, 2], dimension: 2, sampleType: .uint8, rows: [1, 2, 3, 4, 5, 6]))),
            received(Message.mapped(region: 7, rows: 60_000, ok: false, detail: "no")),
        ]
        var accepted = 0
        var rejected: [WireError.Code: Int] = [:]
        for i in 0..<10_000 {
            var frames = seeds[i % seeds.count].map { $0 as! [UInt8] }
            let mutations = Int(next() % 4) + 1
            for _ in 0..<mutations {
                let f = Int(next() % UInt64(frames.count))
                switch next() % 4 {
                case 0 where !frames[f].isEmpty: frames[f][Int(next() % UInt64(frames[f].count))] = UInt8(truncatingIfNeeded: next())
                case 1: frames[f] = Array(frames[f].prefix(Int(next() % UInt64(frames[f].count + 1))))
                case 2: frames[f].append(UInt8(truncatingIfNeeded: next()))
                default: frames = (0..<Int(next() % 4)).map { _ in (0..<Int(next() % 40)).map { _ in UInt8(truncatingIfNeeded: next()) } }
                }
                if frames.isEmpty { break }
            }
            do {
                expectSizesAgree(try Message.decode(frames, limits: limits))
                accepted += 1
            } catch let error as WireError {
                rejected[error.code, default: 0] += 1
            } catch {
                Issue.record("decode threw \(error), not a WireError")
            }
        }
        // Both outcomes, and refusals by many different checks: the mutations reach past the
        // first check of the header, into the sizes and payloads.
        #expect(accepted > 0)
        let codes: Set<WireError.Code> = [.truncated, .tooLarge, .malformed, .badMagic, .unknownType, .wrongFrameCount, .checksumMismatch]
        #expect(codes.isSubset(of: rejected.keys), "refusals by code: \(rejected)")
    }

    /// What decoding promises of a message it accepts: every size agrees with the limits and the
    /// frames, so that reading any field or payload stays in bounds.
    func expectSizesAgree(_ message: Message) {
        switch message {
        case .hello(let hello):
            #expect(hello.name.utf8.count <= limits.maxStringBytes)
        case .welcome(let welcome):
            #expect(welcome.configuration.count <= limits.maxConfigurationBytes)
        case .params(let step, let parameters):
            #expect(step <= maxStep)
            #expect(parameters.count == limits.parameterCount && parameters.frame.byteCount == 4 * parameters.count)
            #expect(parameters.array.count == parameters.count)
        case .work(let work):
            #expect(work.step <= maxStep)
            #expect(work.sampleIDs.count <= limits.maxSamples && Int(work.dimension) <= limits.maxDimension)
            let size = work.sampleType == .uint8 ? 1 : 4
            #expect(work.carriesRow.count == work.sampleIDs.count)
            #expect(work.samples.count == work.carriedCount * Int(work.dimension) * size)
        case .gradient(let gradient):
            #expect(gradient.step <= maxStep && gradient.sums.count <= limits.maxSums)
            #expect(gradient.gradient.count == limits.parameterCount && gradient.gradient.frame.byteCount == 4 * gradient.gradient.count)
            #expect(gradient.gradient.array.count == gradient.gradient.count)
        case .stop(_, let text), .reject(_, let text):
            #expect(text.utf8.count <= limits.maxStringBytes)
        case .heartbeat(let step):
            #expect(step <= maxStep)
        case .leave:
            break
        case .group(let group):
            #expect(group.generation > 0 && group.rank < group.size && Int(group.size) <= limits.maxGroupSize)
        case .state(let state):
            #expect(state.step <= maxStep && state.parameters.count == limits.parameterCount)
            #expect(state.shard.lowerBound >= 0 && state.shard.upperBound <= limits.parameterCount)
            for moment in [state.first, state.second] {
                if let moment { #expect(moment.count == state.shard.count && moment.frame.byteCount == 4 * moment.count) }
            }
        case .done(let done):
            #expect(done.step <= maxStep && done.sums.count <= limits.maxSums)
        case .shard(let shard):
            #expect(shard.step <= maxStep && shard.count <= limits.parameterCount)
            switch shard.content {
            case .gradient(let g): #expect(g.frame.byteCount == 4 * g.count && g.count == shard.count)
            case .norm: #expect(shard.count == 0)
            case .state(let s):
                for payload in [s.parameters, s.first, s.second].compactMap({ $0 }) {
                    #expect(payload.count == shard.count && payload.frame.byteCount == 4 * payload.count)
                }
            }
        case .norms(let step, _, let norms):
            #expect(step <= maxStep && norms.count <= limits.maxGroupSize)
        case .linked(_, _, let detail), .mapped(_, _, _, let detail):
            #expect(detail.utf8.count <= limits.maxStringBytes)
        case .rows(let rows):
            #expect(rows.step <= maxStep && !rows.sampleIDs.isEmpty && rows.sampleIDs.count <= limits.maxSamples)
            #expect(rows.dimension > 0 && Int(rows.dimension) <= limits.maxDimension)
            #expect(rows.rows.count == rows.sampleIDs.count * rows.rowBytes)
            #expect(Set(rows.sampleIDs).count == rows.sampleIDs.count)
        }
    }

    // MARK: Version 3: the ring

    @Test func everyRingMessageRoundTrips() throws {
        let hello = Hello(name: "w1", threads: 2, rowCacheBytes: 7, ringEndpoint: "tcp://10.0.0.7:41234")
        if case .hello(let h) = try Message.decode(received(Message.hello(hello)), limits: limits) {
            #expect(h == hello)
        } else { Issue.record("not a hello") }

        let work = Work(step: 7, part: 2, group: 3, stepSamples: 128, seed: 99, sampleIDs: [5, 1], dimension: 1, sampleType: .uint8, samples: [1, 2])
        if case .work(let w) = try Message.decode(received(Message.work(work)), limits: limits) {
            #expect(w.step == 7 && w.part == 2 && w.group == 3 && w.stepSamples == 128 && w.sampleIDs == [5, 1])
        } else { Issue.record("not work") }

        let group = Group(generation: 4, rank: 1, size: 3, successorEndpoint: "tcp://10.0.0.8:5000",
                          successorKey: String(repeating: "a", count: 40), predecessorKey: String(repeating: "b", count: 40), pieces: 4)
        if case .group(let g) = try Message.decode(received(Message.group(group)), limits: limits) {
            #expect(g == group)
        } else { Issue.record("not a group") }

        let parameters = SharedFloats([1, 2, 3, 4, 5])
        let state = Message.state(step: 9, generation: 4, optimizerStep: 8, shard: 2..<4, parameters: parameters,
                                  first: SharedFloats([0.5, 0.25]), second: SharedFloats([1, 2]))
        if case .state(let m) = try Message.decode(received(state), limits: limits) {
            #expect(m.step == 9 && m.generation == 4 && m.optimizerStep == 8 && m.shard == 2..<4)
            #expect(m.parameters.array == [1, 2, 3, 4, 5] && m.first?.array == [0.5, 0.25] && m.second?.array == [1, 2])
        } else { Issue.record("not state") }
        // Without moments (SGD without momentum).
        let bare = Message.state(step: 0, generation: 1, optimizerStep: 0, shard: 0..<5, parameters: parameters, first: nil, second: nil)
        if case .state(let m) = try Message.decode(received(bare), limits: limits) {
            #expect(m.first == nil && m.second == nil && m.shard == 0..<5)
        } else { Issue.record("not state") }

        let done = Done(step: 3, group: 4, part: 1, sampleCount: 64, sums: [1, 2, 3, 0.5])
        if case .done(let d) = try Message.decode(received(Message.done(done)), limits: limits) {
            #expect(d == done)
        } else { Issue.record("not done") }

        let shard: [any FrameBytes] = [Message.shardHeader(step: 3, group: 4, chunk: 2, count: 2), floats([7, 8])]
        if case .shard(let m) = try Message.decode(shard, limits: limits), case .gradient(let g) = m.content {
            #expect(m.step == 3 && m.group == 4 && m.chunk == 2 && g.array == [7, 8] && m.report == .gradient)
        } else { Issue.record("not a shard") }

        let norm: [any FrameBytes] = [Message.shardHeader(step: 3, group: 4, chunk: 2, report: .norm, count: 0, squaredNorm: 2.5)]
        if case .shard(let m) = try Message.decode(norm, limits: limits), case .norm(let squaredNorm) = m.content {
            #expect(m.step == 3 && m.group == 4 && m.chunk == 2 && squaredNorm == 2.5 && m.report == .norm)
        } else { Issue.record("not a shard's norm") }

        let chunkState: [any FrameBytes] = [Message.shardHeader(step: 3, group: 4, chunk: 1, report: .state, count: 2, squaredNorm: 0.25,
                                                                optimizerStep: 17), floats([1, 2]), floats([3, 4]), floats([5, 6])]
        if case .shard(let m) = try Message.decode(chunkState, limits: limits), case .state(let s) = m.content {
            #expect(m.chunk == 1 && m.count == 2 && s.squaredNorm == 0.25 && s.optimizerStep == 17)
            #expect(s.parameters.array == [1, 2] && s.first?.array == [3, 4] && s.second?.array == [5, 6])
        } else { Issue.record("not a shard's state") }
        let withoutMoments: [any FrameBytes] = [Message.shardHeader(step: 3, group: 4, chunk: 1, report: .state, count: 2), floats([1, 2]), [UInt8](), [UInt8]()]
        if case .shard(let m) = try Message.decode(withoutMoments, limits: limits), case .state(let s) = m.content {
            #expect(s.parameters.array == [1, 2] && s.first == nil && s.second == nil)
        } else { Issue.record("not a shard's state without moments") }

        let ringWork = Work(step: 3, part: 1, group: 2, stepSamples: 8, report: .state, seed: 1, sampleIDs: [4], dimension: 1,
                            sampleType: .uint8, samples: [9])
        if case .work(let w) = try Message.decode(received(Message.work(ringWork)), limits: limits) {
            #expect(w.report == .state && w.group == 2 && w.stepSamples == 8)
        } else { Issue.record("not a ring work") }

        if case .norms(let step, let g, let norms) = try Message.decode(received(Message.norms(step: 3, group: 4, squaredNorms: [1, 0.5])), limits: limits) {
            #expect(step == 3 && g == 4 && norms == [1, 0.5])
        } else { Issue.record("not norms") }

        if case .linked(let g, let ok, let detail) = try Message.decode(received(Message.linked(group: 4, ok: false, detail: "refused")), limits: limits) {
            #expect(g == 4 && !ok && detail == "refused")
        } else { Issue.record("not linked") }

        if case .mapped(let region, let rows, let ok, let detail) = try Message.decode(received(Message.mapped(region: 0xfeed, rows: 60_000, ok: true, detail: "")), limits: limits) {
            #expect(region == 0xfeed && rows == 60_000 && ok && detail.isEmpty)
        } else { Issue.record("not mapped") }
    }

    /// The bytes of `values`, as a float frame arrives.
    func floats(_ values: [Float]) -> [UInt8] { values.withUnsafeBytes { Array($0) } }

    @Test func malformedGroupsAreRefused() {
        func group(generation: UInt32 = 1, rank: UInt32 = 0, size: UInt32 = 2, endpoint: String = "tcp://h:1", pieces: UInt32 = 1) -> [any FrameBytes] {
            received(Message.group(Group(generation: generation, rank: rank, size: size, successorEndpoint: endpoint, pieces: pieces)))
        }
        expectError(.malformed, group(pieces: 0))
        expectError(.malformed, group(pieces: UInt32(limits.maxRingPieces) + 1))
        expectError(.malformed, group(generation: 0))
        expectError(.malformed, group(rank: 2, size: 2))
        expectError(.malformed, group(rank: 5, size: 2))
        expectError(.tooLarge, group(size: 0))
        expectError(.tooLarge, group(size: UInt32(limits.maxGroupSize) + 1))
        expectError(.malformed, group(endpoint: ""))
        // A group of one needs no successor.
        #expect(throws: Never.self) { try Message.decode(group(size: 1, endpoint: ""), limits: limits) }
        // Strings beyond the limit, a truncated header, a trailing byte, a frame too many.
        expectError(.tooLarge, group(endpoint: String(repeating: "x", count: limits.maxStringBytes + 1)))
        var header = group()[0] as! [UInt8]
        expectError(.truncated, [Array(header.dropLast())])
        header.append(0)
        expectError(.malformed, [header])
        expectError(.wrongFrameCount, group() + [[UInt8]()])
    }

    @Test func malformedStatesAreRefused() {
        let parameters = SharedFloats([1, 2, 3, 4, 5])
        func state(shard: Range<Int> = 1..<3, first: [Float]? = [1, 2], second: [Float]? = [3, 4]) -> [any FrameBytes] {
            received(Message.state(step: 1, generation: 1, optimizerStep: 1, shard: shard, parameters: parameters,
                                   first: first.map { SharedFloats($0) }, second: second.map { SharedFloats($0) }))
        }
        #expect(throws: Never.self) { try Message.decode(state(), limits: limits) }
        // A shard outside the parameters, or reaching past them.
        expectError(.malformed, state(shard: 6..<6, first: [], second: []))
        expectError(.malformed, state(shard: 3..<7, first: [1, 2, 3, 4], second: [1, 2, 3, 4]))
        // A shard whose length overflows when added to its start.
        var frames = state()
        var header = frames[0] as! [UInt8]
        header.replaceSubrange(32..<40, with: [UInt8](repeating: 0xFF, count: 8))
        frames[0] = header
        expectError(.malformed, frames)
        // Moments of another length than the shard.
        expectError(.malformed, state(first: [1, 2, 3]))
        expectError(.malformed, state(second: [1]))
        // Parameters of another count than the run's, and before WELCOME.
        expectError(.malformed, state(), limits: Limits(parameterCount: 6))
        expectError(.unexpected, state(), limits: Limits(parameterCount: 0))
        // Three frames.
        expectError(.wrongFrameCount, Array(state().prefix(3)))
    }

    @Test func malformedShardsNormsDoneAndLinkedAreRefused() {
        let header = Message.shardHeader(step: 1, group: 1, chunk: 0, count: 2)
        // A payload of another length than declared; more floats than the run has; before WELCOME.
        expectError(.malformed, [header, floats([1, 2, 3])])
        expectError(.malformed, [Message.shardHeader(step: 1, group: 1, chunk: 0, count: 6), floats([1, 2, 3, 4, 5, 6])])
        expectError(.unexpected, [header, floats([1, 2])], limits: Limits(parameterCount: 0))
        expectError(.wrongFrameCount, [header])
        // A report that does not exist; a norm that declares floats or carries a frame; a state
        // without its three frames, or with a frame of another length.
        var unknown = header
        unknown[unknown.count - 25] = 3
        expectError(.malformed, [unknown, floats([1, 2])])
        expectError(.malformed, [Message.shardHeader(step: 1, group: 1, chunk: 0, report: .norm, count: 2)])
        expectError(.wrongFrameCount, [Message.shardHeader(step: 1, group: 1, chunk: 0, report: .norm, count: 0), floats([1])])
        let stateHeader = Message.shardHeader(step: 1, group: 1, chunk: 0, report: .state, count: 2)
        expectError(.wrongFrameCount, [stateHeader, floats([1, 2])])
        expectError(.malformed, [stateHeader, floats([1, 2]), floats([1]), floats([1, 2])])
        expectError(.malformed, [stateHeader, [UInt8](), [UInt8](), [UInt8]()])
        // NORMS: more values than a group may have members; a count beyond the values sent.
        expectError(.tooLarge, received(Message.norms(step: 1, group: 1, squaredNorms: [Double](repeating: 1, count: limits.maxGroupSize + 1))))
        var norms = received(Message.norms(step: 1, group: 1, squaredNorms: [1, 2]))[0] as! [UInt8]
        norms[20] = 3
        expectError(.truncated, [norms])
        norms[20] = 1
        expectError(.malformed, [norms])
        // DONE with more sums than allowed.
        expectError(.tooLarge, received(Message.done(Done(step: 1, group: 1, part: 0, sampleCount: 1,
                                                          sums: [Double](repeating: 0, count: limits.maxSums + 1)))))
        // LINKED with an outcome that is neither 0 nor 1.
        var linked = received(Message.linked(group: 1, ok: true, detail: ""))[0] as! [UInt8]
        linked[20] = 2
        expectError(.malformed, [linked])
        // MAPPED with an outcome that is neither 0 nor 1 (after the region and the rows).
        var mapped = received(Message.mapped(region: 1, rows: 2, ok: true, detail: ""))[0] as! [UInt8]
        mapped[32] = 2
        expectError(.malformed, [mapped])
        // Ring WORK for a step of no samples.
        expectError(.malformed, received(Message.work(Work(step: 1, group: 2, stepSamples: 0, seed: 1, sampleIDs: [1], dimension: 1,
                                                           sampleType: .uint8, samples: [1]))))
    }

    // MARK: Version 4: ROWS, the spare rows for a worker's cache

    @Test func rowsRoundTripWithTheirIdsAndRowsInOrder() throws {
        let bytes = Rows(step: 11, part: 1, sampleIDs: [40_000, 3, 7], dimension: 2, sampleType: .uint8, rows: [1, 2, 3, 4, 5, 6])
        guard case .rows(let r) = try Message.decode(received(Message.rows(bytes)), limits: limits) else {
            Issue.record("not rows")
            return
        }
        #expect(r == bytes && r.rowBytes == 2)
        let floats = Rows(step: 12, part: 0, sampleIDs: [9], dimension: 3, sampleType: .float32,
                          rows: [Float(1.5), -2, .infinity].withUnsafeBytes { Array($0) })
        guard case .rows(let f) = try Message.decode(received(Message.rows(floats)), limits: limits) else {
            Issue.record("not rows")
            return
        }
        #expect(f == floats && f.rowBytes == 12)
        #expect(protocolVersion >= 4 && MessageType.rows.rawValue == 16)
    }

    /// A ROWS of `ids` (rows of `dimension` bytes), its frames as received, and its header's
    /// checksum recomputed after `edit` changes them (so that only the edited property is wrong).
    /// The header: part at offset 16, count 20, dimension 24, sample type 28, CRC-32 29.
    func rows(_ ids: [UInt32] = [1, 2, 3], dimension: Int = 2, _ edit: (inout [UInt8], inout [[UInt8]]) -> Void = { _, _ in }) -> [any FrameBytes] {
        let frames = received(Message.rows(Rows(step: 1, part: 0, sampleIDs: ids, dimension: UInt32(dimension), sampleType: .uint8,
                                                rows: [UInt8](repeating: 9, count: ids.count * dimension))))
        var header = frames[0] as! [UInt8]
        var payload = frames.dropFirst().map { $0 as! [UInt8] }
        edit(&header, &payload)
        if payload.count == 2 {
            let checksum = crc32(of: payload[0], continuing: crc32(of: payload[1]))
            withUnsafeBytes(of: checksum.littleEndian) { header.replaceSubrange(29..<33, with: $0) }
        }
        return [header] + payload
    }

    func expectError(_ code: WireError.Code, saying words: String, _ frames: [any FrameBytes], limits: Limits? = nil) {
        #expect {
            _ = try Message.decode(frames, limits: limits ?? self.limits)
        } throws: { error in
            guard let error = error as? WireError else { return false }
            return error.code == code && "\(error)".contains(words)
        }
    }

    @Test func malformedRowsAreRefusedWithAReason() {
        #expect(throws: Never.self) { try Message.decode(rows(), limits: limits) }
        expectError(.wrongFrameCount, Array(rows().prefix(2)))
        expectError(.malformed, saying: "no row", rows([]))
        expectError(.malformed, saying: "unknown sample type", rows { header, _ in header[28] = 7 })
        expectError(.malformed, saying: "sample-id frame", rows { _, payload in payload[0].removeLast() })
        expectError(.malformed, saying: "data frame", rows { _, payload in payload[1].append(9) })
        // The count says 4, with an id frame of 4 ids but the rows of 3.
        expectError(.malformed, saying: "data frame", rows { header, payload in
            header[20] = 4
            payload[0] += [5, 0, 0, 0]
        })
        expectError(.malformed, saying: "sample 2 twice", rows([2, 5, 2]))
        var trailing = rows()
        trailing[0] = (trailing[0] as! [UInt8]) + [0]
        expectError(.malformed, trailing)
    }

    @Test func oversizedRowsAreRefusedBeforeAnythingIsRead() {
        // 2^31 rows claimed, with tiny frames.
        expectError(.tooLarge, saying: "rows (limit", rows { header, _ in header.replaceSubrange(20..<24, with: [0, 0, 0, 0x80]) })
        expectError(.tooLarge, saying: "dimension", rows { header, _ in header.replaceSubrange(24..<28, with: [0, 0, 0, 0x80]) })
        expectError(.tooLarge, saying: "dimension", rows { header, _ in header.replaceSubrange(24..<28, with: [0, 0, 0, 0]) })
        var small = limits
        small.maxWorkBytes = 5
        expectError(.tooLarge, saying: "too large", rows(), limits: small)
        small = limits
        small.maxSamples = 2
        expectError(.tooLarge, saying: "3 rows (limit 2)", rows(), limits: small)
    }

    @Test func corruptedRowsAreDetected() {
        for frame in [1, 2] {
            var frames = rows()
            var bytes = frames[frame] as! [UInt8]
            bytes[1] ^= 4
            frames[frame] = bytes
            expectError(.checksumMismatch, saying: "CRC-32", frames)
        }
    }
}
