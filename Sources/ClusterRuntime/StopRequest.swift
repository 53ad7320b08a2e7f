import VAETraining

/// `VAETraining.StopRequest` (single-process training uses it too), named here as well so that
/// code that imports only this module (the runtimes' `stopRequest`) keeps naming it.
public typealias StopRequest = VAETraining.StopRequest
