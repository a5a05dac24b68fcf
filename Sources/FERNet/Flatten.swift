import CDNNL

/// Flatten: the dense layer after it reads the 4-D activations directly, so this only renames them.
final class Flatten: Layer {
    let name: String
    let dataDesc: MD
    var dstDesc: MD { dataDesc }
    let needsDstForBackward = false
    private(set) var dst: Memory!, diffDst: Memory!
    init(name: String, src: MD) { self.name = name; dataDesc = src }
    func bind(src: Memory, diffSrc: Memory?, arenas: Arenas, training: Bool) {
        dst = src
        if training { diffDst = diffSrc ?? Memory(dataDesc) }
    }
    func forward(training: Bool, key: StepKey) {}
    func backward(key: StepKey) {}
}
