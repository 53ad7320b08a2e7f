@testable import ClusterRuntime
import Testing

/// `CoordinatorOptions.localBind(for:)`: which binds get a Unix socket for their local workers.
@Suite struct CoordinatorOptionsTests {
    @Test(arguments: ["tcp://127.0.0.1:*", "tcp://127.0.0.1:5555", "tcp://localhost:*", "tcp://[::1]:5555"])
    func aLoopbackBindGetsAFreshAbstractUnixSocketForItsLocalWorkers(_ bind: String) throws {
        let first = try #require(CoordinatorOptions.localBind(for: bind))
        #expect(first.hasPrefix("ipc://@vae-cluster/coordinator/"))
        #expect(BindPolicy.isLocal(first))
        // Two coordinators of one process (tests) or of one pid namespace never share a name.
        #expect(CoordinatorOptions.localBind(for: bind) != first)
    }

    @Test(arguments: ["tcp://0.0.0.0:5555", "tcp://10.0.0.5:*", "tcp://*:5555", "ipc:///tmp/vae.sock", "ipc://@vae"])
    func anyOtherBindGetsNone(_ bind: String) {
        // Workers that join over ipc offer 127.0.0.1 to their ring neighbours, which a worker on
        // another host could not reach; an ipc bind is a Unix socket already.
        #expect(CoordinatorOptions.localBind(for: bind) == nil)
    }
}
