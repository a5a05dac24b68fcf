import Foundation

/// Class-weighted softmax cross-entropy, Keras' normalisation: sum over the global batch of
/// w_y * loss_i, divided by the global batch size. Each rank computes its slice; the gradient it writes
/// (already divided by the global batch) sums across ranks to the full batch's gradient.
///
/// A mixed batch (mixup, cutmix) has two labels per image and a weight lambda: the loss of image i is
/// lambda * w_a * CE(y_a) + (1 - lambda) * w_b * CE(y_b), each term with the same label smoothing, so the
/// gradient is the same blend of the two targets' gradients (Zhang et al. 2018; timm's mixup, with
/// per-class weights applied to each term as Keras would to each label).
public struct WeightedCrossEntropy {
    public var classWeights: [Float]
    public var labelSmoothing: Float

    public init(classWeights: [Float], labelSmoothing: Float = 0) {
        self.classWeights = classWeights; self.labelSmoothing = labelSmoothing
    }

    public struct Result {
        public var weightedLossSum: Double; public var correct: Int
        public init(weightedLossSum: Double = 0, correct: Int = 0) { self.weightedLossSum = weightedLossSum; self.correct = correct }
    }

    /// The second labels of a mixed batch and the weight of the first: image i's target is
    /// lambda * onehot(labels[i]) + (1 - lambda) * onehot(partnerLabels[i]).
    public struct Mix {
        public var partnerLabels: UnsafePointer<Int32>
        public var lambda: Float
        public init(partnerLabels: UnsafePointer<Int32>, lambda: Float) { self.partnerLabels = partnerLabels; self.lambda = lambda }
    }

    /// Knowledge distillation's second target (FERTrain's Distill.swift): the teachers' probabilities per
    /// image (n x k, already softened by the temperature T), and their share `weight` of the loss. Image i's
    /// loss is (1 - weight) * (its label term above) + weight * T^2 * CE(q_i, softmax(z_i / T)); the soft
    /// term's gradient, T * (softmax(z_i / T) - q_i), keeps its scale whatever T (Hinton et al. 2015). The
    /// soft term carries no class weight: the teachers' probabilities already hold the balance they learned.
    public struct Distillation {
        public var targets: UnsafePointer<Float>
        public var weight: Float, temperature: Float
        public init(targets: UnsafePointer<Float>, weight: Float, temperature: Float) {
            self.targets = targets; self.weight = weight; self.temperature = temperature
        }
    }

    /// What each image of a batch is trained towards, the one value the loss takes: its label, blended
    /// with a partner's in a mixed batch, and, distilling, the teachers' rows as a second target. FERTrain's
    /// TargetProvider builds it from whatever features a run has on; plain training passes the labels alone.
    public struct Targets {
        /// n class ids.
        public var labels: UnsafePointer<Int32>
        public var mix: Mix?
        public var distill: Distillation?
        public init(labels: UnsafePointer<Int32>, mix: Mix? = nil, distill: Distillation? = nil) {
            self.labels = labels; self.mix = mix; self.distill = distill
        }
    }

    /// `logits` and `grad` are n x k row-major. Returns the local weighted loss sum (divide by the global
    /// batch for the mean) and the number of correct argmax predictions; in a mixed batch a prediction is
    /// correct when it names the label with the larger share (y_a on a tie).
    public func evaluate(logits: UnsafePointer<Float>, targets: Targets, n: Int, k: Int, globalBatch: Int,
                         grad: UnsafeMutablePointer<Float>?) -> Result {
        let labels = targets.labels, mix = targets.mix, distill = targets.distill
        var lossSum = 0.0, correct = 0
        let scale = 1 / Float(globalBatch)
        let eps = labelSmoothing, off = eps / Float(k), on = 1 - eps + eps / Float(k)
        func target(_ j: Int, _ y: Int) -> Double { eps > 0 ? Double(j == y ? on : off) : (j == y ? 1.0 : 0.0) }
        let lambda = mix?.lambda ?? 1
        // The labels' share: exactly 1 without distillation, so nothing changes then.
        let hard = 1 - (distill?.weight ?? 0)
        for i in 0..<n {
            let z = logits + i * k
            let y = Int(labels[i]), yb = mix.map { Int($0.partnerLabels[i]) } ?? y
            var maxZ = z[0], arg = 0
            for j in 1..<k where z[j] > maxZ { maxZ = z[j]; arg = j }
            if arg == (lambda >= 0.5 ? y : yb) { correct += 1 }
            var sum = 0.0
            for j in 0..<k { sum += Foundation.exp(Double(z[j] - maxZ)) }
            let logSum = Foundation.log(sum)
            var loss = 0.0, lossB = 0.0
            // Unmixed, the B term is skipped, so an unmixed step computes exactly what it did before mixing existed.
            let coefA = hard * (mix == nil ? classWeights[y] * scale : classWeights[y] * scale * lambda)
            let coefB = hard * classWeights[yb] * scale * (1 - lambda)
            for j in 0..<k {
                let logp = Double(z[j] - maxZ) - logSum
                loss -= target(j, y) * logp
                if mix != nil { lossB -= target(j, yb) * logp }
                if let grad {
                    let p = Float(Foundation.exp(logp))
                    var g = coefA * (p - Float(target(j, y)))
                    if mix != nil { g += coefB * (p - Float(target(j, yb))) }
                    grad[i * k + j] = g
                }
            }
            lossSum += Double(hard) * (mix == nil ? Double(classWeights[y]) * loss
                : Double(lambda) * Double(classWeights[y]) * loss + Double(1 - lambda) * Double(classWeights[yb]) * lossB)
            if let distill { lossSum += distill.addSoftTerm(z: z, i: i, k: k, scale: scale, grad: grad) }
        }
        return Result(weightedLossSum: lossSum, correct: correct)
    }
}

extension WeightedCrossEntropy.Distillation {
    /// Image i's soft term: adds weight * T * (softmax(z / T) - q_i) / globalBatch to its gradient row and
    /// returns weight * T^2 * CE(q_i, softmax(z / T)).
    func addSoftTerm(z: UnsafePointer<Float>, i: Int, k: Int, scale: Float, grad: UnsafeMutablePointer<Float>?) -> Double {
        let t = Double(temperature), q = targets + i * k
        var maxZ = Double(z[0]) / t
        for j in 1..<k { maxZ = max(maxZ, Double(z[j]) / t) }
        var sum = 0.0
        for j in 0..<k { sum += Foundation.exp(Double(z[j]) / t - maxZ) }
        let logSum = Foundation.log(sum)
        var ce = 0.0
        for j in 0..<k {
            let logs = Double(z[j]) / t - maxZ - logSum
            ce -= Double(q[j]) * logs
            grad?[i * k + j] += weight * temperature * scale * (Float(Foundation.exp(logs)) - q[j])
        }
        return Double(weight) * t * t * ce
    }
}

/// Softmax of one row, in place.
public func softmax(_ z: UnsafeMutablePointer<Float>, _ k: Int) {
    var m = z[0]
    for j in 1..<k { m = max(m, z[j]) }
    var s: Float = 0
    for j in 0..<k { z[j] = Foundation.exp(z[j] - m); s += z[j] }
    for j in 0..<k { z[j] /= s }
}
