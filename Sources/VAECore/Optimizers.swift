#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Which update rule, with its hyper-parameters.
public enum OptimizerKind: Sendable, Codable, Equatable {
    /// torch.optim.Adam: m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2;
    /// theta -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps).
    case adam(beta1: Double = 0.9, beta2: Double = 0.999, epsilon: Double = 1e-8)
    /// torch.optim.SGD with momentum mu (dampening 0, not Nesterov):
    /// b = mu b + g (b = g at the first step); theta -= lr * b.
    case sgd(momentum: Double = 0)

    public var name: String {
        switch self {
        case .adam: "adam"
        case .sgd: "sgd"
        }
    }
}

/// An optimizer's state over the flat parameter layout: its moments mirror the parameters, so
/// the whole state is a few vectors and a step count (and checkpoints as such).
public struct OptimizerState: Sendable, Codable, Equatable {
    public var kind: OptimizerKind
    /// Updates applied so far.
    public var step: Int
    /// Adam's first moment, or SGD's momentum buffer.
    public var first: [Float]
    /// Adam's second moment (empty for SGD).
    public var second: [Float]

    public init(kind: OptimizerKind, parameterCount: Int) {
        self.kind = kind
        self.step = 0
        switch kind {
        case .adam:
            first = [Float](repeating: 0, count: parameterCount)
            second = [Float](repeating: 0, count: parameterCount)
        case .sgd(let momentum):
            first = momentum != 0 ? [Float](repeating: 0, count: parameterCount) : []
            second = []
        }
    }

    /// Applies one update with learning rate `lr` to `parameters` from the gradient
    /// `gradientScale * gradient` (pass 1 / batch size to turn a summed gradient into the mean
    /// without a separate pass over it).
    public mutating func apply(
        learningRate lr: Double, gradient: UnsafeBufferPointer<Float>, gradientScale: Float = 1,
        to parameters: UnsafeMutableBufferPointer<Float>
    ) {
        apply(learningRate: lr, gradient: gradient, gradientScale: gradientScale, to: parameters, range: 0..<parameters.count)
    }

    /// As `apply(learningRate:gradient:gradientScale:to:)`, for the elements in `range` only (of
    /// full-length buffers): the update is elementwise, so each shard of a ring's members updated
    /// this way gives, element for element and bit for bit, what one full update gives. The step
    /// count advances once per call.
    public mutating func apply(
        learningRate lr: Double, gradient: UnsafeBufferPointer<Float>, gradientScale: Float = 1,
        to fullParameters: UnsafeMutableBufferPointer<Float>, range: Range<Int>
    ) {
        precondition(gradient.count == fullParameters.count, "gradient and parameters differ in length")
        let update = beginUpdate(learningRate: lr)
        apply(update, gradient: UnsafeRawBufferPointer(UnsafeBufferPointer(rebasing: gradient[range])),
              gradientScale: gradientScale, to: fullParameters, range: range)
    }

    /// One update whose gradient is applied piece by piece (`apply(_:gradient:gradientScale:to:range:)`):
    /// the step it is and its learning rate.
    public struct Update: Sendable {
        fileprivate let step: Int
        fileprivate let learningRate: Double
    }

    /// Starts an update with learning rate `lr`: the step count advances (once, however many
    /// pieces the update is then applied in).
    public mutating func beginUpdate(learningRate lr: Double) -> Update {
        step += 1
        return Update(step: step, learningRate: lr)
    }

    /// Applies `update` to the elements in `range` of the full-length `fullParameters` from their
    /// gradient `gradientScale * gradient`, `range.count` floats of any alignment (a piece of a
    /// gradient as it arrived, read in place). Applying an update to every element this way, in
    /// pieces, gives bit for bit what `apply(learningRate:gradient:gradientScale:to:)` gives.
    public mutating func apply(
        _ update: Update, gradient: UnsafeRawBufferPointer, gradientScale: Float = 1,
        to fullParameters: UnsafeMutableBufferPointer<Float>, range: Range<Int>
    ) {
        precondition(range.lowerBound >= 0 && range.upperBound <= fullParameters.count, "range \(range) outside the parameters")
        precondition(gradient.count == range.count * MemoryLayout<Float>.size, "a gradient of \(gradient.count) bytes for \(range.count) elements")
        BLAS.flushDenormalsToZero()
        let lr = update.learningRate
        let n = range.count
        let t = update.step
        let offset = range.lowerBound
        let parameters = UnsafeMutableBufferPointer(rebasing: fullParameters[range])
        func gradientAt(_ i: Int) -> Float { gradient.loadUnaligned(fromByteOffset: 4 * i, as: Float.self) }
        switch kind {
        case .adam(let beta1, let beta2, let epsilon):
            // Same arithmetic as torch.optim.Adam's single-tensor path: scalars in Double
            // (Python floats there), elementwise work in Float.
            let stepSize = Float(lr / (1 - pow(beta1, Double(t))))
            // torch divides sqrt(v) by sqrt(1 - beta2^t); multiplying by its reciprocal saves a
            // division per element and differs by at most an ulp.
            let inverseBC2Sqrt = Float(1 / (1 - pow(beta2, Double(t))).squareRoot())
            let w1 = Float(1 - beta1)
            let b2 = Float(beta2)
            let w2 = Float(1 - beta2)
            let eps = Float(epsilon)
            guard n > 0 else { return }
            first.withUnsafeMutableBufferPointer { fullFirst in
                second.withUnsafeMutableBufferPointer { fullSecond in
                    let m = UnsafeMutableBufferPointer(rebasing: fullFirst[offset..<(offset + n)])
                    let v = UnsafeMutableBufferPointer(rebasing: fullSecond[offset..<(offset + n)])
                    let pm = UnsafeMutableRawPointer(m.baseAddress!)
                    let pv = UnsafeMutableRawPointer(v.baseAddress!)
                    let pp = UnsafeMutableRawPointer(parameters.baseAddress!)
                    let pg = gradient.baseAddress!
                    typealias V = VectorMath.V
                    var i = 0
                    while i + 8 <= n {
                        let o = 4 * i
                        let g = pg.loadUnaligned(fromByteOffset: o, as: V.self) * gradientScale
                        var mv = pm.loadUnaligned(fromByteOffset: o, as: V.self)
                        var vv = pv.loadUnaligned(fromByteOffset: o, as: V.self)
                        mv = mv + w1 * (g - mv)
                        vv = vv * b2 + w2 * (g * g)
                        let denom = VectorMath.squareRoot(vv) * inverseBC2Sqrt + eps
                        let p = pp.loadUnaligned(fromByteOffset: o, as: V.self) - (stepSize * mv) / denom
                        pm.storeBytes(of: mv, toByteOffset: o, as: V.self)
                        pv.storeBytes(of: vv, toByteOffset: o, as: V.self)
                        pp.storeBytes(of: p, toByteOffset: o, as: V.self)
                        i += 8
                    }
                    while i < n {
                        let g = gradientAt(i) * gradientScale
                        m[i] = m[i] + w1 * (g - m[i])
                        v[i] = v[i] * b2 + w2 * (g * g)
                        let denom = v[i].squareRoot() * inverseBC2Sqrt + eps
                        parameters[i] -= (stepSize * m[i]) / denom
                        i += 1
                    }
                }
            }
        case .sgd(let momentumValue):
            let rate = Float(lr)
            let momentum = Float(momentumValue)
            if momentum == 0 {
                for i in 0..<n { parameters[i] -= rate * (gradientAt(i) * gradientScale) }
            } else {
                first.withUnsafeMutableBufferPointer { fullFirst in
                    let b = UnsafeMutableBufferPointer(rebasing: fullFirst[range])
                    for i in 0..<n {
                        let g = gradientAt(i) * gradientScale
                        b[i] = t == 1 ? g : momentum * b[i] + g
                        parameters[i] -= rate * b[i]
                    }
                }
            }
        }
    }
}

/// Gradient-norm clipping as torch.nn.utils.clip_grad_norm_: when the global L2 norm exceeds
/// `maxNorm`, scale the gradient by maxNorm / (norm + 1e-6). Returns the norm before clipping.
@discardableResult
public func clipGradientNorm(_ gradient: UnsafeMutableBufferPointer<Float>, maxNorm: Float) -> Float {
    let norm = Float(l2Norm(UnsafeBufferPointer(gradient)))
    if maxNorm > 0, norm > maxNorm {
        let scale = maxNorm / (norm + 1e-6)
        forEachVector(gradient.baseAddress!, count: gradient.count) { $0 * scale }
    }
    return norm
}

/// The L2 norm, accumulated in Double.
public func l2Norm(_ x: UnsafeBufferPointer<Float>) -> Double {
    squaredL2Norm(x).squareRoot()
}

/// The L2 norm of a vector cut into `chunks` (contiguous, in order): the chunks' squared norms
/// (`squaredL2Norm`) added in chunk order. Members of a ring that each hold one chunk get the
/// same bits by exchanging their chunks' squared norms; with one chunk, `l2Norm`.
public func l2Norm(_ x: UnsafeBufferPointer<Float>, chunks: [Range<Int>]) -> Double {
    chunks.reduce(0.0) { $0 + squaredL2Norm(UnsafeBufferPointer(rebasing: x[$1])) }.squareRoot()
}

/// The squared L2 norm, accumulated in Double over blocks of 8.
public func squaredL2Norm(_ x: UnsafeBufferPointer<Float>) -> Double {
    squaredL2Norm(x, scaledBy: 1)
}

/// The squared L2 norm of `factor * x` without writing it: the same bits as `scale(_:by:)`
/// followed by `squaredL2Norm` (each element is scaled in Float, then squared and summed alike).
public func squaredL2Norm(_ x: UnsafeBufferPointer<Float>, scaledBy factor: Float) -> Double {
    guard x.count > 0 else { return 0 }
    var total: Double = 0
    var i = 0
    let raw = UnsafeRawPointer(x.baseAddress!)
    while i + 8 <= x.count {
        let v = raw.loadUnaligned(fromByteOffset: 4 * i, as: VectorMath.V.self) * factor
        total += Double((v * v).sum())
        i += 8
    }
    while i < x.count {
        let value = x[i] * factor
        total += Double(value * value)
        i += 1
    }
    return total
}

/// Multiplies every element by `factor` (e.g. 1 / batch size).
public func scale(_ x: UnsafeMutableBufferPointer<Float>, by factor: Float) {
    guard let base = x.baseAddress else { return }
    forEachVector(base, count: x.count) { $0 * factor }
}

/// A learning rate as a function of the optimizer step t (counting from 0).
public enum LearningRateSchedule: Sendable, Codable, Equatable {
    case constant
    /// lr * gamma^(floor(t / every)), as torch.optim.lr_scheduler.StepLR stepped per step.
    case stepDecay(every: Int, gamma: Double)
    /// lr * gamma^t, as ExponentialLR stepped per step.
    case exponential(gamma: Double)
    /// Burda et al. (2015), section 5: stage i = 0...7 lasts 3^i epochs at lr * 10^(-i/7) (3,280
    /// epochs in all); after stage 7 its rate stays. The epoch of step t is t / stepsPerEpoch, so
    /// the rate depends on the steps of an epoch (ceil(training samples / batch)); 0 means not
    /// yet known (`TrainingConfiguration.resolvingSchedule` sets it once the data is loaded).
    case burda(stepsPerEpoch: Int)

    /// The learning rate of step `step` (counting from 0) for base rate `base`.
    public func learningRate(base: Double, step: Int) -> Double {
        switch self {
        case .constant:
            return base
        case .stepDecay(let every, let gamma):
            return base * pow(gamma, Double(step / max(every, 1)))
        case .exponential(let gamma):
            return base * pow(gamma, Double(step))
        case .burda(let stepsPerEpoch):
            precondition(stepsPerEpoch > 0, "the burda schedule needs the steps per epoch (resolvingSchedule) before a rate is asked")
            return base * pow(10, -Double(Self.burdaStage(ofEpoch: step / stepsPerEpoch)) / 7)
        }
    }

    /// The last stage of Burda et al.'s schedule (its rate holds after it).
    public static let burdaLastStage = 7

    /// The epoch (counting from 0) at which stage `stage` of Burda et al.'s schedule starts:
    /// 3^0 + ... + 3^(stage - 1) = (3^stage - 1) / 2, so 0, 1, 4, 13, 40, 121, 364, 1093, and 3280
    /// for the end of stage 7.
    public static func burdaStageStart(_ stage: Int) -> Int {
        precondition(stage >= 0, "a stage counts from 0")
        var power = 1
        for _ in 0..<stage { power *= 3 }
        return (power - 1) / 2
    }

    /// The stage (0...7) of Burda et al.'s schedule that epoch `epoch` (counting from 0) is in;
    /// epochs after the schedule's 3,280 stay in stage 7.
    public static func burdaStage(ofEpoch epoch: Int) -> Int {
        var stage = 0
        while stage < burdaLastStage && epoch >= burdaStageStart(stage + 1) { stage += 1 }
        return stage
    }
}
