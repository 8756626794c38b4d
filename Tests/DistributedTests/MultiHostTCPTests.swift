import Foundation
import XCTest
import Formats
import SafeTensors

/// A job on two "hosts" (`NetworkNamespaceHosts`: two network namespaces joined by a veth pair) launched
/// the way a cluster is: mpirun with a hostfile of two addresses, slots=1 each, daemons started through
/// an rsh agent, MPI over TCP only on the named interface. ZeRO-2 training there must equal one process
/// (per-step losses and every exported tensor within 1e-5 relative), its traffic must have crossed the
/// veth, and killing one host must end the job within seconds with a non-zero exit and mpirun's message.
///
/// Skips only where namespaces cannot be made (not root, no `ip`, no CAP_SYS_ADMIN); as root on a
/// normal machine or CI container it runs.
final class MultiHostTCPTests: XCTestCase {
    typealias T = TrainingEquivalenceTests
    let bin = BoundedProcess.binary

    func makeHosts() throws -> NetworkNamespaceHosts {
        guard FileManager.default.isExecutableFile(atPath: bin) else {
            throw HostsError("swift-finetune is not built beside the tests at \(bin) (swift build --build-tests)")
        }
        let hosts = try NetworkNamespaceHosts()
        addTeardownBlock { hosts.tearDown() }
        return hosts
    }

    /// Losses per step (metrics.jsonl) and the exported tensors of a finished run.
    func outcome(_ out: String) throws -> T.Result {
        let metrics = try String(contentsOfFile: out + "/metrics.jsonl", encoding: .utf8)
        let losses = try metrics.split(separator: "\n").compactMap { try JSONValue.parse(String($0))["loss"]?.doubleValue }
        let file = try SafeTensorsFile(path: out + "/final/model.safetensors")
        return T.Result(losses: losses, weights: try Dictionary(uniqueKeysWithValues: file.names.map { ($0, try file.floats($0)) }))
    }

    func testZeRO2OnTwoHostsOverTCPEqualsOneProcess() throws {
        let hosts = try makeHosts()
        let work = hosts.directory
        // 4 steps of 8 rows: one process accumulates 4 micro-batches of 2, each host 2.
        let (oneRecipe, oneOut) = try T.writeRecipe(ranks: 1, stage: 0, work: work, name: "one")
        let single = try BoundedProcess.run([bin, oneRecipe], timeout: 60)
        XCTAssertFalse(single.failed, single.stderr)
        let reference = try outcome(oneOut)
        XCTAssertEqual(reference.losses.count, 4)

        let (recipe, out) = try T.writeRecipe(ranks: 2, stage: 2, work: work, name: "two-hosts")
        let before = try hosts.interfaceBytes(host: 0)
        let run = try BoundedProcess.run(hosts.mpirun([bin, recipe]), timeout: 60)
        XCTAssertFalse(run.failed, "exit \(run.exitCode)\n\(run.stderr)")
        let traffic = try hosts.interfaceBytes(host: 0) - before
        let launches = (try? String(contentsOfFile: hosts.agentLog, encoding: .utf8)) ?? ""
        let twoHosts = try outcome(out)

        // The second host's daemon was started through the agent, in its own namespace.
        XCTAssertTrue(launches.hasPrefix("10.77.0.2 -> \(hosts.namespaces[1]): ") && launches.contains("orted"), launches)
        XCTAssertTrue(run.stderr.contains("ZeRO-2, 2 ranks"), run.stderr)
        // Every step reduce-scatters half the f32 gradient out of host 0 and all-gathers half the
        // parameters in: at least 4 steps × 116,288 parameters × 4 bytes crossed the veth.
        XCTAssertGreaterThan(traffic, 4 * 116_288 * 4, "bytes on \(NetworkNamespaceHosts.interface) of host 0")

        // Tolerance: 1e-5 relative for per-step losses and for every exported tensor (max |a−b| / max |b|).
        XCTAssertEqual(twoHosts.losses.count, reference.losses.count)
        for (a, b) in zip(twoHosts.losses, reference.losses) {
            XCTAssertLessThan(abs(a - b) / abs(b), 1e-5, "losses \(twoHosts.losses) vs \(reference.losses)")
        }
        XCTAssertEqual(Set(twoHosts.weights.keys), Set(reference.weights.keys))
        var worst: Float = 0
        for (name, ref) in reference.weights {
            let w = try XCTUnwrap(twoHosts.weights[name], name)
            let err = zip(w, ref).map { abs($0 - $1) }.max()! / ref.map(abs).max()!
            worst = max(worst, err)
            XCTAssertLessThan(err, 1e-5, name)
        }
        print("""
        netns: \(hosts.mpirun([bin, recipe]).joined(separator: " "))
        netns: agent launched: \(launches.trimmingCharacters(in: .newlines))
        netns: one process losses \(reference.losses)
        netns: two hosts   losses \(twoHosts.losses)
        netns: worst tensor error \(worst) over \(reference.weights.count) tensors; \(traffic) bytes through host 0's veth; \
        2-host run \(String(format: "%.2f", run.seconds)) s
        """)
    }

    func testKillingOneHostEndsTheJobInSeconds() throws {
        let hosts = try makeHosts()
        let (recipe, out) = try T.writeRecipe(ranks: 2, stage: 2, work: hosts.directory, name: "killed", steps: 5000)
        let killer = HostKiller(startedWhen: out + "/metrics.jsonl") { hosts.killHost(1) }
        Thread { killer.run() }.start()
        let run = try BoundedProcess.run(hosts.mpirun([bin, recipe, "output.save_steps=100000"]), timeout: 60)
        let killedAfter = try XCTUnwrap(killer.secondsBeforeKill, "training never started on both hosts: \(run.stderr)")
        let after = run.seconds - killedAfter
        XCTAssertFalse(killer.killed.isEmpty, "host 1 had no processes to kill")
        XCTAssertTrue(run.failed && !run.timedOut, "exit \(run.exitCode): \(run.stderr)")
        XCTAssertLessThan(after, 20, "the job must end within seconds of losing a host")
        // mpirun's own words for a host that went away: its daemon's connection, or a peer's TCP link.
        let messages = ["unable to reliably start one or more daemons", "lost communication with a remote daemon",
                        "unexpectedly disconnected"]
        let said = messages.filter { run.stderr.contains($0) }
        XCTAssertFalse(said.isEmpty, "mpirun gave no reason: \(run.stderr)")
        XCTAssertTrue(hosts.processes(host: 0).isEmpty, "rank 0 outlived the job: \(hosts.processes(host: 0))")
        let steps = ((try? String(contentsOfFile: out + "/metrics.jsonl", encoding: .utf8)) ?? "").split(separator: "\n").count
        print("""
        netns: killed host 1 (pids \(killer.killed)) at step \(steps) of 5000; mpirun exited \(run.exitCode) \
        \(String(format: "%.2f", after)) s later, saying: \(said)
        netns: mpirun stderr after the kill:
        \(run.stderr.split(separator: "\n").filter { !$0.hasPrefix("[") }.suffix(30).joined(separator: "\n"))
        """)
    }

    /// A host that goes silent (its address gone: no process ends, no connection is closed) is only
    /// noticed by TCP keepalive on mpirun's daemon connections. Open MPI's defaults wait 300 s + 9 × 20 s;
    /// with the settings Docs/DISTRIBUTED.md recommends (3 s idle, then 3 probes 1 s apart) the job must
    /// end within 20 s of the loss with mpirun's "lost communication with a remote daemon".
    func testSilentHostEndsTheJobWithKeepalive() throws {
        let hosts = try makeHosts()
        let (recipe, out) = try T.writeRecipe(ranks: 2, stage: 2, work: hosts.directory, name: "silent", steps: 5000)
        let killer = HostKiller(startedWhen: out + "/metrics.jsonl") {
            let pids = hosts.processes(host: 1)
            try? hosts.disconnectHost(1)
            return pids
        }
        Thread { killer.run() }.start()
        let keepalive = ["--mca", "oob_tcp_keepalive_time", "3", "--mca", "oob_tcp_keepalive_intvl", "1",
                         "--mca", "oob_tcp_keepalive_probes", "3"]
        let run = try BoundedProcess.run(hosts.mpirun([bin, recipe, "output.save_steps=100000"], options: keepalive), timeout: 60)
        let lostAfter = try XCTUnwrap(killer.secondsBeforeKill, "training never started on both hosts: \(run.stderr)")
        let after = run.seconds - lostAfter
        XCTAssertFalse(killer.killed.isEmpty, "host 1 had no processes when it went silent")
        XCTAssertTrue(run.failed && !run.timedOut, "exit \(run.exitCode): \(run.stderr)")
        XCTAssertLessThan(after, 20, "keepalive must notice the silent host within seconds")
        XCTAssertTrue(run.stderr.contains("lost communication with a remote daemon"), run.stderr)
        print("netns: host 1 went silent; mpirun exited \(run.exitCode) \(String(format: "%.2f", after)) s later (keepalive 3 s + 3 × 1 s)")
    }
}

/// Takes a host down (`action`, which returns the processes it hit) once training is under way on both
/// (2 steps logged).
final class HostKiller: @unchecked Sendable {
    let startedWhen: String, action: () -> [pid_t]
    /// Seconds from the start to the kill (nil: training never started).
    private(set) var secondsBeforeKill: Double?
    private(set) var killed: [pid_t] = []
    private let started = Date()

    init(startedWhen: String, action: @escaping () -> [pid_t]) {
        self.startedWhen = startedWhen
        self.action = action
    }

    func run() {
        while Date().timeIntervalSince(started) < 50 {
            usleep(50_000)
            let lines = ((try? String(contentsOfFile: startedWhen, encoding: .utf8)) ?? "").split(separator: "\n").count
            guard lines >= 2 else { continue }
            secondsBeforeKill = Date().timeIntervalSince(started)
            killed = action()
            return
        }
    }
}
