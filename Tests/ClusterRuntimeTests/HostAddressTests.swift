import Testing
@testable import ClusterRuntime

@Suite struct HostAddressTests {
    @Test(arguments: ["10.0.0.7", "127.0.0.1", "::1", "fe80::1"])
    func aNumericAddressIsKeptAsGiven(_ address: String) throws {
        #expect(try HostAddress.numeric(address) == address)
    }

    @Test func aHostNameResolvesToANumericAddress() throws {
        // Every Linux host resolves localhost (/etc/hosts), to 127.0.0.1 or ::1.
        let address = try HostAddress.numeric("localhost")
        #expect(["127.0.0.1", "::1"].contains(address))
        #expect(HostAddress.isLoopback(address))
    }

    @Test func aNameThatDoesNotResolveIsAnErrorThatNamesItAndSaysWhatToGive() {
        // .invalid never resolves (RFC 6761).
        do {
            _ = try HostAddress.numeric("no-such-host.invalid")
            Issue.record("resolved a name under .invalid")
        } catch {
            #expect(error.description.contains("--advertise no-such-host.invalid does not resolve"))
            #expect(error.description.contains("numeric address"))
        }
    }

    @Test(arguments: [("127.0.0.1", true), ("127.0.1.1", true), ("::1", true), ("10.0.0.7", false), ("128.0.0.1", false), ("fe80::1", false)])
    func loopbackIsRecognised(_ address: String, _ loopback: Bool) {
        #expect(HostAddress.isLoopback(address) == loopback)
    }
}
