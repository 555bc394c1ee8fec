// CUDA graphs: the work a decode step queues on the stream, recorded once (stream capture) and
// replayed with one cuGraphLaunch — a few hundred kernel launches cost ~3–4 µs each from the host
// in the GPU machine's VM, ~0.5 µs each replayed (../shared/device/NOTES.md). A graph holds the
// addresses its kernels were given: the workspace's (valid while `workspaceGeneration` stands) and
// whatever the caller keeps in place (the batching runner's input buffer, the caches). Capture is
// thread-local: an allocation or a synchronisation inside the body fails the capture (and the
// caller runs the step eagerly) instead of being baked into a graph.
import OspreyCore

/// A recorded, instantiated graph of one context's stream.
final class CUDAStepGraph: DeviceGraph, @unchecked Sendable {  // owns driver handles; replayed from the engine's thread
    let exec: OpaquePointer?
    let context: CUDAContext
    let generation: Int

    init(exec: OpaquePointer?, context: CUDAContext, generation: Int) {
        (self.exec, self.context, self.generation) = (exec, context, generation)
    }

    /// Invalid once the workspace moved, and while kernels are profiled (each launch timed alone).
    var isValid: Bool { context.workspaceGeneration == generation && !context.profileKernels }

    deinit { _ = context.driver.cuGraphExecDestroy(exec) }
}

extension CUDAContext {
    /// Records what `body` queues on the stream (nothing runs); nil when the workspace moved
    /// meanwhile. A body that throws, or a capture the driver refuses, ends the capture first.
    func record(_ body: () throws -> Void) throws -> CUDAStepGraph? {
        guard !profileKernels else { return nil }  // the profiler waits on events per launch
        try makeCurrent()
        let generation = workspaceGeneration
        try driver.check(driver.cuStreamBeginCapture(stream, 1 /* CU_STREAM_CAPTURE_MODE_THREAD_LOCAL */), "cuStreamBeginCapture_v2")
        var graph: OpaquePointer?
        do {
            try body()
        } catch {
            _ = driver.cuStreamEndCapture(stream, &graph)
            if graph != nil { _ = driver.cuGraphDestroy(graph) }
            throw error
        }
        try driver.check(driver.cuStreamEndCapture(stream, &graph), "cuStreamEndCapture")
        defer { _ = driver.cuGraphDestroy(graph) }
        guard workspaceGeneration == generation else { return nil }
        var exec: OpaquePointer?
        try driver.check(driver.cuGraphInstantiateWithFlags(&exec, graph, 0), "cuGraphInstantiateWithFlags")
        return CUDAStepGraph(exec: exec, context: self, generation: generation)
    }

    /// Queues a recorded graph on the stream.
    func replay(_ graph: CUDAStepGraph) throws {
        stats.graphLaunches += 1
        try driver.check(driver.cuGraphLaunch(graph.exec, stream), "cuGraphLaunch")
    }
}

extension CUDABackend {
    public func record(_ body: () throws -> Void) throws -> (any DeviceGraph)? {
        try context.beginStep()  // recycles (and may merge) the workspace before the capture, not in it
        return try context.record(body)
    }

    public func replay(_ graph: any DeviceGraph) throws {
        guard let g = graph as? CUDAStepGraph, g.context === context, g.isValid else {
            throw OspreyError.invalidArgument("replay of a graph recorded elsewhere, or whose workspace has moved")
        }
        try context.replay(g)
    }
}
