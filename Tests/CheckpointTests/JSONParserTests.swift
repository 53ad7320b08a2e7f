import Testing

@testable import Checkpoint

@Suite struct JSONParserTests {
    private func parse(_ text: String) throws -> JSONValue {
        try JSONParser.parse(Array(text.utf8))
    }

    @Test func objectMembersKeepDocumentOrderAndDuplicates() throws {
        #expect(
            try parse(#" {"b": 1, "a": [true, false, null], "b": "x"} "#)
                == .object([
                    .init(key: "b", value: .number("1")),
                    .init(key: "a", value: .array([.bool(true), .bool(false), .null])),
                    .init(key: "b", value: .string("x")),
                ]))
    }

    @Test func stringEscapesAreDecoded() throws {
        #expect(
            try parse(#""\"\\\/\b\f\n\r\t\u00e9\u20AC\ud83d\ude00ü""#) == .string("\"\\/\u{8}\u{C}\n\r\té€😀ü")
        )
    }

    @Test func numbersKeepTheirTextAndConvertOnlyWhenIntegral() throws {
        #expect(try parse("-0").integer == .value(0))
        #expect(try parse("123").integer == .value(123))
        #expect(try parse("-7").integer == .value(-7))
        #expect(try parse("9223372036854775807").integer == .value(Int.max))
        #expect(try parse("9223372036854775808").integer == .overflow)
        #expect(try parse("1.0").integer == .notAnInteger)
        #expect(try parse("1e3").integer == .notAnInteger)
        #expect(try parse("-1.5E-3") == .number("-1.5E-3"))
        #expect(try parse("\"1\"").integer == .notAnInteger)
    }

    @Test(arguments: [
        "", " ", "{", "}", "[1,]", "{\"a\":1,}", "{\"a\" 1}", "{a:1}", "01", "-", "1.", ".5", "1e", "+1",
        "tru", "nul", "\"abc", "\"\\x\"", "\"\\u12\"", "\"\\ud800\"", "\"\\udc00\"", "\"\\ud800\\u0041\"",
        "\"a\u{9}b\"", "[1] [2]", "NaN", "Infinity",
    ])
    func invalidTextIsRejected(_ text: String) {
        #expect(throws: JSONSyntaxError.self) { try parse(text) }
    }

    @Test func nestingDeeperThanTheLimitIsRejected() throws {
        let limit = JSONParser.maxDepth
        let deepest = String(repeating: "[", count: limit) + String(repeating: "]", count: limit)
        #expect(throws: Never.self) { try parse(deepest) }
        let tooDeep = String(repeating: "[", count: limit + 1) + String(repeating: "]", count: limit + 1)
        #expect(throws: JSONSyntaxError.self) { try parse(tooDeep) }
        #expect(throws: JSONSyntaxError.self) { try parse(String(repeating: "[", count: 1_000_000)) }
    }

    @Test(arguments: [
        "", "plain", "quote \" backslash \\ slash /", "tab\tnewline\ncr\r", "\u{0}\u{1F}", "ü€😀",
    ])
    func quotedStringsParseBackToThemselves(_ text: String) throws {
        #expect(try parse(jsonQuoted(text)) == .string(text))
    }
}
