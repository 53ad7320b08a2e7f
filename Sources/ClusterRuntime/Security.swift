import Foundation
import ZeroMQ
#if canImport(Glibc)
import Glibc
#endif

/// The coordinator's CURVE identity and the workers it admits.
public struct CurveServerSecurity: Sendable {
    public var keyPair: CurveKeyPair
    public var authorizedKeys: Set<CurveKey>
    public init(keyPair: CurveKeyPair, authorizedKeys: Set<CurveKey>) {
        self.keyPair = keyPair
        self.authorizedKeys = authorizedKeys
    }
}

/// A worker's CURVE identity and the coordinator key it trusts.
public struct CurveClientSecurity: Sendable {
    public var keyPair: CurveKeyPair
    public var serverKey: CurveKey
    public init(keyPair: CurveKeyPair, serverKey: CurveKey) {
        self.keyPair = keyPair
        self.serverKey = serverKey
    }
}

/// Where the coordinator may listen without encryption.
enum BindPolicy {
    /// Refuses an unencrypted bind to anything but loopback or ipc, unless `insecure`.
    static func check(_ endpoint: String, encrypted: Bool, insecure: Bool) throws {
        guard !encrypted, !insecure, !isLocal(endpoint) else { return }
        throw ClusterError("binding \(endpoint) without encryption would let anyone who reaches it join the run, read the model and send it gradients; give --curve-secret-key and --authorized-keys (docs/SECURITY.md), bind to 127.0.0.1, or pass --insecure on a network you trust")
    }

    /// As `check`, for the endpoint a worker binds for its ring neighbours.
    static func checkRing(_ endpoint: String, encrypted: Bool, insecure: Bool) throws {
        guard !encrypted, !insecure, !isLocal(endpoint) else { return }
        throw ClusterError("binding the ring endpoint \(endpoint) without encryption would let anyone who reaches it send this worker gradient and parameter chunks; give vae-worker --curve-secret-key and --coordinator-key (its ring neighbours are then authenticated too, docs/SECURITY.md), or pass --insecure on a network you trust")
    }

    /// ipc://, inproc://, and tcp:// on a loopback address.
    static func isLocal(_ endpoint: String) -> Bool {
        if endpoint.hasPrefix("ipc://") || endpoint.hasPrefix("inproc://") { return true }
        guard endpoint.hasPrefix("tcp://"), let colon = endpoint.lastIndex(of: ":") else { return false }
        let host = endpoint[endpoint.index(endpoint.startIndex, offsetBy: 6)..<colon]
        return host == "localhost" || host.hasPrefix("127.") || host == "[::1]" || host == "::1"
    }
}

/// A ZAP handler (ZeroMQ RFC 27) on `inproc://zeromq.zap.01`: admits CURVE clients whose public
/// key is on the allowlist and refuses every other. Without one, libzmq admits any client that
/// knows the server's public key.
final class ZAPAuthenticator {
    static let domain = "vae-cluster"
    let socket: ZMQSocket
    /// The admitted keys' bytes (replaceable: a ring worker admits its current predecessor).
    var allowed: Set<[UInt8]>
    /// Keys refused for good during the run (a banned worker), in Z85.
    private(set) var refused: Set<String> = []

    init(context: ZMQContext, allowed: Set<CurveKey>) throws {
        self.allowed = Set(allowed.map(\.bytes))
        socket = try ZMQSocket(context, type: .rep, linger: 0)
        try socket.bind("inproc://zeromq.zap.01")
    }

    /// Refuses `key` (Z85) from now on, allowlisted or not.
    func refuse(_ key: String) { refused.insert(key) }

    /// Answers every pending request; returns the Z85 keys (or mechanisms) it refused.
    func serve() throws -> [String] {
        var refused: [String] = []
        while let frames = try socket.receiveMultipart(maxFrames: 16, maxBytes: 4096, timeout: .zero) {
            let version = frames.first?.bytes ?? []
            let requestID = frames.count > 1 ? frames[1].bytes : []
            let mechanism = frames.count > 5 ? String(decoding: frames[5].bytes, as: UTF8.self) : "?"
            var accepted = false
            var user = mechanism
            if mechanism == "CURVE", frames.count > 6, frames[6].count == 32 {
                let key = frames[6].bytes
                user = (try? CurveKey(bytes: key).z85) ?? "?"
                accepted = allowed.contains(key) && !refused.contains(user)
            }
            if !accepted { refused.append(user) }
            try socket.sendMultipart([
                version.isEmpty ? Array("1.0".utf8) : version, requestID,
                Array((accepted ? "200" : "400").utf8), Array((accepted ? "OK" : "not an authorized key").utf8),
                Array((accepted ? user : "").utf8), [],
            ])
        }
        return refused
    }
}
