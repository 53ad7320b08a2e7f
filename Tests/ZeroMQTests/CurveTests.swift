import Testing
import ZeroMQ

@Suite struct CurveTests {
    @Test func keyRoundTripsThroughZ85() throws {
        let pair = try CurveKeyPair.generate()
        #expect(pair.publicKey.z85.utf8.count == 40)
        #expect(try CurveKey(z85: pair.publicKey.z85) == pair.publicKey)
        #expect(try CurveKeyPair(secretKey: pair.secretKey) == pair)
    }

    @Test(arguments: ["too short", String(repeating: "\"", count: 40)])
    func invalidZ85IsRejected(text: String) {
        #expect(throws: ZMQError.self) { try CurveKey(z85: text) }
    }

    @Test func keyOfWrongLengthIsRejected() {
        #expect(throws: ZMQError.self) { try CurveKey(bytes: [1, 2, 3]) }
    }

    @Test func curveEncryptedRoundTripWorksWithTheServersKey() throws {
        let serverKeys = try CurveKeyPair.generate()
        let clientKeys = try CurveKeyPair.generate()
        let context = try ZMQContext()
        let server = try ZMQSocket(context, type: .router)
        try server.setOption(.curveServer, true)
        try server.setOption(.curveSecretKey, serverKeys.secretKey)
        try server.setOption(.zapDomain, "vae")
        let endpoint = try server.bind("tcp://127.0.0.1:*")

        let client = try ZMQSocket(context, type: .dealer)
        try client.setOption(.curveServerKey, serverKeys.publicKey)
        try client.setOption(.curvePublicKey, clientKeys.publicKey)
        try client.setOption(.curveSecretKey, clientKeys.secretKey)
        #expect(try client.option(.curveServerKey) == serverKeys.publicKey)
        try client.connect(endpoint)
        try client.send(Array("secret gradient".utf8))

        let frames = try #require(try server.receiveMultipart(timeout: arrivalTimeout))
        #expect(frames.last?.text == "secret gradient")
    }
}
