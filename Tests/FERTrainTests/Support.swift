// Config helpers for FERTrain's tests; the datasets and folders come from FERTestSupport's fixtures.
import FERTestSupport
@testable import FERTrain

/// configs/tiny.yaml with overrides.
func tinyConfig(_ overrides: [String] = []) throws -> RunConfig {
    try loadRunConfig(path: repoRoot + "/configs/tiny.yaml", overrides: overrides)
}

func silent(_: String) {}
