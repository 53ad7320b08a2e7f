import ArgumentParser
import Foundation
import VAECore

/// How much of a gradient's backward pass communication could hide behind: for each dense layer,
/// when the backward pass completes its parameter gradient (`VAEEngine.layerGradientCompleted`)
/// and how long the pass goes on after that. A data plane that starts reducing a layer's gradient
/// as soon as it is complete (DDP's buckets) can save at most the time from the first layer's
/// completion to the end of the pass; the first layer completed is the decoder's output layer.
struct OverlapWindow: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "overlap-window",
        abstract: "When the backward pass completes each layer's gradient, and how long it runs on after that.")
    @OptionGroup var model: ModelOptions
    @Option(help: "Samples in the part (a worker's share of the step).") var batch = 128
    @Option var steps = 300
    @Option var warmup = 30
    @Option(help: "Fraction of ones in the synthetic binary inputs.") var density: Float = 0.13

    func validate() throws {
        guard batch >= 1, steps >= 1, warmup >= 0 else { throw ValidationError("--batch and --steps must be positive, --warmup not negative") }
    }

    func run() {
        BLAS.setThreads(model.threads)
        let layout = ParameterLayout(model.architecture)
        let params = layout.initialParameters(seed: 1)
        var grad = [Float](repeating: 0, count: layout.count)
        let engine = VAEEngine(layout: layout, objective: Objective(), capacity: batch)
        let x = syntheticInputs(batch, model.input, density: density)
        let ids = (0..<UInt32(batch)).map { $0 }

        var marks: [(layer: DenseLayer, time: Double)] = []
        marks.reserveCapacity(16)
        engine.layerGradientCompleted = { layer in marks.append((layer, now())) }

        var order: [DenseLayer] = []
        var completedAt: [Double] = []
        var beforeEnd: [Double] = []
        var gradientSeconds = 0.0
        for step in 0..<(warmup + steps) {
            marks.removeAll(keepingCapacity: true)
            grad.withUnsafeMutableBufferPointer { $0.update(repeating: 0) }
            let start = now()
            _ = params.withUnsafeBufferPointer { p in x.withUnsafeBufferPointer { xp in ids.withUnsafeBufferPointer { ip in
                grad.withUnsafeMutableBufferPointer {
                    engine.accumulateGradient(parameters: p, inputs: xp, sampleIDs: ip, seed: 1, step: step, gradient: $0)
                } } } }
            let end = now()
            if order.isEmpty {
                order = marks.map(\.layer)
                completedAt = [Double](repeating: 0, count: order.count)
                beforeEnd = completedAt
            }
            precondition(marks.map(\.layer) == order, "the backward pass completed its layers in another order")
            guard step >= warmup else { continue }
            gradientSeconds += end - start
            for (i, mark) in marks.enumerated() {
                completedAt[i] += mark.time - start
                beforeEnd[i] += end - mark.time
            }
        }

        var complete = 0
        let layers: [[String: Any]] = order.indices.map { i in
            let layer = order[i]
            let parameters = layer.inputs * layer.outputs + layer.outputs
            complete += parameters
            return [
                "name": name(of: layer, in: layout), "parameters": parameters,
                "parameters_complete": complete, "fraction_complete": Double(complete) / Double(layout.count),
                "completed_at_ms": completedAt[i] / Double(steps) * 1e3,
                "before_end_ms": beforeEnd[i] / Double(steps) * 1e3,
            ]
        }
        let gradientMs = gradientSeconds / Double(steps) * 1e3
        let window = (beforeEnd.first ?? 0) / Double(steps) * 1e3
        printJSON([
            "benchmark": "overlap-window", "threads": model.threads, "batch": batch, "steps": steps,
            "hidden": model.hidden, "latent": model.latent, "input": model.input,
            "parameter_count": layout.count, "gradient_ms": gradientMs, "layers": layers,
            "largest_window_ms": window, "largest_window_fraction_of_gradient": window / gradientMs,
        ])
    }

    /// The layer's name in the layout: its weight tensor's, without `.weight` (the encoder's
    /// heads are one layer with the mean's and the log-variance's weights side by side).
    private func name(of layer: DenseLayer, in layout: ParameterLayout) -> String {
        if layer == layout.encoderHeads { return "encoder.heads (mu, logvar)" }
        guard let tensor = layout.tensors.first(where: { $0.offset == layer.weight }) else { return "layer at \(layer.weight)" }
        return tensor.name.hasSuffix(".weight") ? String(tensor.name.dropLast(".weight".count)) : tensor.name
    }
}
