import CBLAS

/// The few BLAS calls the core uses, in row-major form. All matrices are dense row-major
/// `Float` arrays; shapes are stated as `[rows, columns]`.
public enum BLAS {
    /// Sets the number of threads OpenBLAS uses for every following call in this process.
    public static func setThreads(_ count: Int) {
        openblas_set_num_threads(Int32(max(1, count)))
    }

    /// Makes the calling thread flush denormal floats to zero (inputs and results). The numeric
    /// core calls it on entry to its hot loops; values below 1.2e-38 become 0.
    @inlinable
    public static func flushDenormalsToZero() { vae_flush_denormals_to_zero() }

    /// The number of threads OpenBLAS uses.
    public static var threads: Int { Int(openblas_get_num_threads()) }

    /// C[m, n] = alpha * op(A) * op(B) + beta * C, where op(A) is [m, k] and op(B) is [k, n];
    /// `transA` means A is stored as [k, m], `transB` that B is stored as [n, k].
    @inlinable
    public static func gemm(
        transA: Bool = false, transB: Bool = false,
        m: Int, n: Int, k: Int,
        alpha: Float = 1, a: UnsafePointer<Float>, b: UnsafePointer<Float>,
        beta: Float, c: UnsafeMutablePointer<Float>
    ) {
        cblas_sgemm(
            CblasRowMajor,
            transA ? CblasTrans : CblasNoTrans,
            transB ? CblasTrans : CblasNoTrans,
            Int32(m), Int32(n), Int32(k),
            alpha, a, Int32(transA ? m : k),
            b, Int32(transB ? k : n),
            beta, c, Int32(n))
    }
}
