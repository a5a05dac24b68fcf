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

    public struct Result { public var weightedLossSum: Double; public var correct: Int }

    /// The second labels of a mixed batch and the weight of the first: image i's target is
    /// lambda * onehot(labels[i]) + (1 - lambda) * onehot(partnerLabels[i]).
    public struct Mix {
        public var partnerLabels: UnsafePointer<Int32>
        public var lambda: Float
        public init(partnerLabels: UnsafePointer<Int32>, lambda: Float) { self.partnerLabels = partnerLabels; self.lambda = lambda }
    }

    /// `logits` and `grad` are n x k row-major; `labels` n class ids. Returns the local weighted loss sum
    /// (divide by the global batch for the mean) and the number of correct argmax predictions; in a
    /// mixed batch a prediction is correct when it names the label with the larger share (y_a on a tie).
    public func evaluate(logits: UnsafePointer<Float>, labels: UnsafePointer<Int32>, mix: Mix? = nil, n: Int, k: Int,
                         globalBatch: Int, grad: UnsafeMutablePointer<Float>?) -> Result {
        var lossSum = 0.0, correct = 0
        let scale = 1 / Float(globalBatch)
        let eps = labelSmoothing, off = eps / Float(k), on = 1 - eps + eps / Float(k)
        func target(_ j: Int, _ y: Int) -> Double { eps > 0 ? Double(j == y ? on : off) : (j == y ? 1.0 : 0.0) }
        let lambda = mix?.lambda ?? 1
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
            let coefA = mix == nil ? classWeights[y] * scale : classWeights[y] * scale * lambda
            let coefB = classWeights[yb] * scale * (1 - lambda)
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
            lossSum += mix == nil ? Double(classWeights[y]) * loss
                : Double(lambda) * Double(classWeights[y]) * loss + Double(1 - lambda) * Double(classWeights[yb]) * lossB
        }
        return Result(weightedLossSum: lossSum, correct: correct)
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
