import Foundation
import Testing
import TestSupport

@testable import Checkpoint

/// Checks that Python's reference implementation reads our files and we read its files.
/// Python's safetensors and NumPy are test dependencies (`scripts/install-deps.sh --test`): without
/// them this fails, saying how to install them, rather than skipping.
@Suite struct InteropTests {
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

            try TestPython.require(["numpy", "safetensors.numpy"], directory: directory)
            let output = try TestPython.run(["-c", Self.script, ours.path, theirs.path], directory: directory)
            #expect(output == "ok\n")

            let file = try SafeTensorsFile.read(contentsOf: theirs)
            #expect(file.metadata == ["k": "v"])
            #expect(try file.floats("x") == [0, 1, 2, 3, 4, 5])
            #expect(file.entry("x")?.shape == [2, 3])
            #expect(file.entry("n")?.dtype == .i64)
        }
    }
}
