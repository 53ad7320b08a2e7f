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

    /// ipc://, inproc://, and tcp:// on a loopback address.
    static func isLocal(_ endpoint: String) -> Bool {
        if endpoint.hasPrefix("ipc://") || endpoint.hasPrefix("inproc://") { return true }
        guard endpoint.hasPrefix("tcp://"), let colon = endpoint.lastIndex(of: ":") else { return false }
        let host = endpoint[endpoint.index(endpoint.startIndex, offsetBy: 6)..<colon]
        return host == "localhost" || host.hasPrefix("127.") || host == "[::1]" || host == "::1"
    }
}

/// Key files: a key pair is `NAME.key` (the secret key in Z85, mode 0600) and `NAME.pub` (the
/// public key in Z85); an allowlist is a file of public keys, one per line, or a directory of
/// `.pub` files.
public enum KeyFiles {
    /// Creates `NAME.key` and `NAME.pub` in `directory`; refuses to overwrite either.
    public static func writeKeyPair(name: String, directory: String) throws -> (publicPath: String, secretPath: String) {
        let pair = try CurveKeyPair.generate()
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let secretPath = "\(directory)/\(name).key"
        let publicPath = "\(directory)/\(name).pub"
        for path in [secretPath, publicPath] where FileManager.default.fileExists(atPath: path) {
            throw ClusterError("\(path) exists; remove it first or choose another name (keys are never overwritten)")
        }
        let fd = open(secretPath, O_WRONLY | O_CREAT | O_EXCL, 0o600)
        guard fd >= 0 else { throw ClusterError("cannot create \(secretPath): \(String(cString: strerror(errno)))") }
        let text = pair.secretKey.z85 + "\n"
        let written = text.withCString { write(fd, $0, strlen($0)) }
        let synced = fsync(fd)
        close(fd)
        guard written == text.utf8.count, synced == 0 else { throw ClusterError("cannot write \(secretPath)") }
        try (pair.publicKey.z85 + "\n").write(toFile: publicPath, atomically: true, encoding: .utf8)
        return (publicPath, secretPath)
    }

    /// Reads a secret key file, refusing one that others can read.
    public static func readSecretKey(_ path: String) throws -> CurveKeyPair {
        var info = stat()
        guard stat(path, &info) == 0 else { throw ClusterError("cannot read the secret key \(path): \(String(cString: strerror(errno)))") }
        let mode = info.st_mode & 0o777
        guard mode & 0o077 == 0 else {
            throw ClusterError("the secret key \(path) can be read by others (mode \(String(mode, radix: 8))); run chmod 600 \(path)")
        }
        let text = try String(contentsOfFile: path, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        do {
            return try CurveKeyPair(secretKey: CurveKey(z85: text))
        } catch {
            throw ClusterError("\(path) does not hold a Z85 CURVE secret key (40 characters, as `vae keygen` writes): \(error)")
        }
    }

    /// A public key given as 40 Z85 characters or as a file holding them.
    public static func readPublicKey(_ pathOrKey: String) throws -> CurveKey {
        let text: String
        if FileManager.default.fileExists(atPath: pathOrKey) {
            text = try String(contentsOfFile: pathOrKey, encoding: .utf8)
        } else {
            text = pathOrKey
        }
        do {
            return try CurveKey(z85: text.trimmingCharacters(in: .whitespacesAndNewlines))
        } catch {
            throw ClusterError("\(pathOrKey) is neither a file nor a Z85 CURVE public key (40 characters, as in a .pub file from `vae keygen`)")
        }
    }

    /// The public keys of a file (one per line; blank lines and `#` comments ignored) or of the
    /// `.pub` files of a directory.
    public static func readAuthorizedKeys(_ path: String) throws -> Set<CurveKey> {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw ClusterError("the authorized keys \(path) do not exist")
        }
        var lines: [(String, String)] = []
        if isDirectory.boolValue {
            for file in try FileManager.default.contentsOfDirectory(atPath: path).sorted() where file.hasSuffix(".pub") {
                lines.append(("\(path)/\(file)", try String(contentsOfFile: "\(path)/\(file)", encoding: .utf8)))
            }
        } else {
            for (i, line) in try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
                lines.append(("\(path):\(i + 1)", String(line)))
            }
        }
        var keys: Set<CurveKey> = []
        for (place, line) in lines {
            let text = line.trimmingCharacters(in: .whitespacesAndNewlines)
            if text.isEmpty || text.hasPrefix("#") { continue }
            do {
                keys.insert(try CurveKey(z85: text))
            } catch {
                throw ClusterError("\(place): not a Z85 CURVE public key: \(text.prefix(60))")
            }
        }
        guard !keys.isEmpty else { throw ClusterError("\(path) holds no public key: no worker could join") }
        return keys
    }
}

/// A ZAP handler (ZeroMQ RFC 27) on `inproc://zeromq.zap.01`: admits CURVE clients whose public
/// key is on the allowlist and refuses every other. Without one, libzmq admits any client that
/// knows the server's public key.
final class ZAPAuthenticator {
    static let domain = "vae-cluster"
    let socket: ZMQSocket
    let allowed: Set<[UInt8]>
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
