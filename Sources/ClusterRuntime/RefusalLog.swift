/// How a stream of refused messages is logged: each of the first `inFull` with its own line, then
/// one line per `every`, so that a peer that floods bad messages cannot fill a worker's log.
struct RefusalLog: Sendable {
    /// "a ring message from the predecessor", "ring messages from the predecessor".
    let one: String
    let many: String
    let inFull: Int
    let every: Int
    /// Refusals counted so far.
    private(set) var count = 0

    init(one: String, many: String, inFull: Int = 8, every: Int = 1000) {
        precondition(inFull >= 1 && every >= 1, "log at least one refusal")
        self.one = one
        self.many = many
        self.inFull = inFull
        self.every = every
    }

    /// Counts one refusal: the line to log with its reason, or nil to log nothing.
    mutating func note() -> String? {
        count += 1
        if count < inFull { return "refused \(one)" }
        if count == inFull { return "refused \(one) (\(count) so far; from now on one line per \(every))" }
        return count % every == 0 ? "refused \(count) \(many) so far; the reason is the latest's" : nil
    }
}
