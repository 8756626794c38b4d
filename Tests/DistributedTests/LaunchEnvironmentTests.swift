import Foundation
import XCTest
import Distributed

/// Which launcher started a process, read from the environment before MPI_Init (`LaunchEnvironment`),
/// and the one Slurm path that can run here without Slurm: Open MPI's own direct-launch path, in which
/// a rank has no OMPI_ variable and joins its world through a PMIx server (srun --mpi=pmix's
/// slurmstepd on a cluster; here mpirun's daemon plays that server, the OMPI_ variables are removed
/// and srun's step variables added, so Open MPI's Slurm detection declares a direct launch).
final class LaunchEnvironmentTests: XCTestCase {
    typealias L = LaunchEnvironment

    func testNoLauncherIsOneProcess() throws {
        for env in [[:], ["SLURM_JOB_ID": "7", "SLURM_NTASKS": "4", "SLURM_PROCID": "0", "SLURM_NODELIST": "n[1-2]"],
                    ["SLURM_STEP_ID": "0", "SLURM_STEP_NUM_TASKS": "1"]] {
            // The second is a batch script of a 4-task job (not a step), the third `srun -n 1`.
            let l = L(environment: env)
            XCTAssertEqual(l.launcher, .none, "\(env)")
            XCTAssertFalse(l.usesMPI)
            XCTAssertNil(l.worldSize)
            XCTAssertNoThrow(try l.check())
            XCTAssertEqual(Distributed.announcedWorldSize(environment: env), 1)
            XCTAssertEqual(Distributed.localRanks(environment: env), 1)
        }
    }

    func testMPIRunWinsOverSlurmVariables() throws {
        let mpirun = ["OMPI_COMM_WORLD_SIZE": "8", "OMPI_COMM_WORLD_LOCAL_SIZE": "4", "PMIX_RANK": "5"]
        // mpirun inside an allocation starts one daemon per node with srun; ranks inherit its step variables.
        let inSlurm = mpirun.merging(["SLURM_STEP_ID": "0", "SLURM_STEP_NUM_TASKS": "2", "SLURM_STEP_TASKS_PER_NODE": "1(x2)"]) { a, _ in a }
        for env in [mpirun, inSlurm] {
            let l = L(environment: env)
            XCTAssertEqual(l.launcher, .mpirun)
            XCTAssertEqual(l.worldSize, 8)
            XCTAssertEqual(l.localRanks, 4)
            XCTAssertTrue(Distributed.launchedByMPI(environment: env))
            XCTAssertNoThrow(try l.check(mpiWorldSize: 8))
        }
    }

    func testSrunWithPMIxOrPMI2UsesMPI() throws {
        let step = ["SLURM_STEP_ID": "3", "SLURM_STEP_NUM_TASKS": "8", "SLURM_STEP_TASKS_PER_NODE": "4(x2)", "SLURM_PROCID": "5"]
        let pmix = L(environment: step.merging(["PMIX_RANK": "5", "PMIX_NAMESPACE": "slurm.pmix.7.3"]) { a, _ in a })
        XCTAssertEqual(pmix.launcher, .pmix)
        XCTAssertTrue(pmix.usesMPI)
        XCTAssertEqual(pmix.worldSize, 8)
        XCTAssertEqual(pmix.worldSizeVariable, "SLURM_STEP_NUM_TASKS")
        XCTAssertEqual(pmix.localRanks, 4)
        let pmi2 = L(environment: step.merging(["PMI_RANK": "5", "PMI_SIZE": "8", "PMI_FD": "9"]) { a, _ in a })
        XCTAssertEqual(pmi2.launcher, .pmi)
        XCTAssertEqual(pmi2.worldSize, 8)
        XCTAssertEqual(pmi2.worldSizeVariable, "PMI_SIZE")
        // A PMIx launcher that is not Slurm announces no size; MPI_Init's world is then taken as it is.
        let bare = L(environment: ["PMIX_RANK": "0"])
        XCTAssertEqual(bare.launcher, .pmix)
        XCTAssertNil(bare.worldSize)
        XCTAssertNoThrow(try bare.check(mpiWorldSize: 3))
        XCTAssertEqual(Distributed.localRanks(environment: ["PMIX_RANK": "0"]), 1)
    }

    /// An Open MPI that cannot reach the launcher's PMI makes every task a world of 1: refused by name.
    func testWorldSmallerThanAnnouncedIsRefused() throws {
        let l = L(environment: ["PMI_RANK": "1", "PMI_SIZE": "4"])
        XCTAssertNoThrow(try l.check())
        XCTAssertThrowsError(try l.check(mpiWorldSize: 1)) { error in
            XCTAssertTrue("\(error)".contains("a PMI-2 launcher (srun --mpi=pmi2) announced 4 processes (PMI_SIZE) but MPI_Init joined a world of 1"), "\(error)")
        }
    }

    func testSrunWithoutPMIIsRefusedBeforeMPI() throws {
        let l = L(environment: ["SLURM_STEP_ID": "0", "SLURM_STEP_NUM_TASKS": "4", "SLURM_PROCID": "2"])
        XCTAssertEqual(l.launcher, .slurmWithoutPMI(tasks: 4))
        XCTAssertFalse(l.usesMPI)
        XCTAssertThrowsError(try l.check()) { error in
            XCTAssertTrue("\(error)".contains("srun started this as one of 4 tasks without a PMI"), "\(error)")
            XCTAssertTrue("\(error)".contains("srun --mpi=pmix"), "\(error)")
        }
    }

    func testSlurmTaskCounts() {
        XCTAssertEqual(L.largestTaskCount("4"), 4)
        XCTAssertEqual(L.largestTaskCount("4(x3)"), 4)
        XCTAssertEqual(L.largestTaskCount("2(x3),5,1(x2)"), 5)
        for bad in ["", "x", "4(3)", "4(x)", "4,,2", "-1", "4(x2"] { XCTAssertNil(L.largestTaskCount(bad), bad) }
        let uneven = ["PMIX_RANK": "0", "SLURM_STEP_NUM_TASKS": "7", "SLURM_STEP_TASKS_PER_NODE": "3,2(x2)"]
        XCTAssertEqual(Distributed.localRanks(environment: uneven), 3, "the busiest node sets the thread count")
    }

    // MARK: the processes

    let bin = BoundedProcess.binary

    /// `mpirun -np N` whose ranks see what `srun -n TASKS --mpi=pmix` gives a task: the PMIx server's
    /// variables and Slurm's step variables, and no OMPI_ variable.
    func srunLike(ranks: Int, announcing tasks: Int, _ program: [String]) throws -> BoundedRun {
        let slurm = ["SLURM_JOB_ID=77", "SLURM_JOBID=77", "SLURM_NODELIST=localhost", "SLURM_STEP_ID=0",
                     "SLURM_STEP_NUM_TASKS=\(tasks)", "SLURM_STEP_TASKS_PER_NODE=\(tasks)"].flatMap { ["-x", $0] }
        let stripOpenMPI = #"for v in $(env | grep '^OMPI_' | cut -d= -f1); do unset "$v"; done; exec "$@""#
        return try BoundedProcess.run(["mpirun", "-np", "\(ranks)", "--oversubscribe"] + slurm + ["sh", "-c", stripOpenMPI, "sh"] + program,
                                      timeout: 20)
    }

    func testDirectLaunchThroughPMIxJoinsTheWorld() throws {
        let run = try srunLike(ranks: 2, announcing: 2, [bin, "_collective-selftest", "--steps", "2"])
        XCTAssertEqual(run.exitCode, 0, run.stderr)
        let ok = run.stdout.split(separator: "\n").filter { $0.hasPrefix("ok rank ") }.sorted()
        XCTAssertEqual(ok, (0..<2).map { "ok rank \($0) world 2 steps 2 pipeline stages 2" }, run.stdout)
    }

    func testDirectLaunchOfAnotherSizeIsRefused() throws {
        let run = try srunLike(ranks: 2, announcing: 3, [bin, "_collective-selftest", "--steps", "2"])
        XCTAssertTrue(run.failed && !run.timedOut, "exit \(run.exitCode)")
        XCTAssertTrue(run.stderr.contains("announced 3 processes (SLURM_STEP_NUM_TASKS) but MPI_Init joined a world of 2"), run.stderr)
    }

    func testSrunWithoutPMIEndsWithAMessage() throws {
        let run = try BoundedProcess.run([bin, "_collective-selftest"],
                                         environment: ["SLURM_JOB_ID": "77", "SLURM_STEP_ID": "0", "SLURM_STEP_NUM_TASKS": "2", "SLURM_PROCID": "1"],
                                         timeout: 20)
        XCTAssertEqual(run.exitCode, 1, run.stderr)
        XCTAssertTrue(run.stderr.contains("srun started this as one of 2 tasks without a PMI that Open MPI can use"), run.stderr)
        XCTAssertFalse(run.stdout.contains("ok rank"), run.stdout)
    }
}
