/// The data-parallel and pipeline communicators of one rank, for a world of P pipeline stages × D
/// data-parallel replicas (world = P × D).
///
/// Rank layout, pipeline-major: world rank `r = stage × D + replica`. Consecutive world ranks hold the
/// same pipeline stage of different replicas, so each data-parallel group is a block of D consecutive
/// ranks. mpirun fills a host with consecutive ranks, so the heavy traffic (gradient reduce-scatter and
/// parameter all-gather every step) stays inside a host whenever D ranks fit on one, and only the lighter
/// pipeline activations cross hosts.
///
/// Example, world 4, 2 stages (D = 2): data-parallel groups {0,1} (stage 0) and {2,3} (stage 1); pipelines
/// {0,2} (replica 0) and {1,3} (replica 1).
public struct ParallelGroups {
    public let world: Communicator
    /// Ranks holding the same pipeline stage; rank within it = replica index.
    public let dataParallel: Communicator
    /// Ranks of the same replica, one per stage; rank within it = stage index.
    public let pipeline: Communicator
    public let pipelineStages: Int
    public let dataParallelSize: Int
    public var stage: Int { pipeline.rank }
    public var replica: Int { dataParallel.rank }

    /// Collective over `world`: every rank must call it with the same `pipelineStages`.
    public init(world: Communicator, pipelineStages: Int) throws {
        guard pipelineStages >= 1, world.worldSize % pipelineStages == 0 else {
            throw CommunicatorError.invalid("pipeline stages \(pipelineStages) must be at least 1 and divide the world size \(world.worldSize)")
        }
        let replicas = world.worldSize / pipelineStages
        let (stage, replica) = ParallelGroups.position(ofWorldRank: world.rank, dataParallelSize: replicas)
        self.world = world
        self.pipelineStages = pipelineStages
        self.dataParallelSize = replicas
        // Both splits are called by every rank in the same order, as collectives must be.
        self.dataParallel = try world.split(color: stage, key: replica)
        self.pipeline = try world.split(color: replica, key: stage)
    }

    /// (stage, replica) of a world rank under the pipeline-major layout.
    public static func position(ofWorldRank rank: Int, dataParallelSize: Int) -> (stage: Int, replica: Int) {
        (rank / dataParallelSize, rank % dataParallelSize)
    }

    /// The world rank holding `stage` of `replica`.
    public func worldRank(stage: Int, replica: Int) -> Int { stage * dataParallelSize + replica }
}
