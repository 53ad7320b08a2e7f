import VAETraining

// Not API, and temporary: Tests/ClusterRuntimeTests/StopRequestTests.swift calls `StopRequest()`
// without importing VAETraining. That test now lives in VAETrainingTests, beside the type; delete
// this file together with it. (A function rather than a typealias: `public let stopRequest =
// StopRequest()` in the runtimes must infer the public type, not an internal alias of it.)
func StopRequest() -> VAETraining.StopRequest { VAETraining.StopRequest() }
