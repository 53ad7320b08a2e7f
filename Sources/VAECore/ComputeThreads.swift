#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A fixed set of threads that run one indexed job together: `run(_:)` calls `body(t)` once for
/// every `t` in `0..<count`, concurrently, and returns when every call has returned.
///
/// The `count - 1` helper threads are started once, by `init`, and live as long as the object;
/// between jobs they sleep on a condition variable, after polling for a new job for
/// `pollingNanoseconds` (waking a sleeping thread costs tens of microseconds on a virtual machine,
/// and a job often follows the previous one at once). The calling thread takes part: every thread,
/// the caller included, claims the job's indices one at a time until none is left, so a job never
/// waits for a helper that the machine has not scheduled yet (on a busy machine the caller may run
/// every index itself). Which thread runs an index is therefore not fixed; per-index state (an
/// engine, a buffer) is still used by one thread at a time. A job allocates nothing: the body is a
/// non-escaping closure that the helpers call in place while `run` waits, so it may capture the
/// caller's locals. One `run` at a time, from one thread at a time.
public final class ComputeThreads {
    /// Indices of a job, and threads that take part in it (the caller included).
    public let count: Int
    /// How long a thread waiting for a job (a helper) or for a job's end (the caller) polls
    /// before it sleeps on the condition variable.
    public let pollingNanoseconds: Int

    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let wake: UnsafeMutablePointer<pthread_cond_t>
    private let finished: UnsafeMutablePointer<pthread_cond_t>
    // Guarded by `mutex`.
    private var generation = 0
    private var nextIndex = 0
    private var unfinished = 0
    private var stopping = false
    private var body: ((Int) -> Void)?
    private var handles: [pthread_t] = []

    /// What a helper thread is handed when it starts: the pool (unowned: `deinit` joins the
    /// helpers before the pool goes away).
    private final class Seat {
        unowned(unsafe) let pool: ComputeThreads
        init(pool: ComputeThreads) { self.pool = pool }
    }

    /// Starts `count - 1` helper threads (none for a count of 1: `run` then calls its body inline).
    public init(count: Int, pollingNanoseconds: Int = 200_000) {
        precondition(count >= 1, "ComputeThreads needs at least one thread")
        self.count = count
        self.pollingNanoseconds = pollingNanoseconds
        mutex = .allocate(capacity: 1)
        wake = .allocate(capacity: 1)
        finished = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(wake, nil)
        pthread_cond_init(finished, nil)
        for _ in 1..<count {
            let seat = Unmanaged.passRetained(Seat(pool: self)).toOpaque()
            #if canImport(Darwin)
            var handle: pthread_t?
            #else
            var handle = pthread_t()
            #endif
            let status = pthread_create(&handle, nil, { raw in
                let pointer: UnsafeMutableRawPointer? = raw
                let seat = Unmanaged<Seat>.fromOpaque(pointer!).takeRetainedValue()
                seat.pool.serve()
                return nil
            }, seat)
            precondition(status == 0, "ComputeThreads: pthread_create failed with \(status)")
            #if canImport(Darwin)
            handles.append(handle!)
            #else
            handles.append(handle)
            #endif
        }
    }

    deinit {
        pthread_mutex_lock(mutex)
        stopping = true
        pthread_cond_broadcast(wake)
        pthread_mutex_unlock(mutex)
        for handle in handles { pthread_join(handle, nil) }
        pthread_cond_destroy(finished)
        pthread_cond_destroy(wake)
        pthread_mutex_destroy(mutex)
        finished.deallocate()
        wake.deallocate()
        mutex.deallocate()
    }

    /// Calls `body(t)` once for every `t` in `0..<count`, concurrently on this thread and the
    /// helpers, and returns when all calls have returned. The calls must not wait for one another
    /// (any of them may run after another on the same thread).
    public func run(_ body: (Int) -> Void) {
        guard count > 1 else {
            body(0)
            return
        }
        withoutActuallyEscaping(body) { body in
            pthread_mutex_lock(mutex)
            self.body = body
            nextIndex = 0
            unfinished = count
            generation &+= 1
            pthread_cond_broadcast(wake)
            runClaimedIndices()
            poll { unfinished == 0 }
            while unfinished > 0 { pthread_cond_wait(finished, mutex) }
            self.body = nil
            pthread_mutex_unlock(mutex)
        }
    }

    /// A helper's life: wait for a new job, take part in it, until `deinit` says stop.
    private func serve() {
        var seen = 0
        pthread_mutex_lock(mutex)
        while true {
            poll { generation != seen || stopping }
            while generation == seen && !stopping { pthread_cond_wait(wake, mutex) }
            if stopping { break }
            seen = generation
            runClaimedIndices()
        }
        pthread_mutex_unlock(mutex)
    }

    /// Waits for `condition` (read with `mutex` held, as it is on entry and on return) by polling
    /// for at most `pollingNanoseconds`, yielding the processor between looks.
    private func poll(_ condition: () -> Bool) {
        guard pollingNanoseconds > 0, !condition() else { return }
        let deadline = monotonicNanoseconds() + pollingNanoseconds
        repeat {
            pthread_mutex_unlock(mutex)
            sched_yield()
            pthread_mutex_lock(mutex)
        } while !condition() && monotonicNanoseconds() < deadline
    }

    /// Claims the job's next index and runs it, until none is left; called and returning with
    /// `mutex` held, which is released while a body runs.
    private func runClaimedIndices() {
        while nextIndex < count {
            let index = nextIndex
            nextIndex += 1
            pthread_mutex_unlock(mutex)
            runJob(index)
            pthread_mutex_lock(mutex)
            unfinished -= 1
            if unfinished == 0 { pthread_cond_signal(finished) }
        }
    }

    /// Runs the current job's body for `index`; the reference to the body ends with this call,
    /// before the index is reported done (so that `run` finds the body unshared when it returns).
    private func runJob(_ index: Int) {
        // `body` is written only while no index is claimed, and read here after claiming one
        // under the mutex, which orders the two.
        body?(index)
    }
}

/// CLOCK_MONOTONIC in nanoseconds.
private func monotonicNanoseconds() -> Int {
    var t = timespec()
    clock_gettime(CLOCK_MONOTONIC, &t)
    return Int(t.tv_sec) * 1_000_000_000 + Int(t.tv_nsec)
}
