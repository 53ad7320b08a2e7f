import CZeroMQ

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A 32-byte CURVE key (public or secret), convertible to and from its 40-character Z85 text.
///
/// Deliberately not `CustomStringConvertible`, so a secret key is not printed by accident.
public struct CurveKey: Sendable, Hashable {
    /// The key's 32 bytes.
    public let bytes: [UInt8]

    /// A key from its 32 bytes; `EINVAL` for any other length.
    public init(bytes: [UInt8]) throws(ZMQError) {
        guard bytes.count == 32 else { throw ZMQError(call: "CurveKey(bytes:)", code: .invalidArgument) }
        self.bytes = bytes
    }

    /// A key from its 40-character Z85 text (`zmq_z85_decode`); `EINVAL` if it is not one.
    public init(z85: String) throws(ZMQError) {
        guard z85.utf8.count == 40 else { throw ZMQError(call: "zmq_z85_decode", code: .invalidArgument) }
        var bytes = [UInt8](repeating: 0, count: 32)
        _ = try zmqCall("zmq_z85_decode") {
            bytes.withUnsafeMutableBufferPointer { zmq_z85_decode($0.baseAddress, z85) }
        }
        self.bytes = bytes
    }

    /// The key as 40 characters of Z85 (`zmq_z85_encode`), the form ZeroMQ tools print and read.
    public var z85: String {
        var text = [CChar](repeating: 0, count: 41)
        // Cannot fail: 32 is a multiple of 4.
        _ = try? zmqCall("zmq_z85_encode") {
            text.withUnsafeMutableBufferPointer { zmq_z85_encode($0.baseAddress, bytes, bytes.count) }
        }
        return String(decoding: text.prefix(40).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// A CURVE public/secret key pair for `ZMQ_CURVE_*` options.
public struct CurveKeyPair: Sendable, Hashable {
    /// The public key: a server gives it to its clients (``ZMQSocketOption/curveServerKey``).
    public let publicKey: CurveKey
    /// The secret key: stays with its owner (``ZMQSocketOption/curveSecretKey``).
    public let secretKey: CurveKey

    /// A pair of the given keys; they are not checked against each other.
    public init(publicKey: CurveKey, secretKey: CurveKey) {
        self.publicKey = publicKey
        self.secretKey = secretKey
    }

    /// The pair for `secretKey`, its public key derived (`zmq_curve_public`).
    public init(secretKey: CurveKey) throws(ZMQError) {
        var publicText = [CChar](repeating: 0, count: 41)
        let secretText = secretKey.z85
        try zmqCall("zmq_curve_public") {
            publicText.withUnsafeMutableBufferPointer { zmq_curve_public($0.baseAddress, secretText) }
        }
        self.init(publicKey: try CurveKey(z85: Self.string(publicText)), secretKey: secretKey)
    }

    /// A new random key pair (`zmq_curve_keypair`); `ENOTSUP` if libzmq lacks CURVE.
    public static func generate() throws(ZMQError) -> CurveKeyPair {
        var publicText = [CChar](repeating: 0, count: 41)
        var secretText = [CChar](repeating: 0, count: 41)
        try zmqCall("zmq_curve_keypair") {
            publicText.withUnsafeMutableBufferPointer { publicBuffer in
                secretText.withUnsafeMutableBufferPointer { secretBuffer in
                    zmq_curve_keypair(publicBuffer.baseAddress, secretBuffer.baseAddress)
                }
            }
        }
        return CurveKeyPair(
            publicKey: try CurveKey(z85: string(publicText)), secretKey: try CurveKey(z85: string(secretText)))
    }

    private static func string(_ text: [CChar]) -> String {
        String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
