import Foundation

/// Class-weighted softmax cross-entropy, Keras' normalisation: sum over the global batch of
/// w_y * loss_i, divided by the global batch size. Each rank computes its slice; the gradient it writes
/// (already divided by the global batch) sums across ranks to the full batch's gradient.
public struct WeightedCrossEntropy {
    public var classWeights: [Float]
    public var labelSmoothing: Float

    public init(classWeights: [Float], labelSmoothing: Float = 0) {
        self.classWeights = classWeights; self.labelSmoothing = labelSmoothing
    }

    public struct Result { public var weightedLossSum: Double; public var correct: Int }

    /// `logits` and `grad` are n x k row-major; `labels` n class ids. Returns the local weighted loss sum
    /// (divide by the global batch for the mean) and the number of correct argmax predictions.
    public func evaluate(logits: UnsafePointer<Float>, labels: UnsafePointer<Int32>, n: Int, k: Int,
                         globalBatch: Int, grad: UnsafeMutablePointer<Float>?) -> Result {
        var lossSum = 0.0, correct = 0
        let scale = 1 / Float(globalBatch)
        let eps = labelSmoothing, off = eps / Float(k), on = 1 - eps + eps / Float(k)
        for i in 0..<n {
            let z = logits + i * k
            let y = Int(labels[i])
            var maxZ = z[0], arg = 0
            for j in 1..<k where z[j] > maxZ { maxZ = z[j]; arg = j }
            if arg == y { correct += 1 }
            var sum = 0.0
            for j in 0..<k { sum += Foundation.exp(Double(z[j] - maxZ)) }
            let logSum = Foundation.log(sum)
            var loss = 0.0
            for j in 0..<k {
                let logp = Double(z[j] - maxZ) - logSum
                let target = eps > 0 ? Double(j == y ? on : off) : (j == y ? 1.0 : 0.0)
                loss -= target * logp
                if let grad {
                    grad[i * k + j] = classWeights[y] * scale * (Float(Foundation.exp(logp)) - Float(target))
                }
            }
            lossSum += Double(classWeights[y]) * loss
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
