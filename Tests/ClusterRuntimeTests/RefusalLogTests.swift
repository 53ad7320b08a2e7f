import Testing
@testable import ClusterRuntime

/// A flood of refused messages gives a few log lines, not one each.
@Suite struct RefusalLogTests {
    @Test func theFirstFewAreLoggedEachThenOneLinePerThousand() {
        var log = RefusalLog(one: "a ring message", many: "ring messages", inFull: 3, every: 1000)
        var lines: [String] = []
        for _ in 0..<5000 { if let line = log.note() { lines.append(line) } }
        #expect(log.count == 5000)
        #expect(lines == [
            "refused a ring message",
            "refused a ring message",
            "refused a ring message (3 so far; from now on one line per 1000)",
            "refused 1000 ring messages so far; the reason is the latest's",
            "refused 2000 ring messages so far; the reason is the latest's",
            "refused 3000 ring messages so far; the reason is the latest's",
            "refused 4000 ring messages so far; the reason is the latest's",
            "refused 5000 ring messages so far; the reason is the latest's",
        ])
    }
}
