import Foundation
import Testing

@testable import Checkpoint

/// Runs `python3` with `arguments`; returns its exit status and combined output, or nil if it
/// cannot be started.
private func runPython(_ arguments: [String]) -> (status: Int32, output: String)? {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["python3"] + arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    do { try process.run() } catch { return nil }
    let output = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: output, as: UTF8.self))
}

/// Whether Python's `safetensors` package (with NumPy) is installed; the interop test runs only then.
private let pythonHasSafetensors: Bool =
    runPython(["-c", "import safetensors.numpy, numpy"])?.status == 0

/// Checks that Python's reference implementation reads our files and we read its files.
@Suite(.enabled(if: pythonHasSafetensors, "needs python3 with the safetensors and numpy packages"))
struct InteropTests {
    private static let script = #"""
        import sys
        import numpy as np
        from safetensors import safe_open
        from safetensors.numpy import load_file, save_file

        ours, theirs = sys.argv[1], sys.argv[2]
        t = load_file(ours)
        assert t["w"].dtype == np.float32 and t["w"].shape == (2, 3), t["w"]
        assert t["w"].tobytes() == np.array([[1, -0.0, np.inf], [-np.inf, 0.5, 3]], dtype=np.float32).tobytes()
        assert t["steps"].dtype == np.int64 and t["steps"].tolist() == [7, -8]
        assert t["scalar"].shape == () and t["scalar"] == np.float32(2.5)
        with safe_open(ours, framework="np") as f:
            meta = f.metadata()
        assert meta["name"] == "vae ü", meta
        assert len(meta["checksum.crc32"]) == 8
        save_file(
            {"x": np.arange(6, dtype=np.float32).reshape(2, 3), "n": np.array([1, 2], dtype=np.int64)},
            theirs, metadata={"k": "v"})
        print("ok")
        """#

    @Test func pythonReadsOurFileAndWeReadPythons() throws {
        try withTemporaryDirectory { directory in
            let ours = directory.appendingPathComponent("ours.safetensors")
            let theirs = directory.appendingPathComponent("theirs.safetensors")
            var writer = SafeTensorsWriter(metadata: ["name": "vae ü"])
            try writer.add(name: "w", shape: [2, 3], floats: [1, -0.0, .infinity, -.infinity, 0.5, 3])
            try writer.add(
                name: "steps", shape: [2],
                bytes: [Int64(7), -8].flatMap { value in
                    withUnsafeBytes(of: value.littleEndian) { Array($0) }
                }, dtype: .i64)
            try writer.add(name: "scalar", shape: [], floats: [2.5])
            try writer.write(to: ours)

            let result = try #require(runPython(["-c", Self.script, ours.path, theirs.path]))
            #expect(result.status == 0, "\(result.output)")

            let file = try SafeTensorsFile.read(contentsOf: theirs)
            #expect(file.metadata == ["k": "v"])
            #expect(try file.floats("x") == [0, 1, 2, 3, 4, 5])
            #expect(file.entry("x")?.shape == [2, 3])
            #expect(file.entry("n")?.dtype == .i64)
        }
    }
}
