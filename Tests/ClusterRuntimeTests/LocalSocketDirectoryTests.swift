@testable import ClusterRuntime
import Foundation
import Testing

/// `LocalSocketDirectory`: which binds give local workers a Unix socket, and the private directory
/// that socket lives in.
@Suite struct LocalSocketDirectoryTests {
    @Test(arguments: ["tcp://127.0.0.1:*", "tcp://127.0.0.1:5555", "tcp://localhost:*", "tcp://[::1]:5555"])
    func aLoopbackBindGivesLocalWorkersAUnixSocket(_ bind: String) {
        #expect(LocalSocketDirectory.isWanted(for: bind))
    }

    @Test(arguments: ["tcp://0.0.0.0:5555", "tcp://10.0.0.5:*", "tcp://*:5555", "ipc:///tmp/vae.sock"])
    func anyOtherBindDoesNot(_ bind: String) {
        // Workers that join over ipc offer 127.0.0.1 to their ring neighbours, which a worker on
        // another host could not reach; an ipc bind is a Unix socket already.
        #expect(!LocalSocketDirectory.isWanted(for: bind))
    }

    @Test func theDirectoryIsOnlyTheUsersAndGoesWithItsSocket() throws {
        var local: LocalSocketDirectory? = try LocalSocketDirectory()
        let endpoint = try #require(local?.endpoint)
        #expect(endpoint.hasPrefix("ipc:///") && endpoint.hasSuffix("/coordinator"))
        #expect(endpoint.utf8.count - "ipc://".count <= 107, "longer than a Unix socket path may be")
        let socket = String(endpoint.dropFirst("ipc://".count))
        let directory = (socket as NSString).deletingLastPathComponent
        let attributes = try FileManager.default.attributesOfItem(atPath: directory)
        #expect((attributes[.posixPermissions] as? Int) == 0o700)
        // Another's directory is another directory.
        #expect(try LocalSocketDirectory().endpoint != endpoint)
        #expect(FileManager.default.createFile(atPath: socket, contents: Data()))  // as a bound socket leaves it
        local = nil
        #expect(!FileManager.default.fileExists(atPath: directory))
    }

    @Test func aLocalEndpointThatCannotBeBoundSaysHowToDoWithoutIt() throws {
        let options = CoordinatorOptions(bind: "tcp://127.0.0.1:*", workers: 1,
                                         localBind: "ipc:///nonexistent-vae-cluster-directory/coordinator")
        do {
            _ = try ZMQCoordinatorTransport(options, parameterCount: 10)
            Issue.record("a socket in a directory that does not exist was bound")
        } catch {
            let message = "\(error)"
            #expect(message.contains("ipc:///nonexistent-vae-cluster-directory/coordinator") && message.contains("--no-local-ipc"), "\(message)")
        }
    }

    @Test func aTemporaryDirectoryTooLongForASocketPathFallsBackToTmp() throws {
        let local = try LocalSocketDirectory(in: "/tmp/" + String(repeating: "d", count: 120))
        #expect(local.endpoint.hasPrefix("ipc:///tmp/vae-cluster-"))
    }
}
