/// The version of fer. Ranks compare it at start-up (a job must run one binary everywhere).
public let ferVersion = "0.1.0"
