#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A fixed set of threads that run one indexed job together: `run(_:)` calls `body(t)` for every
/// `t` in `0..<count`, `body(0)` on the calling thread and each other index on a thread of its
/// own, and returns when every call has returned.
///
/// The `count - 1` helper threads are started once, by `init`, and live as long as the object;
/// between jobs they sleep on a condition variable. A job allocates nothing: the body is a
/// non-escaping closure that the helpers call in place while `run` waits, so it may capture the
/// caller's locals. Helper `t` always runs index `t`, so per-index state (an engine, a buffer)
/// stays on one thread. Jobs are not reentrant: one `run` at a time, from one thread at a time.
public final class ComputeThreads {
    /// Threads taking part in a job, the caller included.
    public let count: Int

    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let wake: UnsafeMutablePointer<pthread_cond_t>
    private let finished: UnsafeMutablePointer<pthread_cond_t>
    // Guarded by `mutex`.
    private var generation = 0
    private var pending = 0
    private var stopping = false
    private var body: ((Int) -> Void)?
    private var handles: [pthread_t] = []

    /// What a helper thread is handed when it starts: its index and the pool (unowned: `deinit`
    /// joins the helpers before the pool goes away).
    private final class Seat {
        unowned(unsafe) let pool: ComputeThreads
        let index: Int
        init(pool: ComputeThreads, index: Int) {
            self.pool = pool
            self.index = index
        }
    }

    /// Starts `count - 1` helper threads (none for a count of 1: `run` then calls its body inline).
    public init(count: Int) {
        precondition(count >= 1, "ComputeThreads needs at least one thread")
        self.count = count
        mutex = .allocate(capacity: 1)
        wake = .allocate(capacity: 1)
        finished = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(wake, nil)
        pthread_cond_init(finished, nil)
        for index in 1..<count {
            let seat = Unmanaged.passRetained(Seat(pool: self, index: index)).toOpaque()
            #if canImport(Darwin)
            var handle: pthread_t?
            #else
            var handle = pthread_t()
            #endif
            let status = pthread_create(&handle, nil, { raw in
                let pointer: UnsafeMutableRawPointer? = raw
                let seat = Unmanaged<Seat>.fromOpaque(pointer!).takeRetainedValue()
                seat.pool.serve(seat.index)
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

    /// Calls `body(t)` for every `t` in `0..<count`, concurrently (`body(0)` on this thread), and
    /// returns when all calls have returned. The calls must not depend on one another's progress.
    public func run(_ body: (Int) -> Void) {
        guard count > 1 else {
            body(0)
            return
        }
        withoutActuallyEscaping(body) { body in
            pthread_mutex_lock(mutex)
            self.body = body
            pending = count - 1
            generation &+= 1
            pthread_cond_broadcast(wake)
            pthread_mutex_unlock(mutex)

            body(0)

            pthread_mutex_lock(mutex)
            while pending > 0 { pthread_cond_wait(finished, mutex) }
            self.body = nil
            pthread_mutex_unlock(mutex)
        }
    }

    /// A helper's life: wait for a new job, run its index, report, until `deinit` says stop.
    private func serve(_ index: Int) {
        var seen = 0
        pthread_mutex_lock(mutex)
        while true {
            while generation == seen && !stopping { pthread_cond_wait(wake, mutex) }
            if stopping { break }
            seen = generation
            pthread_mutex_unlock(mutex)
            runJob(index)
            pthread_mutex_lock(mutex)
            pending -= 1
            if pending == 0 { pthread_cond_signal(finished) }
        }
        pthread_mutex_unlock(mutex)
    }

    /// Runs the current job's body for `index`; the reference to the body ends with this call,
    /// before the job is reported done (so that `run` finds it unshared when it returns).
    private func runJob(_ index: Int) {
        // `body` is written only while every helper waits, and read here before this helper
        // reports done: the mutex taken in `serve` orders the two.
        body?(index)
    }
}
