import FERCore
import FERNet
import Foundation
import Yams

// Loading: the file merged over the defaults, unknown keys refused, `--set` overrides applied, then
// every section validated.

public func loadRunConfig(path: String, overrides: [String] = []) throws -> RunConfig {
    guard FileManager.default.fileExists(atPath: path) else { throw FERError(file: path, "no such file") }
    // A config is a page of YAML: a FIFO, a device or a huge file is a mistake, not a config.
    let bytes = try readRegularFile(path, limit: 1 << 20)
    guard let text = String(bytes: bytes, encoding: .utf8) else { throw FERError(file: path, "not UTF-8 text") }
    return try parseRunConfig(text, source: path, overrides: overrides)
}

public func parseRunConfig(_ text: String, source: String = "config", overrides: [String] = []) throws -> RunConfig {
    let defaults = try Yams.load(yaml: RunConfig().yaml()) as? [String: Any] ?? [:]
    let user: Any?
    do { user = try ConfigYAML.load(text) } catch let e as FERError { throw FERError(file: source, e.message) } catch {
        throw FERError(file: source, "not valid YAML: \(error)")
    }
    var merged = defaults
    if let user {
        guard let map = user as? [String: Any] else { throw FERError(file: source, "top level must be a mapping of sections") }
        merged = ConfigYAML.merge(map, over: defaults)
        do { try ConfigYAML.checkKeys(merged, ConfigYAML.schema(defaults), path: "") } catch let e as FERError { throw FERError(file: source, e.message) }
    }
    for o in overrides {
        merged = try ConfigYAML.applyOverride(o, to: merged)
        do { try ConfigYAML.checkKeys(merged, ConfigYAML.schema(defaults), path: "") } catch let e as FERError { throw FERError("--set \(o): \(e.message)") }
    }
    let config: RunConfig
    do { config = try YAMLDecoder().decode(RunConfig.self, from: try Yams.dump(object: merged)) } catch DecodingError.dataCorrupted(let c) where c.underlyingError is FERError {
        throw FERError(file: source, "\(c.underlyingError!)")   // a check inside decoding (a ConfigChoice) names its key itself
    } catch {
        throw FERError(file: source, "bad value: \(describeDecoding(error))")
    }
    do { try config.validate() } catch let e as FERError { throw FERError(file: source, e.message) }
    return config
}


/// The strict YAML under a config: plain keys, bounded size, every key checked against the defaults' tree.
package enum ConfigYAML {
    /// Yams traps on a mapping or list used as a key (`{}: 1`), so the node tree is checked before it loads.
    /// `path`: where the text goes in the config ("" for a whole file).
    static func load(_ text: String, at path: String = "") throws -> Any? {
        guard let node = try compose(text, at: path) else { return nil }
        return Constructor.default.any(from: node)
    }

    /// The most values a config may hold. Aliases let a few hundred bytes stand for billions of values
    /// (nested lists of `*a`), which loading would expand until memory runs out.
    static let maxConfigValues = 100_000

    /// The YAML's node tree, checked: plain keys only, and at most `maxConfigValues` values with aliases expanded.
    package static func compose(_ text: String, at path: String = "") throws -> Node? {
        guard let node = try Yams.compose(yaml: text) else { return nil }
        var budget = maxConfigValues
        try checkTree(node, path: path, budget: &budget)
        return node
    }

    static func checkTree(_ node: Node, path: String, budget: inout Int) throws {
        budget -= 1
        guard budget >= 0 else { throw FERError("\(path.isEmpty ? "the config" : path): over \(maxConfigValues) values (nested aliases?)") }
        if let map = node.mapping {
            for (k, v) in map {
                guard let key = k.scalar?.string else {
                    throw FERError("\(path.isEmpty ? "top level" : path): a key must be a plain name, not a mapping or list")
                }
                try checkTree(v, path: keyPath(path, key), budget: &budget)
            }
        } else if let list = node.sequence {
            for (i, v) in list.enumerated() { try checkTree(v, path: keyPath(path, String(i)), budget: &budget) }
        }
    }

    static func keyPath(_ path: String, _ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    /// Merges `user` over `base` (unknown keys are kept, for `checkKeys` to refuse). Lists (model.layers) are
    /// replaced whole.
    package static func merge(_ user: [String: Any], over base: [String: Any]) -> [String: Any] {
        var out = base
        for (k, v) in user {
            if let um = v as? [String: Any], let bm = base[k] as? [String: Any] { out[k] = merge(um, over: bm) } else { out[k] = v }
        }
        return out
    }

    /// The keys a config may hold: the defaults' tree, with one entry standing for every model.layers entry
    /// (the defaults have no layers, and a layer's fields are optional so its defaults would not show them).
    static func schema(_ defaults: [String: Any]) -> [String: Any] {
        var out = defaults, model = defaults["model"] as? [String: Any] ?? [:]
        model["layers"] = [Dictionary(uniqueKeysWithValues: LayerSpec.keys.map { ($0, 0) })]
        out["model"] = model
        return out
    }

    /// Refuses a key the schema lacks at any depth (a typo must not be ignored: decoding would skip it),
    /// naming its path and the closest valid key. Values of the wrong type are left to decoding.
    static func checkKeys(_ node: Any, _ schema: Any, path: String) throws {
        if let map = node as? [String: Any], let known = schema as? [String: Any] {
            for (k, v) in map.sorted(by: { $0.key < $1.key }) {
                guard let s = known[k] else { throw FERError("unknown key '\(keyPath(path, k))' \(didYouMean(k, known.keys.sorted()))") }
                try checkKeys(v, s, path: keyPath(path, k))
            }
        } else if let list = node as? [Any], let entry = (schema as? [Any])?.first {
            for (i, v) in list.enumerated() { try checkKeys(v, entry, path: keyPath(path, String(i))) }
        }
    }

    /// `a.b.c=value`: value parsed as YAML (numbers, booleans, lists). Indices address list items, and a layer
    /// may also be named as the network names it (`model.layers.dropout2.rate=0`), which keeps meaning the same
    /// layer when another is inserted before it. A key the config lacks is added, for `checkKeys` to refuse or
    /// accept (a layer's optional fields).
    static func applyOverride(_ o: String, to config: [String: Any]) throws -> [String: Any] {
        guard let eq = o.firstIndex(of: "=") else { throw FERError("--set \(o): expected key=value") }
        let keys = o[..<eq].split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        guard !keys.contains("") else { throw FERError("--set \(o): expected a key path like train.epochs before '='") }
        let text = String(o[o.index(after: eq)...])
        let value: Any
        do { value = try load(text, at: keys.joined(separator: ".")) ?? text } catch let e as FERError {
            throw FERError("--set \(o): \(e.message)")
        } catch { value = text }   // not YAML on its own (`a: b: c`): taken as a string, which decoding then judges
        func set(_ node: Any, _ i: Int) throws -> Any {
            let k = keys[i], p = keys[...i].joined(separator: ".")
            if var list = node as? [Any] {
                let types = list.map { layer in (layer as? [String: Any])?["type"] as? String ?? "" }
                let names = keys[..<i] == ["model", "layers"] ? LayerSpec.names(ofTypes: types) : []
                guard let n = Int(k) ?? names.firstIndex(of: k), list.indices.contains(n) else {
                    throw FERError("--set \(o): '\(p)' is not an index of the list"
                                   + (names.isEmpty ? "" : " or a layer's name (\(names.joined(separator: ", ")))"))
                }
                list[n] = i == keys.count - 1 ? value : try set(list[n], i + 1)
                return list
            }
            guard var map = node as? [String: Any] else { throw FERError("--set \(o): '\(keys[..<i].joined(separator: "."))' is not a section") }
            map[k] = i == keys.count - 1 ? value : try set(map[k] ?? [String: Any](), i + 1)
            return map
        }
        return try set(config, 0) as! [String: Any]   // a mapping in, a mapping out
    }
}
