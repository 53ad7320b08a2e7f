import Foundation

/// Waiting for a condition a test cannot be told about (a line in a file, a process's state).
public enum Poll {
    /// Checks `condition` every 20 ms until it holds or `timeout` passes; returns whether it held.
    /// A wait for a condition with a generous deadline, never a fixed sleep.
    public static func until(timeout: Duration = .seconds(120), _ condition: () -> Bool) -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if condition() { return true }
            Thread.sleep(forTimeInterval: 0.02)
        }
        return condition()
    }
}
