// cuBLASLt on one GPU: opened on first use (once; without it the GEMM paths fall back to Osprey's
// own kernels), a 32 MiB workspace, and a plan cache keyed by problem shape. The calls themselves
// are in CUBLASLt.swift; the prefill paths that use them in CUDABackend+GEMM.swift.
import Foundation

extension CUDAContext {
    /// Whether cuBLASLt could be opened (tried once); the GEMM paths fall back to Osprey's own
    /// kernels without it.
    var hasGEMM: Bool {
        if blas != nil { return true }
        if blasFailure != nil { return false }
        do {
            let lt = try CUBLASLt.shared.get()
            var handle: OpaquePointer?
            try makeCurrent()
            try lt.check(lt.create(&handle), "cublasLtCreate")
            blas = (lt, handle, try Arena(context: self, bytes: Self.gemmWorkspaceBytes))
            return true
        } catch let e as CUDAError {
            blasFailure = e
            FileHandle.standardError.write(Data("osprey: cuBLASLt unavailable (\(e)); prefill uses Osprey's own kernels\n".utf8))
            return false
        } catch { return false }
    }

    static let gemmWorkspaceBytes = 32 << 20

    /// d[n, m] (f32, row-major) = b[n, k] (bf16, row-major) · a[m, k]ᵀ (bf16, row-major) + bias[m]
    /// (f32; none when 0), on the stream.
    func gemm(a: CUdeviceptr, b: CUdeviceptr, d: CUdeviceptr, m: Int, n: Int, k: Int, bias: CUdeviceptr = 0) throws {
        guard hasGEMM, let blas else { throw blasFailure ?? CUDAError.cublas(call: "cublasLtCreate", status: -1) }
        let key = GEMMKey(m: m, n: n, k: k, bias: bias != 0)
        let plan: GEMMPlan
        if let p = plans[key] { plan = p } else {
            plan = try GEMMPlan(lt: blas.lt, handle: blas.handle, key: key, workspaceLimit: Self.gemmWorkspaceBytes)
            plans[key] = plan
        }
        var alpha: Float = 1, beta: Float = 0
        if profileKernels {
            profileKernels = false
            defer { profileKernels = true }
            return try timed("cublasLtMatmul") { try gemm(a: a, b: b, d: d, m: m, n: n, k: k, bias: bias) }
        }
        if bias != 0 {
            // The plan's descriptor is shared by every GEMM of its shape: its bias is set per call
            // (read by cublasLtMatmul when called, so a captured graph keeps this call's).
            var pointer = bias
            try blas.lt.check(blas.lt.descSetAttribute(plan.desc, CUBLASLt.descBiasPointer, &pointer, 8),
                              "cublasLtMatmulDescSetAttribute(BIAS_POINTER)")
        }
        stats.kernelLaunches += 1
        try blas.lt.check(blas.lt.matmul(blas.handle, plan.desc, &alpha, a, plan.a, b, plan.b, &beta, d, plan.d, d, plan.d,
                                         plan.algo, blas.workspace.base, Self.gemmWorkspaceBytes, stream),
                          "cublasLtMatmul(m \(m) n \(n) k \(k))")
    }
}
