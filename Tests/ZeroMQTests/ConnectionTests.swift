#if canImport(Glibc)
import Glibc
#endif
import Testing
@testable import ZeroMQ

/// The file-descriptor level of connections: the address this host has on a connection.
@Suite struct ConnectionTests {
    /// A TCP connection over loopback between a listening socket and a client: (listener, client, server end).
    func loopbackConnection() throws -> (Int32, Int32, Int32) {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, length) == 0 && getsockname(listener, $0, &length) == 0 }
        }
        try #require(bound && listen(listener, 1) == 0)
        let client = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(client, $0, length) == 0 }
        }
        try #require(connected)
        let server = accept(listener, nil, nil)
        try #require(server >= 0)
        return (listener, client, server)
    }

    @Test func bothEndsOfALoopbackConnectionAreAtTheLoopbackAddress() throws {
        let (listener, client, server) = try loopbackConnection()
        defer { close(listener); close(client); close(server) }
        #expect(ZMQConnection.localAddress(client) == "127.0.0.1")
        #expect(ZMQConnection.localAddress(server) == "127.0.0.1")
    }

    @Test func aDescriptorThatIsNoSocketHasNoAddress() {
        var pipeEnds: [Int32] = [0, 0]
        #expect(pipe(&pipeEnds) == 0)
        defer { close(pipeEnds[0]); close(pipeEnds[1]) }
        #expect(ZMQConnection.localAddress(pipeEnds[0]) == nil)
        #expect(ZMQConnection.localAddress(-1) == nil)
    }
}
