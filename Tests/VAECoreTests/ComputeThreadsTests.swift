#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Testing
@testable import VAECore

/// `ComputeThreads`: a persistent pool that runs one indexed job on all its threads at once.
@Suite struct ComputeThreadsTests {
    @Test(arguments: [1, 2, 4])
    func everyIndexRunsOnceForEveryJob(threads: Int) {
        let pool = ComputeThreads(count: threads)
        let calls = UnsafeMutableBufferPointer<Int>.allocate(capacity: threads)
        defer { calls.deallocate() }
        calls.initialize(repeating: 0)
        for _ in 0..<200 {
            pool.run { t in calls[t] += 1 }
        }
        #expect(Array(calls) == [Int](repeating: 200, count: threads))
    }

    @Test func indexZeroRunsOnTheCallerAndEachOtherIndexOnItsOwnThread() {
        let threads = 3
        let pool = ComputeThreads(count: threads)
        let seen = UnsafeMutableBufferPointer<pthread_t>.allocate(capacity: threads * 50)
        defer { seen.deallocate() }
        for job in 0..<50 {
            pool.run { t in seen[job * threads + t] = pthread_self() }
        }
        let caller = pthread_self()
        for job in 0..<50 {
            #expect(pthread_equal(seen[job * threads], caller) != 0)
            for t in 1..<threads {
                #expect(pthread_equal(seen[job * threads + t], seen[t]) != 0, "index \(t) stays on one thread")
                #expect(pthread_equal(seen[job * threads + t], caller) == 0)
            }
        }
        #expect(pthread_equal(seen[1], seen[2]) == 0)
    }

    @Test func runReturnsOnlyWhenEveryIndexHasFinished() {
        let threads = 4
        let pool = ComputeThreads(count: threads)
        let results = UnsafeMutableBufferPointer<Double>.allocate(capacity: threads)
        defer { results.deallocate() }
        for job in 1...20 {
            results.initialize(repeating: 0)
            pool.run { t in
                // Unequal amounts of work per index: the slowest decides when run returns.
                var s = 0.0
                for i in 0..<(1_000 * (t + 1) * job) { s += Double(i & 7) }
                results[t] = s
            }
            for t in 0..<threads {
                #expect(results[t] == Double(1_000 * (t + 1) * job / 8 * 28))
            }
        }
    }

    @Test func poolsComeAndGo() {
        // Each pool's deinit wakes and joins its helpers; none is left waiting on a freed pool.
        for _ in 0..<20 {
            let pool = ComputeThreads(count: 3)
            let calls = UnsafeMutableBufferPointer<Int>.allocate(capacity: 3)
            calls.initialize(repeating: 0)
            pool.run { t in calls[t] = t + 1 }
            #expect(Array(calls) == [1, 2, 3])
            calls.deallocate()
        }
    }
}
