/// A config value that is one of a few names (optimizer.name, a layer's type, train.class_weights, ...).
/// Decoding refuses any other name with its key path, a suggestion and the valid names, so a typo fails
/// when the config loads with the same message the config checks give; it prints as its name.
public protocol ConfigChoice: RawRepresentable, CaseIterable, Codable, Sendable, CustomStringConvertible
where RawValue == String {
    /// What the value names, for messages: "optimizer", "layer type".
    static var what: String { get }
}

extension ConfigChoice {
    public var description: String { rawValue }
    public static var names: [String] { allCases.map(\.rawValue) }

    public init(from decoder: Decoder) throws {
        let name = try decoder.singleValueContainer().decode(String.self)
        let key = decoder.codingPath.map { $0.intValue.map(String.init) ?? $0.stringValue }.joined(separator: ".")
        try requireChoice(key, name, Self.names, what: Self.what)
        self.init(rawValue: name)!
    }
}
