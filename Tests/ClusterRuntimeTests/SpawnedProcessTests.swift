import Foundation
import Testing
@testable import ClusterRuntime

@Suite struct SpawnedProcessTests {
    @Test func exitStatusAndTerminatingSignalAreReported() throws {
        let exits = try SpawnedProcess(executable: "/bin/sh", arguments: ["-c", "exit 3"], environment: [:])
        #expect(exits.wait() == 3)
        let killed = try SpawnedProcess(executable: "/bin/sh", arguments: ["-c", "kill -TERM $$"], environment: [:])
        #expect(killed.wait() == 128 + SIGTERM)
    }

    @Test func outputFileThatCannotBeOpenedIsNamedInTheError() {
        let path = NSTemporaryDirectory() + "/absent-\(UUID().uuidString)/worker.out"
        let error = #expect(throws: ClusterError.self) {
            try SpawnedProcess(executable: "/bin/true", arguments: [], environment: [:], stdout: path)
        }
        #expect(error?.description == "cannot start /bin/true with standard output to \(path): No such file or directory")
    }

    @Test func failedSpawnSetUpCallIsAnErrorNamingTheCall() {
        #expect(throws: Never.self) { try SpawnedProcess.check(0, "posix_spawnattr_setflags", executable: "/bin/true") }
        let error = #expect(throws: ClusterError.self) {
            try SpawnedProcess.check(EINVAL, "posix_spawnattr_setflags", executable: "/bin/true")
        }
        #expect(error?.description == "cannot start /bin/true: posix_spawnattr_setflags failed: Invalid argument")
    }
}
