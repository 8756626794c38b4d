import Foundation

/// How this process finds its job: the communicator (MPI when mpirun or srun started it, else one
/// process), and how many threads each rank may use.
public enum Distributed {
    nonisolated(unsafe) private static var cached: Communicator?
    private static let lock = NSLock()

    /// Whether a launcher MPI can join started this process: mpirun, or srun with PMIx or PMI-2
    /// (`LaunchEnvironment`).
    public static func launchedByMPI(environment: [String: String] = ProcessInfo.processInfo.environment) -> Bool {
        LaunchEnvironment(environment: environment).usesMPI
    }

    /// The job's size as the launcher announced it, without initialising MPI (1 when not announced).
    public static func announcedWorldSize(environment: [String: String] = ProcessInfo.processInfo.environment) -> Int {
        LaunchEnvironment(environment: environment).worldSize ?? 1
    }

    /// Ranks of this job on this host (1 when the launcher does not say): they share its cores.
    public static func localRanks(environment: [String: String] = ProcessInfo.processInfo.environment) -> Int {
        max(1, LaunchEnvironment(environment: environment).localRanks ?? 1)
    }

    /// Threads for OpenBLAS and the kernels of one rank: the host's cores shared evenly by the ranks on it,
    /// at least one (4 ranks on 2 cores each get 1 thread, not 0).
    public static func threadsPerRank(cores: Int, localRanks: Int) -> Int {
        max(1, cores / max(1, localRanks))
    }

    /// The world communicator of this process, created once: MPI when launched by mpirun or srun (and
    /// MPI's world is the size the launcher announced), else a `LocalCommunicator`. Every later call
    /// returns the same object.
    public static func current() throws -> Communicator {
        lock.lock()
        defer { lock.unlock() }
        if let c = cached { return c }
        let launch = LaunchEnvironment()
        try launch.check()
        let c: Communicator
        if launch.usesMPI {
            let world = try MPICommunicator.world()
            try launch.check(mpiWorldSize: world.worldSize)
            c = world
        } else {
            c = LocalCommunicator()
        }
        cached = c
        return c
    }
}

/// The world communicator of this process (`Distributed.current()`).
public func makeCommunicator() throws -> Communicator { try Distributed.current() }

/// Runs `body`; if it throws, the whole job stops at once instead of leaving the other ranks waiting in
/// their next collective: `abort` prints the error with this rank's number and ends every rank (MPI), or
/// prints it and exits (one process). Exit code 1.
public func runOrAbort<T>(_ comm: Communicator, _ body: () throws -> T) -> T {
    do {
        return try body()
    } catch {
        comm.abort(message: "error: \(error)", code: 1)
    }
}

/// Communicators that can form sub-groups. Not part of `Communicator` itself so that every
/// implementation need not provide it; `Communicator.split` finds it at run time.
public protocol SplittableCommunicator: Communicator {
    /// Collective over this communicator: ranks passing the same `color` form one new communicator, in
    /// which they are ordered by `key`.
    func split(color: Int, key: Int) throws -> Communicator
}

extension Communicator {
    /// Collective: ranks passing the same `color` form one new communicator, ordered by `key`.
    public func split(color: Int, key: Int) throws -> Communicator {
        if let s = self as? SplittableCommunicator { return try s.split(color: color, key: key) }
        if worldSize == 1 { return self }
        throw CommunicatorError.invalid("\(type(of: self)) cannot be split into groups")
    }
}
