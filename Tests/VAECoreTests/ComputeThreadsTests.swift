#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Testing
@testable import VAECore

/// `ComputeThreads`: a persistent pool that runs one indexed job on all its threads at once.
@Suite struct ComputeThreadsTests {
    /// With and without polling before sleeping: the jobs' results are the same either way.
    @Test(arguments: [1, 2, 4], [0, 200_000])
    func everyIndexRunsOnceForEveryJob(threads: Int, pollingNanoseconds: Int) {
        let pool = ComputeThreads(count: threads, pollingNanoseconds: pollingNanoseconds)
        let calls = UnsafeMutableBufferPointer<Int>.allocate(capacity: threads)
        defer { calls.deallocate() }
        calls.initialize(repeating: 0)
        for _ in 0..<200 {
            pool.run { t in calls[t] += 1 }
        }
        #expect(Array(calls) == [Int](repeating: 200, count: threads))
    }

    @Test func jobsRunOnTheCallerAndThePoolsOwnThreadsOnly() {
        let threads = 3, jobs = 50
        let pool = ComputeThreads(count: threads)
        let seen = UnsafeMutableBufferPointer<pthread_t>.allocate(capacity: threads * jobs)
        defer { seen.deallocate() }
        for job in 0..<jobs {
            pool.run { t in seen[job * threads + t] = pthread_self() }
        }
        // No thread is started per job: at most the caller and the two helpers ran the 150 calls.
        var distinct: [pthread_t] = []
        for thread in seen where !distinct.contains(where: { pthread_equal($0, thread) != 0 }) {
            distinct.append(thread)
        }
        #expect(distinct.count <= threads)
    }

    @Test func singleThreadPoolRunsTheBodyOnTheCaller() throws {
        let pool = ComputeThreads(count: 1)
        var thread: pthread_t?
        pool.run { _ in thread = pthread_self() }
        let ran = try #require(thread)
        #expect(pthread_equal(ran, pthread_self()) != 0)
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
