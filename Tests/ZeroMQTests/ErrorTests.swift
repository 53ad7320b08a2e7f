import Testing
import ZeroMQ

@Suite struct ErrorTests {
    @Test func descriptionNamesTheCallTheErrnoAndStrerrorText() {
        let error = ZMQError(call: "zmq_bind", code: .addressInUse)
        #expect(error.message == "Address already in use")
        #expect(error.description.contains("zmq_bind: Address already in use"))
        #expect(error.description.contains("EADDRINUSE, errno \(ZMQError.Code.addressInUse.rawValue)"))
    }

    @Test func libzmqSpecificErrorsUseLibzmqText() {
        let error = ZMQError(call: "zmq_msg_recv", code: .terminated)
        #expect(error.message == "Context was terminated")
        #expect(error.description.contains("ETERM"))
    }

    @Test func malformedEndpointThrowsInvalidArgumentFromTheCall() throws {
        let context = try ZMQContext()
        let socket = try ZMQSocket(context, type: .dealer)
        let error = #expect(throws: ZMQError.self) { try socket.connect("tcp://no-port-here") }
        #expect(error?.call == "zmq_connect")
        #expect(error?.code == .invalidArgument)
        #expect(error?.description.contains("Invalid argument") == true)
    }

    @Test func unknownTransportThrowsProtocolNotSupported() throws {
        let context = try ZMQContext()
        let socket = try ZMQSocket(context, type: .dealer)
        let error = #expect(throws: ZMQError.self) { try socket.bind("carrier-pigeon://loft") }
        #expect(error?.code == .protocolNotSupported)
        #expect(error?.description.contains("use tcp:// or ipc://") == true)
    }
}
