// The CUDA driver API, opened with dlopen: the handful of entry points Osprey uses, as typed C
// function pointers, and `check`, which turns every non-zero status into a CUDAError naming the
// call. The versioned symbols (`_v2`) are the ones the driver exports for 64-bit sizes.
import Foundation

typealias CUresult = Int32
typealias CUdeviceptr = UInt64

/// The driver's entry points. Loaded once per process.
struct Driver: @unchecked Sendable {  // immutable table of C function pointers
    let library: DynamicLibrary
    let cuInit: @convention(c) (UInt32) -> CUresult
    let cuDriverGetVersion: @convention(c) (UnsafeMutablePointer<Int32>) -> CUresult
    let cuDeviceGetCount: @convention(c) (UnsafeMutablePointer<Int32>) -> CUresult
    let cuDeviceGet: @convention(c) (UnsafeMutablePointer<Int32>, Int32) -> CUresult
    let cuDeviceGetName: @convention(c) (UnsafeMutablePointer<CChar>, Int32, Int32) -> CUresult
    let cuDeviceGetAttribute: @convention(c) (UnsafeMutablePointer<Int32>, Int32, Int32) -> CUresult
    let cuDeviceTotalMem: @convention(c) (UnsafeMutablePointer<Int>, Int32) -> CUresult
    let cuDevicePrimaryCtxRetain: @convention(c) (UnsafeMutablePointer<OpaquePointer?>, Int32) -> CUresult
    let cuCtxSetCurrent: @convention(c) (OpaquePointer?) -> CUresult
    let cuMemAlloc: @convention(c) (UnsafeMutablePointer<CUdeviceptr>, Int) -> CUresult
    let cuMemFree: @convention(c) (CUdeviceptr) -> CUresult
    let cuMemGetInfo: @convention(c) (UnsafeMutablePointer<Int>, UnsafeMutablePointer<Int>) -> CUresult
    let cuMemHostAlloc: @convention(c) (UnsafeMutablePointer<UnsafeMutableRawPointer?>, Int, UInt32) -> CUresult
    let cuMemFreeHost: @convention(c) (UnsafeMutableRawPointer?) -> CUresult
    let cuMemcpyHtoDAsync: @convention(c) (CUdeviceptr, UnsafeRawPointer?, Int, OpaquePointer?) -> CUresult
    let cuMemcpyDtoHAsync: @convention(c) (UnsafeMutableRawPointer?, CUdeviceptr, Int, OpaquePointer?) -> CUresult
    let cuMemcpyDtoDAsync: @convention(c) (CUdeviceptr, CUdeviceptr, Int, OpaquePointer?) -> CUresult
    let cuMemsetD8Async: @convention(c) (CUdeviceptr, UInt8, Int, OpaquePointer?) -> CUresult
    let cuStreamCreate: @convention(c) (UnsafeMutablePointer<OpaquePointer?>, UInt32) -> CUresult
    let cuStreamSynchronize: @convention(c) (OpaquePointer?) -> CUresult
    let cuEventCreate: @convention(c) (UnsafeMutablePointer<OpaquePointer?>, UInt32) -> CUresult
    let cuEventRecord: @convention(c) (OpaquePointer?, OpaquePointer?) -> CUresult
    let cuEventSynchronize: @convention(c) (OpaquePointer?) -> CUresult
    let cuEventElapsedTime: @convention(c) (UnsafeMutablePointer<Float>, OpaquePointer?, OpaquePointer?) -> CUresult
    let cuModuleLoadData: @convention(c) (UnsafeMutablePointer<OpaquePointer?>, UnsafeRawPointer) -> CUresult
    let cuModuleGetFunction: @convention(c) (UnsafeMutablePointer<OpaquePointer?>, OpaquePointer?, UnsafePointer<CChar>) -> CUresult
    let cuFuncSetAttribute: @convention(c) (OpaquePointer?, Int32, Int32) -> CUresult
    let cuLaunchKernel: @convention(c) (OpaquePointer?, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, OpaquePointer?,
                                        UnsafeMutablePointer<UnsafeMutableRawPointer?>?, UnsafeMutablePointer<UnsafeMutableRawPointer?>?) -> CUresult
    let cuGetErrorString: @convention(c) (CUresult, UnsafeMutablePointer<UnsafePointer<CChar>?>) -> CUresult
    // CUDA graphs (stream capture): CUstream, CUstreamCaptureMode / CUgraph / CUgraphExec.
    let cuStreamBeginCapture: @convention(c) (OpaquePointer?, Int32) -> CUresult
    let cuStreamEndCapture: @convention(c) (OpaquePointer?, UnsafeMutablePointer<OpaquePointer?>) -> CUresult
    let cuGraphInstantiateWithFlags: @convention(c) (UnsafeMutablePointer<OpaquePointer?>, OpaquePointer?, UInt64) -> CUresult
    let cuGraphLaunch: @convention(c) (OpaquePointer?, OpaquePointer?) -> CUresult
    let cuGraphExecDestroy: @convention(c) (OpaquePointer?) -> CUresult
    let cuGraphDestroy: @convention(c) (OpaquePointer?) -> CUresult
    /// cuLaunchKernelEx(const CUlaunchConfig*, CUfunction, void** params, void** extra).
    let cuLaunchKernelEx: @convention(c) (UnsafeRawPointer, OpaquePointer?, UnsafeMutablePointer<UnsafeMutableRawPointer?>?,
                                          UnsafeMutablePointer<UnsafeMutableRawPointer?>?) -> CUresult

    /// Opens libcuda and resolves every entry point.
    init() throws {
        let l = try DynamicLibrary.open("libcuda.so.1", candidates: DynamicLibrary.candidates("libcuda.so.1", override: "OSPREY_LIBCUDA"))
        library = l
        cuInit = try l.function("cuInit", as: type(of: cuInit))
        cuDriverGetVersion = try l.function("cuDriverGetVersion", as: type(of: cuDriverGetVersion))
        cuDeviceGetCount = try l.function("cuDeviceGetCount", as: type(of: cuDeviceGetCount))
        cuDeviceGet = try l.function("cuDeviceGet", as: type(of: cuDeviceGet))
        cuDeviceGetName = try l.function("cuDeviceGetName", as: type(of: cuDeviceGetName))
        cuDeviceGetAttribute = try l.function("cuDeviceGetAttribute", as: type(of: cuDeviceGetAttribute))
        cuDeviceTotalMem = try l.function("cuDeviceTotalMem_v2", as: type(of: cuDeviceTotalMem))
        cuDevicePrimaryCtxRetain = try l.function("cuDevicePrimaryCtxRetain", as: type(of: cuDevicePrimaryCtxRetain))
        cuCtxSetCurrent = try l.function("cuCtxSetCurrent", as: type(of: cuCtxSetCurrent))
        cuMemAlloc = try l.function("cuMemAlloc_v2", as: type(of: cuMemAlloc))
        cuMemFree = try l.function("cuMemFree_v2", as: type(of: cuMemFree))
        cuMemGetInfo = try l.function("cuMemGetInfo_v2", as: type(of: cuMemGetInfo))
        cuMemHostAlloc = try l.function("cuMemHostAlloc", as: type(of: cuMemHostAlloc))
        cuMemFreeHost = try l.function("cuMemFreeHost", as: type(of: cuMemFreeHost))
        cuMemcpyHtoDAsync = try l.function("cuMemcpyHtoDAsync_v2", as: type(of: cuMemcpyHtoDAsync))
        cuMemcpyDtoHAsync = try l.function("cuMemcpyDtoHAsync_v2", as: type(of: cuMemcpyDtoHAsync))
        cuMemcpyDtoDAsync = try l.function("cuMemcpyDtoDAsync_v2", as: type(of: cuMemcpyDtoDAsync))
        cuMemsetD8Async = try l.function("cuMemsetD8Async", as: type(of: cuMemsetD8Async))
        cuStreamCreate = try l.function("cuStreamCreate", as: type(of: cuStreamCreate))
        cuStreamSynchronize = try l.function("cuStreamSynchronize", as: type(of: cuStreamSynchronize))
        cuEventCreate = try l.function("cuEventCreate", as: type(of: cuEventCreate))
        cuEventRecord = try l.function("cuEventRecord", as: type(of: cuEventRecord))
        cuEventSynchronize = try l.function("cuEventSynchronize", as: type(of: cuEventSynchronize))
        cuEventElapsedTime = try l.function("cuEventElapsedTime_v2", as: type(of: cuEventElapsedTime))
        cuModuleLoadData = try l.function("cuModuleLoadData", as: type(of: cuModuleLoadData))
        cuModuleGetFunction = try l.function("cuModuleGetFunction", as: type(of: cuModuleGetFunction))
        cuFuncSetAttribute = try l.function("cuFuncSetAttribute", as: type(of: cuFuncSetAttribute))
        cuLaunchKernel = try l.function("cuLaunchKernel", as: type(of: cuLaunchKernel))
        cuGetErrorString = try l.function("cuGetErrorString", as: type(of: cuGetErrorString))
        cuStreamBeginCapture = try l.function("cuStreamBeginCapture_v2", as: type(of: cuStreamBeginCapture))
        cuStreamEndCapture = try l.function("cuStreamEndCapture", as: type(of: cuStreamEndCapture))
        cuGraphInstantiateWithFlags = try l.function("cuGraphInstantiateWithFlags", as: type(of: cuGraphInstantiateWithFlags))
        cuGraphLaunch = try l.function("cuGraphLaunch", as: type(of: cuGraphLaunch))
        cuGraphExecDestroy = try l.function("cuGraphExecDestroy", as: type(of: cuGraphExecDestroy))
        cuGraphDestroy = try l.function("cuGraphDestroy", as: type(of: cuGraphDestroy))
        cuLaunchKernelEx = try l.function("cuLaunchKernelEx", as: type(of: cuLaunchKernelEx))
    }

    /// Throws a CUDAError naming `call` unless `status` is CUDA_SUCCESS.
    func check(_ status: CUresult, _ call: String) throws {
        guard status != 0 else { return }
        var text: UnsafePointer<CChar>?
        _ = cuGetErrorString(status, &text)
        throw CUDAError.driver(call: call, status: status, message: text.map { String(cString: $0) } ?? "unknown error")
    }

    /// The driver, opened on first use; nil with the reason when there is none.
    static let shared: Result<Driver, CUDAError> = {
        do { return .success(try Driver()) } catch let e as CUDAError { return .failure(e) } catch {
            return .failure(.libraryNotFound("libcuda.so.1", searched: ["\(error)"]))
        }
    }()
}
