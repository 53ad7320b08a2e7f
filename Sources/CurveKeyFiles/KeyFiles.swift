import Foundation
import ZeroMQ
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Why a key file could not be written or read: a message naming the file and what to do.
public struct KeyFileError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
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
            throw KeyFileError("\(path) exists; remove it first or choose another name (keys are never overwritten)")
        }
        let fd = open(secretPath, O_WRONLY | O_CREAT | O_EXCL, 0o600)
        guard fd >= 0 else { throw KeyFileError("cannot create \(secretPath): \(String(cString: strerror(errno)))") }
        let text = pair.secretKey.z85 + "\n"
        let written = text.withCString { write(fd, $0, strlen($0)) }
        let synced = fsync(fd)
        close(fd)
        guard written == text.utf8.count, synced == 0 else { throw KeyFileError("cannot write \(secretPath)") }
        try (pair.publicKey.z85 + "\n").write(toFile: publicPath, atomically: true, encoding: .utf8)
        return (publicPath, secretPath)
    }

    /// Reads a secret key file, refusing one that others can read.
    public static func readSecretKey(_ path: String) throws -> CurveKeyPair {
        var info = stat()
        guard stat(path, &info) == 0 else { throw KeyFileError("cannot read the secret key \(path): \(String(cString: strerror(errno)))") }
        let mode = info.st_mode & 0o777
        guard mode & 0o077 == 0 else {
            throw KeyFileError("the secret key \(path) can be read by others (mode \(String(mode, radix: 8))); run chmod 600 \(path)")
        }
        let text = try String(contentsOfFile: path, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        do {
            return try CurveKeyPair(secretKey: CurveKey(z85: text))
        } catch {
            throw KeyFileError("\(path) does not hold a Z85 CURVE secret key (40 characters, as `vae keygen` writes): \(error)")
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
            throw KeyFileError("\(pathOrKey) is neither a file nor a Z85 CURVE public key (40 characters, as in a .pub file from `vae keygen`)")
        }
    }

    /// The public keys of a file (one per line; blank lines and `#` comments ignored) or of the
    /// `.pub` files of a directory.
    public static func readAuthorizedKeys(_ path: String) throws -> Set<CurveKey> {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw KeyFileError("the authorized keys \(path) do not exist")
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
                throw KeyFileError("\(place): not a Z85 CURVE public key: \(text.prefix(60))")
            }
        }
        guard !keys.isEmpty else { throw KeyFileError("\(path) holds no public key: no worker could join") }
        return keys
    }
}
