import Foundation

/// Who started this process and what it announced, read from the environment before MPI is initialised
/// (MPI_Init itself learns rank and size from the launcher's PMIx/PMI server; these variables only say
/// that there is one, and let a wrong launch be refused instead of running N unrelated one-process jobs).
///
/// - Open MPI's mpirun (and Open MPI's mpirun inside a Slurm allocation) sets `OMPI_COMM_WORLD_SIZE`
///   and `OMPI_COMM_WORLD_LOCAL_SIZE` in every rank before exec.
/// - Slurm's `srun --mpi=pmix` (and other PMIx launchers) set `PMIX_RANK` but no OMPI_ variable; srun
///   adds `SLURM_STEP_NUM_TASKS` and `SLURM_STEP_TASKS_PER_NODE` to every task.
/// - `srun --mpi=pmi2` sets `PMI_RANK`, `PMI_SIZE` and `PMI_FD` (an Open MPI built without Slurm's PMI
///   library, like Debian's, cannot use them: MPI_Init then gives a world of 1, which `check` refuses).
/// - `srun` with no PMI (`--mpi=none`) starts tasks that MPI cannot join: refused before MPI_Init.
public struct LaunchEnvironment: Equatable, Sendable {
    public enum Launcher: Equatable, Sendable {
        /// No launcher: a job of one process.
        case none
        case mpirun
        case pmix
        case pmi
        /// srun started this as one of `tasks` > 1 tasks without a PMI that MPI could use.
        case slurmWithoutPMI(tasks: Int)
    }

    public let launcher: Launcher
    /// The job's size as the launcher announced it, with the variable that said so (nil: not announced).
    public let worldSize: Int?
    public let worldSizeVariable: String?
    /// Ranks of this job on this host, when the launcher says (srun: the largest of its per-node counts,
    /// so an uneven layout never oversubscribes a host's cores).
    public let localRanks: Int?

    public var usesMPI: Bool {
        switch launcher {
        case .mpirun, .pmix, .pmi: return true
        case .none, .slurmWithoutPMI: return false
        }
    }

    /// How error messages name the launcher.
    public var launcherName: String {
        switch launcher {
        case .none: return "no launcher"
        case .mpirun: return "Open MPI's mpirun"
        case .pmix: return "a PMIx launcher (srun --mpi=pmix)"
        case .pmi: return "a PMI-2 launcher (srun --mpi=pmi2)"
        case .slurmWithoutPMI: return "srun without a PMI"
        }
    }

    public init(environment: [String: String] = ProcessInfo.processInfo.environment) {
        func int(_ name: String) -> Int? { environment[name].flatMap { Int($0) } }
        let slurmTasks = int("SLURM_STEP_NUM_TASKS")
        let slurmLocal = environment["SLURM_STEP_TASKS_PER_NODE"].flatMap(Self.largestTaskCount)
        // Open MPI's variables win: mpirun inside a Slurm allocation starts its daemons with srun, whose
        // SLURM_STEP_* (one task per node) every rank inherits.
        if let size = int("OMPI_COMM_WORLD_SIZE") {
            self.init(.mpirun, size, "OMPI_COMM_WORLD_SIZE", int("OMPI_COMM_WORLD_LOCAL_SIZE"))
        } else if environment["PMIX_RANK"] != nil {
            self.init(.pmix, slurmTasks, slurmTasks == nil ? nil : "SLURM_STEP_NUM_TASKS", slurmLocal)
        } else if environment["PMI_RANK"] != nil || environment["PMI_FD"] != nil {
            let size = int("PMI_SIZE") ?? slurmTasks
            self.init(.pmi, size, int("PMI_SIZE") != nil ? "PMI_SIZE" : (size == nil ? nil : "SLURM_STEP_NUM_TASKS"), slurmLocal)
        } else if let tasks = slurmTasks, tasks > 1 {
            self.init(.slurmWithoutPMI(tasks: tasks), tasks, "SLURM_STEP_NUM_TASKS", slurmLocal)
        } else {
            self.init(.none, nil, nil, nil)
        }
    }

    private init(_ launcher: Launcher, _ size: Int?, _ variable: String?, _ local: Int?) {
        self.launcher = launcher
        worldSize = size
        worldSizeVariable = variable
        localRanks = local
    }

    /// Slurm's per-node task counts, e.g. "4(x2),3" (4 on two nodes, 3 on one): the largest, or nil
    /// when the text is not in that form.
    public static func largestTaskCount(_ text: String) -> Int? {
        var largest: Int?
        for item in text.split(separator: ",", omittingEmptySubsequences: false) {
            let count = item.split(separator: "(", maxSplits: 1).first.map(String.init) ?? ""
            guard let n = Int(count), n >= 0 else { return nil }
            if item.contains("(") {
                let repeats = item.drop { $0 != "(" }
                guard repeats.hasPrefix("(x"), repeats.hasSuffix(")"), Int(repeats.dropFirst(2).dropLast()) != nil else { return nil }
            }
            largest = max(largest ?? 0, n)
        }
        return largest
    }

    /// Refuses a launch MPI cannot serve: before MPI_Init, srun's tasks without a PMI; after it,
    /// `mpiWorldSize` (nil before) differing from what the launcher announced (an Open MPI that cannot
    /// talk to the launcher's PMI makes every task a world of 1).
    public func check(mpiWorldSize: Int? = nil) throws {
        if case .slurmWithoutPMI(let tasks) = launcher {
            throw CommunicatorError.invalid("srun started this as one of \(tasks) tasks without a PMI that Open MPI can use, so each would train alone; run `srun --mpi=pmix ...` (see Docs/DISTRIBUTED.md) or mpirun")
        }
        if let size = worldSize, let actual = mpiWorldSize, actual != size, let variable = worldSizeVariable {
            throw CommunicatorError.invalid("\(launcherName) announced \(size) processes (\(variable)) but MPI_Init joined a world of \(actual); this Open MPI cannot use that launcher's PMI (check `ompi_info | grep 'MCA pmix'`; Debian's build needs `srun --mpi=pmix`)")
        }
    }
}
