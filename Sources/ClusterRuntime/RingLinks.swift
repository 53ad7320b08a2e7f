import Collectives
import Foundation
import SharedMemory
import WireProtocol
import ZeroMQ

/// A worker's CURVE identity on its ring links: its own key pair (the one it joins the
/// coordinator with) and the public key of the one predecessor it accepts chunks from.
struct RingSecurity {
    var keyPair: CurveKeyPair
    /// Nil until a group names the predecessor: then nobody is admitted.
    var predecessorKey: CurveKey?
}

/// What the ring links had ready after a poll: the chunks that arrived (or why each was
/// refused), and how handshakes with the successor ended.
struct RingLinkEvents {
    var chunks: [Result<RingChunk, WireError>] = []
    var successorHandshakes: [HandshakeOutcome] = []
    /// What happened to shared memory with the neighbours, for the log.
    var notes: [RingLinkNote] = []
}

/// A line for the worker's log about the ring's shared memory.
enum RingLinkNote: Equatable {
    /// As expected (a region offered, mapped, taken up).
    case info(String)
    /// Shared memory could have been used and is not: chunks go over the link.
    case warning(String)
}

/// A worker's sockets to its ring neighbours: a PULL socket bound where its predecessor can reach
/// it (on the address it reaches the coordinator from, an ephemeral port), and a PUSH socket
/// connected to its successor's. With CURVE, the PULL socket is a CURVE server with the worker's
/// key whose ZAP handler admits only the predecessor's key, and the PUSH socket proves the
/// worker's key to a successor it authenticates by that successor's public key; without it, the
/// bind policy allows only loopback unless `insecure`. Sends never block the loop; chunks are
/// checked (`RingChunk.decode`) before anything is read.
///
/// Shared memory (unless `sharedMemory` is off): the worker also listens on an abstract Unix
/// socket named after its ring endpoint (`handoffName`), which only processes of its network
/// namespace can reach. For each group, the member tries its successor's: if it answers, the
/// member offers a region for that group's chunks (`RingOutbox`, a sealed memfd passed with the
/// offer), and once the successor says it has mapped it, every chunk's floats go into the region
/// and only the header travels on the link (docs/PROTOCOL.md, "Shared memory between ring
/// neighbours on one host").
/// Across hosts, or in different network namespaces, nobody answers and nothing changes. Offers
/// are taken only from processes of this worker's user.
final class RingLinks {
    /// Where the predecessor connects, e.g. `tcp://10.213.0.3:41234`.
    let endpoint: String
    private let context: ZMQContext
    private let inbound: ZMQSocket
    private var outbound: ZMQSocket?
    private var outboundMonitor: ZMQMonitor?
    private let authenticator: ZAPAuthenticator?
    private let security: RingSecurity?
    private var limits: RingChunkLimits
    /// The successor connected to, and the key it was authenticated by.
    private(set) var successor: (endpoint: String, key: CurveKey?)?
    /// Bytes sent to the successor and received from the predecessor (headers and floats).
    private(set) var bytesSent = 0
    /// Chunks dropped because the successor had no live connection to queue them on.
    private(set) var chunksDropped = 0
    private(set) var bytesReceived = 0
    /// Floats sent and received through shared memory.
    private(set) var sharedFloatsSent = 0
    private(set) var sharedFloatsReceived = 0

    /// Where predecessors on this host offer shared memory; nil when it is off or could not listen.
    private let handoffListener: HandoffListener?
    /// Accepted hand-over connections whose offer has not come yet (at most `maxPendingOffers`).
    private var offerConnections: [HandoffConnection] = []
    /// The predecessors' regions, the last few taken (`keptInboxes`), oldest first.
    private var inboxes: [RingInbox] = []
    /// The region this member writes its chunks into, once the successor has mapped it.
    private(set) var outbox: RingOutbox?
    /// An offer made, waiting for the successor's answer.
    private var pendingOffer: (connection: HandoffConnection, outbox: RingOutbox)?
    /// Notes not yet reported by `events`.
    private var notes: [RingLinkNote] = []
    /// The parameters a ring of this run reduces (an offer must be for as many); nil: none taken yet.
    var parameterCount: Int?
    /// Whether this member offers and takes shared memory.
    let sharedMemory: Bool

    static let maxPendingOffers = 8
    static let keptInboxes = 2

    /// The abstract Unix socket name of the worker whose ring endpoint is `endpoint`: unique in a
    /// network namespace, as the endpoint's address and port are.
    static func handoffName(_ endpoint: String) -> String { "vae-cluster/ring/" + endpoint }

    /// Binds `tcp://host:*` (host: a numeric address); chunks of at most `maxFloats` floats. With
    /// `sharedMemory`, also listens for offers of shared memory from a predecessor on this host.
    init(host: String, security: RingSecurity?, insecure: Bool, maxFloats: Int, sharedMemory: Bool = true) throws {
        let bind = host.contains(":") ? "tcp://[\(host)]:*" : "tcp://\(host):*"
        try BindPolicy.checkRing(bind, encrypted: security != nil, insecure: insecure)
        self.security = security
        limits = RingChunkLimits(maxFloats: maxFloats)
        context = try ZMQContext()
        if let security {
            authenticator = try ZAPAuthenticator(context: context, allowed: Set([security.predecessorKey].compactMap { $0 }))
        } else {
            authenticator = nil
        }
        inbound = try ZMQSocket(context, type: .pull, linger: 0)
        try inbound.setOption(.receiveHighWaterMark, 0)
        // The largest chunk, with room for the CURVE handshake's commands (hundreds of bytes),
        // which libzmq also holds to this limit.
        try inbound.setOption(.maxMessageSize, Int64(4 * maxFloats + RingChunkHeader.byteCount + (64 << 10)))
        if let security {
            try inbound.setOption(.curveServer, true)
            try inbound.setOption(.curveSecretKey, security.keyPair.secretKey)
            try inbound.setOption(.zapDomain, ZAPAuthenticator.domain)
        }
        endpoint = try inbound.bind(bind)
        self.sharedMemory = sharedMemory
        if sharedMemory {
            do {
                handoffListener = try HandoffListener(name: Self.handoffName(endpoint))
            } catch {
                handoffListener = nil
                notes.append(.warning("no shared memory with a predecessor on this host (\(error)): its chunks come over the link"))
            }
        } else {
            handoffListener = nil
        }
    }

    deinit {
        outboundMonitor?.close()  // before the socket it monitors
    }

    /// Admits only `key` from now on (with CURVE; connections already made stay).
    func admit(predecessor key: CurveKey?) {
        authenticator?.allowed = Set([key].compactMap { $0 }.map(\.bytes))
    }

    /// Takes chunks of at most `maxFloats` floats from now on: larger ones are drained and
    /// refused as they are received. The socket's own limit (`ZMQ_MAXMSGSIZE`) stays the one set
    /// at `init`: libzmq copies it into each connection when the connection is made, so lowering
    /// it here would not reach a predecessor already connected, and raising it would not either
    /// (a predecessor that connects before its successor has read its GROUP kept the bind-time
    /// limit, and libzmq dropped its first large chunk with the connection: found in the lab).
    func setMaxFloats(_ maxFloats: Int) throws {
        limits = RingChunkLimits(maxFloats: maxFloats)
    }

    /// Connects to the successor at `endpoint`, authenticating it by `serverKey` with CURVE; the
    /// previous successor's link, if any, is closed.
    func connect(successor endpoint: String, serverKey: CurveKey?) throws {
        outbox = nil
        pendingOffer = nil
        outboundMonitor?.close()
        outboundMonitor = nil
        outbound?.close()
        outbound = nil
        successor = nil
        let socket = try ZMQSocket(context, type: .push, linger: 0)
        try socket.setOption(.sendHighWaterMark, 0)
        if let security {
            guard let serverKey else { throw ClusterError("internal: a CURVE ring link needs its successor's public key") }
            try socket.setOption(.curveServerKey, serverKey)
            try socket.setOption(.curvePublicKey, security.keyPair.publicKey)
            try socket.setOption(.curveSecretKey, security.keyPair.secretKey)
        }
        outboundMonitor = try ZMQMonitor(socket, events: .handshakes)
        try socket.connect(endpoint)
        outbound = socket
        successor = (endpoint, serverKey)
    }

    /// Offers the successor a region for the chunks of `group` (a ring of `members`, chunks in
    /// `pieces`, `floatCount` floats) when it is on this host and answers on its hand-over socket;
    /// until it says yes (and for other groups), chunks travel whole on the link. Never throws:
    /// shared memory is a shortcut, and what stops it is noted for the log.
    func offerSharedMemory(group: UInt32, members: Int, pieces: Int, floatCount: Int) {
        outbox = nil
        pendingOffer = nil
        guard sharedMemory, members > 1, let successor else { return }
        let name = Self.handoffName(successor.endpoint)
        do {
            // Nobody answers across hosts or network namespaces: the usual case there, not news.
            guard let connection = try HandoffConnection(connectingTo: name) else { return }
            let offered = try RingOutbox(group: group, layout: RingSlotLayout(members: members, pieces: pieces, floatCount: floatCount))
            try connection.send(offered.offer.encode(), attaching: offered.region.descriptor)
            offered.region.closeDescriptor()
            pendingOffer = (connection, offered)
        } catch {
            notes.append(.warning("could not offer the successor at \(successor.endpoint) shared memory for group \(group) (\(error)): chunks go over the link"))
        }
    }

    /// Queues a chunk for the successor (never blocks): its floats into the shared region when
    /// the successor took one for this group (only the header goes on the link), else as the
    /// message's second frame. `floats` is piece `piece` of chunk `chunk`, starting at float
    /// `start` of the vector.
    func send(_ header: RingChunkHeader, floats: UnsafeBufferPointer<Float>, start: Int) throws {
        serveOfferAnswer()
        if let outbox, outbox.group == header.group, let phase = RingPhase(rawValue: header.phase) {
            guard let link = outbound else { throw ClusterError("internal: a ring chunk sent before the successor was connected") }
            var shared = header
            shared.sharedSequence = outbox.write(phase, chunk: Int(header.chunk), piece: Int(header.piece), start: start, floats: floats)
            guard try link.send(RingChunk.encode(shared), flags: .dontWait) else {
                chunksDropped += 1
                return
            }
            bytesSent += RingChunkHeader.byteCount
            sharedFloatsSent += floats.count
            return
        }
        try send(header, floats: SharedFloats(copying: floats))
    }

    /// Queues a chunk for the successor (never blocks), its floats on the link.
    func send(_ header: RingChunkHeader, floats: SharedFloats) throws {
        guard let outbound else { throw ClusterError("internal: a ring chunk sent before the successor was connected") }
        // Never wait: a PUSH socket with no live connection blocks a send, and a successor that
        // is gone (its run stopped, it died) must not keep this worker from hearing its
        // coordinator. A chunk that cannot be queued is dropped; the coordinator re-forms the
        // group when the step does not complete. Once a message's first frame is queued, libzmq
        // takes the rest.
        guard try outbound.send(RingChunk.encode(header), flags: [.more, .dontWait]) else {
            chunksDropped += 1
            return
        }
        try outbound.unsafeSendNoCopy(floats.bytes, owner: floats, flags: .dontWait)
        bytesSent += RingChunkHeader.byteCount + 4 * floats.values.count
    }

    /// The sockets to poll (beside others, in one `ZMQPoller.poll`): the inbound link, the
    /// authenticator's and the successor link's monitor. Pass what the poll says of them, in
    /// the same order, to `events(ready:)`.
    var pollItems: [ZMQPollItem] {
        var items = [ZMQPollItem(inbound)]
        if let authenticator { items.append(ZMQPollItem(authenticator.socket)) }
        if let outboundMonitor { items.append(ZMQPollItem(outboundMonitor.socket)) }
        // Shared memory's sockets last: `events` serves them whenever it runs.
        if let handoffListener { items.append(ZMQPollItem(fileDescriptor: handoffListener.descriptor)) }
        if let pendingOffer { items.append(ZMQPollItem(fileDescriptor: pendingOffer.connection.descriptor)) }
        items += offerConnections.map { ZMQPollItem(fileDescriptor: $0.descriptor) }
        return items
    }

    /// The predecessor's region for `group`, if it offered one and it was mapped.
    func inbox(group: UInt32) -> RingInbox? { inboxes.last { $0.group == group } }

    /// The region this member offered its successor for `group`, taken or still unanswered: where
    /// the group's `RingReducer` keeps its buffers, so that chunks sent through it are not copied
    /// (a region the successor refuses is memory like any other).
    func offeredRegion(group: UInt32) -> RingOutbox? {
        if let outbox, outbox.group == group { return outbox }
        if let pendingOffer, pendingOffer.outbox.group == group { return pendingOffer.outbox }
        return nil
    }

    /// Counts floats read from a predecessor's region.
    func noteSharedReceive(floats: Int) { sharedFloatsReceived += floats }

    /// Serves shared memory's sockets once, without waiting: offers from a predecessor, the
    /// successor's answer (`events` and `receive` do this too).
    func serveSharedMemory() {
        serveOffers()
        serveOfferAnswer()
    }

    /// Notes not yet reported, for the log (`events` reports them too).
    func takeNotes() -> [RingLinkNote] {
        defer { notes = [] }
        return notes
    }

    /// Accepts waiting hand-over connections and takes the offers on them: each is mapped and
    /// answered, the connection closed. Never blocks.
    private func serveOffers() {
        guard let handoffListener else { return }
        do {
            while let connection = try handoffListener.accept() {
                offerConnections.append(connection)
                if offerConnections.count > Self.maxPendingOffers { offerConnections.removeFirst() }
            }
        } catch {
            notes.append(.warning("the shared-memory hand-over socket failed (\(error))"))
        }
        offerConnections.removeAll { connection in
            let received: HandoffConnection.Received
            do {
                received = try connection.receive(capacity: RingOffer.packetBytes + 1)
            } catch {
                return true
            }
            switch received {
            case .nothing: return false
            case .closed: return true
            case .packet(let bytes, let descriptor, let truncated):
                let answer = take(offer: bytes, descriptor: descriptor, truncated: truncated, from: connection)
                try? connection.send(answer.encode())
                if case .refused(let reason) = answer {
                    notes.append(.warning("refused a predecessor's shared memory: \(reason); its chunks come over the link"))
                }
                return true
            }
        }
    }

    /// Checks and maps one offer; what to answer. The descriptor is closed on every refusal
    /// (or given to the inbox, which keeps or closes it).
    private func take(offer bytes: [UInt8], descriptor: Int32?, truncated: Bool, from connection: HandoffConnection) -> RingOfferAnswer {
        guard let descriptor else { return .refused("the offer carries no region") }
        var owned = true
        defer { if owned { close(descriptor) } }
        guard !truncated else { return .refused("the offer is longer than \(RingOffer.packetBytes) bytes") }
        do {
            let uid = try connection.peerUserID()
            guard uid == getuid() else { return .refused("the offer comes from user \(uid), this worker runs as \(getuid())") }
            let offer = try RingOffer.decode(bytes, limits: limits)
            guard let parameterCount else { return .refused("this worker does not know the run's parameters yet") }
            owned = false
            let inbox = try RingInbox(offer: offer, descriptor: descriptor, floatCount: parameterCount)
            // A predecessor offers once per group, so a second offer for a group number is a new
            // group's: group numbers start again at 1 with every coordinator process (a restarted
            // coordinator's group 1 is not its predecessor's). The newest offer wins, and the
            // regions kept are the last taken, whatever their numbers.
            let kept = inboxes.count
            inboxes.removeAll { $0.group == offer.group }
            let replaced = inboxes.count < kept
            inboxes = Array((inboxes + [inbox]).suffix(Self.keptInboxes))
            notes.append(.info("the predecessor's chunks of group \(offer.group) come through shared memory\(replaced ? " (in place of an earlier group of that number: a new coordinator)" : "")"))
            return .accepted
        } catch {
            return .refused("\(error)")
        }
    }

    /// Reads the successor's answer to the pending offer, if it came: a yes makes the region the
    /// one chunks of its group are written into.
    private func serveOfferAnswer() {
        guard let pending = pendingOffer else { return }
        let received: HandoffConnection.Received
        do {
            received = try pending.connection.receive(capacity: 5 + RingOfferAnswer.maxReasonBytes + 1)
        } catch {
            pendingOffer = nil
            notes.append(.warning("no answer to the shared-memory offer of group \(pending.outbox.group) (\(error)): chunks go over the link"))
            return
        }
        switch received {
        case .nothing:
            return
        case .closed:
            pendingOffer = nil
            notes.append(.warning("the successor closed the shared-memory offer of group \(pending.outbox.group) unanswered: chunks go over the link"))
        case .packet(let bytes, let descriptor, _):
            if let descriptor { close(descriptor) }
            pendingOffer = nil
            switch Result(catching: { () throws(WireError) in try RingOfferAnswer.decode(bytes) }) {
            case .success(.accepted):
                outbox = pending.outbox
                notes.append(.info("chunks of group \(pending.outbox.group) go to the successor through shared memory"))
            case .success(.refused(let reason)):
                notes.append(.warning("the successor refused shared memory for group \(pending.outbox.group): \(reason); chunks go over the link"))
            case .failure(let error):
                notes.append(.warning("the successor's answer to the shared-memory offer is malformed (\(error)): chunks go over the link"))
            }
        }
    }

    /// Serves the authenticator, reads every chunk waiting and every handshake outcome, for the
    /// items of `pollItems` that `ready` (in that order) says are ready.
    func events(ready: ArraySlice<ZMQPollEvents>) throws -> RingLinkEvents {
        let ready = Array(ready)
        var events = RingLinkEvents()
        // Offers before chunks: a predecessor sends chunks through a region only after this
        // worker answered its offer, so an offer waiting here is never behind them.
        serveSharedMemory()

        var index = 1
        if authenticator != nil {
            if index < ready.count, ready[index].contains(.pollIn) { _ = try authenticator?.serve() }
            index += 1
        }
        if outboundMonitor != nil, index < ready.count, ready[index].contains(.pollIn) {
            events.successorHandshakes = try successorHandshakes(timeout: .zero)
        }
        if ready.first?.contains(.pollIn) == true {
            let maxBytes = 4 * limits.maxFloats + RingChunkHeader.byteCount
            while true {
                let frames: [ZMQFrame]?
                do {
                    frames = try inbound.receiveMultipart(maxFrames: 2, maxBytes: maxBytes, timeout: .zero)
                } catch let error as ZMQReceiveLimitExceeded {
                    events.chunks.append(.failure(WireError(.tooLarge, "a ring message beyond \(maxBytes) bytes: \(error)")))
                    continue
                }
                guard let frames else { break }
                bytesReceived += frames.reduce(0) { $0 + $1.count }
                do {
                    events.chunks.append(.success(try RingChunk.decode(frames.map { ReceivedFrame(frame: $0) }, limits: limits)))
                } catch {
                    events.chunks.append(.failure(error))
                }
            }
        }
        events.notes = takeNotes()
        return events
    }

    /// The next chunk from the predecessor, waiting at most `timeout`; nil if none came. A chunk
    /// that breaks the ring's protocol throws its `WireError` (it is dropped).
    func receive(timeout: Duration) throws -> RingChunk? {
        serveSharedMemory()
        if let authenticator {
            let ready = try ZMQPoller.poll([ZMQPollItem(inbound), ZMQPollItem(authenticator.socket)], timeout: timeout)
            if ready[1].contains(.pollIn) { _ = try authenticator.serve() }
            guard ready[0].contains(.pollIn) else { return nil }
        }
        guard let frames = try inbound.receiveMultipart(maxFrames: 2, maxBytes: 4 * limits.maxFloats + RingChunkHeader.byteCount,
                                                        timeout: authenticator == nil ? timeout : .zero) else { return nil }
        return try RingChunk.decode(frames.map { ReceivedFrame(frame: $0) }, limits: limits)
    }

    /// How the handshakes with the successor ended since the last call, waiting at most `timeout`
    /// for one.
    func successorHandshakes(timeout: Duration) throws -> [HandshakeOutcome] {
        guard let monitor = outboundMonitor else { return [] }
        var outcomes: [HandshakeOutcome] = []
        var wait = timeout
        while let event = try monitor.next(timeout: wait) {
            wait = .zero
            switch event.event {
            case .handshakeSucceeded: outcomes.append(.succeeded)
            case .handshakeFailedAuth: outcomes.append(.keyRefused(status: event.value))
            case .handshakeFailedProtocol: outcomes.append(.failed("protocol error 0x\(String(event.value, radix: 16))"))
            case .handshakeFailedNoDetail: outcomes.append(.failed(String(cString: strerror(Int32(bitPattern: event.value)))))
            default: break
            }
        }
        return outcomes
    }
}
