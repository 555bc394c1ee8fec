// cuBLASLt, opened with dlopen (DESIGN decision 1), for the tensor-core GEMMs of prefill-sized
// batches: bf16 inputs, f32 accumulation and f32 output, optionally + an f32 bias per output
// (the BIAS epilogue, added inside the GEMM). Each distinct problem shape gets a plan
// (descriptors plus the algorithm cuBLASLt's heuristic picks) built once and cached, so a repeated
// shape costs one cublasLtMatmul call. Statuses become CUDAError.cublas naming the call.
import Foundation

/// The cuBLASLt entry points Osprey uses. Loaded once per process.
struct CUBLASLt: @unchecked Sendable {  // immutable table of C function pointers
    typealias Status = Int32
    let library: DynamicLibrary
    let create: @convention(c) (UnsafeMutablePointer<OpaquePointer?>) -> Status
    let descCreate: @convention(c) (UnsafeMutablePointer<OpaquePointer?>, Int32, Int32) -> Status
    let descSetAttribute: @convention(c) (OpaquePointer?, Int32, UnsafeRawPointer, Int) -> Status
    let layoutCreate: @convention(c) (UnsafeMutablePointer<OpaquePointer?>, Int32, UInt64, UInt64, Int64) -> Status
    let preferenceCreate: @convention(c) (UnsafeMutablePointer<OpaquePointer?>) -> Status
    let preferenceSetAttribute: @convention(c) (OpaquePointer?, Int32, UnsafeRawPointer, Int) -> Status
    let algoGetHeuristic: @convention(c) (OpaquePointer?, OpaquePointer?, OpaquePointer?, OpaquePointer?, OpaquePointer?, OpaquePointer?,
                                          OpaquePointer?, Int32, UnsafeMutableRawPointer, UnsafeMutablePointer<Int32>) -> Status
    let matmul: @convention(c) (OpaquePointer?, OpaquePointer?, UnsafeRawPointer, UInt64, OpaquePointer?, UInt64, OpaquePointer?,
                                UnsafeRawPointer, UInt64, OpaquePointer?, UInt64, OpaquePointer?, UnsafeRawPointer?,
                                UInt64, Int, OpaquePointer?) -> Status

    init() throws {
        let l = try DynamicLibrary.open("libcublasLt.so.13", candidates: DynamicLibrary.candidates("libcublasLt.so.13", override: "OSPREY_CUBLASLT"))
        library = l
        create = try l.function("cublasLtCreate", as: type(of: create))
        descCreate = try l.function("cublasLtMatmulDescCreate", as: type(of: descCreate))
        descSetAttribute = try l.function("cublasLtMatmulDescSetAttribute", as: type(of: descSetAttribute))
        layoutCreate = try l.function("cublasLtMatrixLayoutCreate", as: type(of: layoutCreate))
        preferenceCreate = try l.function("cublasLtMatmulPreferenceCreate", as: type(of: preferenceCreate))
        preferenceSetAttribute = try l.function("cublasLtMatmulPreferenceSetAttribute", as: type(of: preferenceSetAttribute))
        algoGetHeuristic = try l.function("cublasLtMatmulAlgoGetHeuristic", as: type(of: algoGetHeuristic))
        matmul = try l.function("cublasLtMatmul", as: type(of: matmul))
    }

    func check(_ status: Status, _ call: String) throws {
        if status != 0 { throw CUDAError.cublas(call: call, status: status) }
    }

    static let shared: Result<CUBLASLt, CUDAError> = {
        do { return .success(try CUBLASLt()) } catch let e as CUDAError { return .failure(e) } catch {
            return .failure(.libraryNotFound("libcublasLt.so.13", searched: ["\(error)"]))
        }
    }()

    // cublasLt.h / library_types.h values.
    static let computeF32: Int32 = 68        // CUBLAS_COMPUTE_32F
    static let typeF32: Int32 = 0            // CUDA_R_32F
    static let typeBF16: Int32 = 14          // CUDA_R_16BF
    static let descTransA: Int32 = 3         // CUBLASLT_MATMUL_DESC_TRANSA
    static let descEpilogue: Int32 = 7       // CUBLASLT_MATMUL_DESC_EPILOGUE
    static let descBiasPointer: Int32 = 8    // CUBLASLT_MATMUL_DESC_BIAS_POINTER
    static let descBiasDataType: Int32 = 26  // CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE
    static let epilogueBias: UInt32 = 4      // CUBLASLT_EPILOGUE_BIAS
    static let prefMaxWorkspace: Int32 = 1   // CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES
    static let opT: Int32 = 1                // CUBLAS_OP_T
}

/// D[n, m] (row-major f32) = B[n, k] (row-major bf16) · A[m, k]ᵀ (row-major bf16, a weight)
/// (+ bias[m], f32, when `bias`), as a column-major cuBLASLt problem: D' (m × n) = op(A') (m × k,
/// A' is A stored k × m) · B' (k × n), the bias added to each column.
struct GEMMKey: Hashable { let m, n, k: Int, bias: Bool }

/// The descriptors and chosen algorithm (cuBLASLt's heuristic's first) for one GEMM shape. Timing
/// the heuristic's first 8 candidates on each shape's first call and keeping the fastest was tried
/// (2026-11-29, H200): a batch-64 decode step's GEMMs took 2.09 ms against 2.18 timed alone, and
/// the same wall time with graphs, while the tuning itself cost milliseconds for every new shape
/// (the lm_head's row count changes with each step's finishing prompts).
final class GEMMPlan: @unchecked Sendable {  // owned by one CUDAContext, used from its thread
    let desc: OpaquePointer?
    let a: OpaquePointer?, b: OpaquePointer?, d: OpaquePointer?
    let algo: UnsafeMutableRawPointer     // a cublasLtMatmulHeuristicResult_t; the algo is its first field
    let workspaceBytes: Int

    init(lt: CUBLASLt, handle: OpaquePointer?, key: GEMMKey, workspaceLimit: Int) throws {
        var desc: OpaquePointer?, a: OpaquePointer?, b: OpaquePointer?, d: OpaquePointer?, pref: OpaquePointer?
        try lt.check(lt.descCreate(&desc, CUBLASLt.computeF32, CUBLASLt.typeF32), "cublasLtMatmulDescCreate")
        var opT = CUBLASLt.opT
        try lt.check(lt.descSetAttribute(desc, CUBLASLt.descTransA, &opT, 4), "cublasLtMatmulDescSetAttribute(TRANSA)")
        if key.bias {
            var epilogue = CUBLASLt.epilogueBias, biasType = CUBLASLt.typeF32
            try lt.check(lt.descSetAttribute(desc, CUBLASLt.descEpilogue, &epilogue, 4), "cublasLtMatmulDescSetAttribute(EPILOGUE)")
            try lt.check(lt.descSetAttribute(desc, CUBLASLt.descBiasDataType, &biasType, 4), "cublasLtMatmulDescSetAttribute(BIAS_DATA_TYPE)")
        }
        try lt.check(lt.layoutCreate(&a, CUBLASLt.typeBF16, UInt64(key.k), UInt64(key.m), Int64(key.k)), "cublasLtMatrixLayoutCreate(A)")
        try lt.check(lt.layoutCreate(&b, CUBLASLt.typeBF16, UInt64(key.k), UInt64(key.n), Int64(key.k)), "cublasLtMatrixLayoutCreate(B)")
        try lt.check(lt.layoutCreate(&d, CUBLASLt.typeF32, UInt64(key.m), UInt64(key.n), Int64(key.m)), "cublasLtMatrixLayoutCreate(D)")
        try lt.check(lt.preferenceCreate(&pref), "cublasLtMatmulPreferenceCreate")
        var limit = UInt64(workspaceLimit)
        try lt.check(lt.preferenceSetAttribute(pref, CUBLASLt.prefMaxWorkspace, &limit, 8), "cublasLtMatmulPreferenceSetAttribute")
        // The result struct is 96 bytes in CUDA 12-13; 1 KiB leaves room for any growth.
        let result = UnsafeMutableRawPointer.allocate(byteCount: 1024, alignment: 16)
        result.initializeMemory(as: UInt8.self, repeating: 0, count: 1024)
        var found: Int32 = 0
        try lt.check(lt.algoGetHeuristic(handle, desc, a, b, d, d, pref, 1, result, &found), "cublasLtMatmulAlgoGetHeuristic")
        guard found > 0 else {
            result.deallocate()
            throw CUDAError.cublas(call: "cublasLtMatmulAlgoGetHeuristic(m \(key.m) n \(key.n) k \(key.k): no algorithm)", status: 15)
        }
        (self.desc, self.a, self.b, self.d, algo) = (desc, a, b, d, result)
        workspaceBytes = Int(result.load(fromByteOffset: 64, as: UInt64.self))
    }
}
