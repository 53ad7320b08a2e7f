import Foundation

/// What TensorBoard's own reader (`event_accumulator.EventAccumulator`, through
/// `scripts/read-tensorboard.py`) finds in a directory of event files.
public struct TensorBoardRead: Sendable {
    /// Tag to its (step, value) points, in the order the reader keeps them.
    public let scalars: [String: [(step: Int, value: Double)]]
    /// Tag to its (step, width, height) images.
    public let images: [String: [(step: Int, width: Int, height: Int)]]

    /// Runs the reader on `directory`; throws with its message if it fails (no event file, the
    /// `tensorboard` package missing, a file it cannot parse).
    public static func load(_ directory: URL) throws -> TensorBoardRead {
        let script = TestPython.packageRoot.appendingPathComponent("scripts/read-tensorboard.py")
        let output = try TestPython.run([script.path, directory.path], directory: directory.deletingLastPathComponent(),
                                        name: "read-tensorboard")
        guard let json = try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any],
              let scalars = json["scalars"] as? [String: [[Double]]], let images = json["images"] as? [String: [[Double]]] else {
            throw ChildProcessError("read-tensorboard.py printed no scalars and images: \(output.prefix(500))")
        }
        return TensorBoardRead(
            scalars: scalars.mapValues { $0.map { (step: Int($0[0]), value: $0[1]) } },
            images: images.mapValues { $0.map { (step: Int($0[0]), width: Int($0[1]), height: Int($0[2])) } })
    }
}
