import ArgumentParser
import Testing
import VAECommandLine
import VAECore
import VAETraining

/// `--likelihood mixed` and `--column-types` on the command line: what reaches the
/// configuration, and the combinations refused with what to change.
@Suite struct MixedTableOptionsTests {
    @Test func mixedWithColumnTypesReachesTheConfiguration() throws {
        let c = try TrainingOptions.parse([
            "--data", "table.csv", "--likelihood", "mixed", "--column-types", "age=gaussian, zip=categorical",
        ]).configuration()
        #expect(c.likelihood == .mixed(columns: []))
        #expect(c.preprocessing == .table)
        #expect(c.data.columnTypes == "age=gaussian, zip=categorical")
    }

    @Test(arguments: [
        (["--likelihood", "bernoulli", "--column-types", "age=gaussian"], "needs --likelihood mixed"),
        (["--likelihood", "mixed", "--column-types", "age=normal"], "type gaussian, bernoulli or categorical"),
        (["--likelihood", "mixed", "--column-types", "age"], "name=type pairs"),
        (["--likelihood", "mixed", "--csv-label-column", "label"], "drop --csv-label-column"),
        (["--likelihood", "mixed", "--preprocess", "standardise"], "drop --preprocess"),
        (["--likelihood", "mixed", "--quantize-levels", "4"], "needs --likelihood categorical"),
    ])
    func impossibleCombinationsAreRefusedWithWhatToChange(arguments: [String], reason: String) {
        do {
            // parse validates the options, as the executables do.
            _ = try TrainingOptions.parse(["--data", "table.csv"] + arguments)
            Issue.record("\(arguments) was accepted")
        } catch {
            let message = TrainingOptions.message(for: error)
            #expect(message.contains(reason), "\(message)")
        }
    }
}
