import Testing
import WireProtocol
@testable import ClusterRuntime

@Suite struct ClusterConfigurationTests {
    @Test func aConfigurationWithinWhatWorkersAcceptPasses() throws {
        try ClusterConfiguration.checkWelcomeSize(1 << 20, features: 784, limit: Limits(parameterCount: 0).maxConfigurationBytes)
    }

    @Test func aConfigurationLargerThanWorkersAcceptIsRefusedWithTheSizesAndWhatToDo() {
        #expect {
            try ClusterConfiguration.checkWelcomeSize((1 << 20) + 1, features: 600_000, limit: 1 << 20)
        } throws: { error in
            let text = "\(error)"
            return text.contains("1048577 bytes") && text.contains("more than the 1048576") && text.contains("600000 features")
                && text.contains("vae train")
        }
    }
}
