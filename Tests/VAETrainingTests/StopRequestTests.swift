import Foundation
import Testing
import VAETraining

/// The first SIGINT or SIGTERM asks to stop; any later one asks to exit at once, with 128 + it.
@Suite struct StopRequestTests {
    @Test func theFirstSignalStopsAndALaterOneExitsAtOnceWith128PlusIt() {
        let request = StopRequest()
        #expect(request.signal == nil)
        #expect(request.request(signal: SIGTERM) == .stop)
        #expect(request.signal == SIGTERM)
        #expect(request.request(signal: SIGINT) == .exitNow(status: 130))
        #expect(request.request(signal: SIGTERM) == .exitNow(status: 143))
        #expect(request.signal == SIGTERM, "the first signal is the one kept")
    }
}
