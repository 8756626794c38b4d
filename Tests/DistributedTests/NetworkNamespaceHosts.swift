import Foundation
import XCTest

/// Two "hosts" on one machine: two Linux network namespaces joined by a veth pair, each with its own
/// loopback and one address on a private /24 (10.77.0.1 and 10.77.0.2). They share the file system (the
/// binary, recipe and output folder are at the same paths on both, as a shared file system gives real
/// hosts), but not the network: a rank in one reaches the other only over TCP through the veth.
///
/// mpirun runs inside the first namespace; for the second it runs an "ssh" (`plm_rsh_agent`) that this
/// type writes, which enters the namespace named by the host argument instead of logging in.
final class NetworkNamespaceHosts {
    /// Every namespace this type creates starts with this, then the creating process's id, so leftovers
    /// of a test process that died (and only those) can be deleted on the next run.
    static let prefix = "sfmh-"
    /// The interface name on both hosts (as every host of a cluster may call its NIC eth0).
    static let interface = "sfnet0"
    static let addresses = ["10.77.0.1", "10.77.0.2"]

    let namespaces: [String]
    let directory: String
    var hostfile: String { directory + "/hostfile" }
    var agent: String { directory + "/rsh-agent.sh" }
    /// One line per launch through the agent: "HOST -> NAMESPACE: COMMAND".
    var agentLog: String { directory + "/agent.log" }

    /// Why namespaces cannot be made here, or nil when they can: the only reasons a test may skip.
    static func unavailableReason() -> String? {
        if geteuid() != 0 { return "not root: creating network namespaces needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN)" }
        if ipTool == nil { return "the `ip` tool (Debian package iproute2) is not installed" }
        return nil
    }

    static var ipTool: String? {
        let path = (ProcessInfo.processInfo.environment["PATH"] ?? "") + ":/usr/sbin:/sbin:/usr/bin:/bin"
        return path.split(separator: ":").map { "\($0)/ip" }.first { access($0, X_OK) == 0 }
    }

    /// Creates both hosts. A failure to create the first namespace for lack of privilege (a container
    /// without CAP_SYS_ADMIN) is an XCTSkip naming `ip`'s message; any later failure is an error.
    init() throws {
        if let reason = Self.unavailableReason() { throw XCTSkip(reason) }
        Self.deleteLeftovers()
        let tag = "\(Self.prefix)\(getpid())-\(UInt16.random(in: 0...UInt16.max))"
        namespaces = [tag + "-a", tag + "-b"]
        directory = NSTemporaryDirectory() + tag
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let first = try Self.ip(["netns", "add", namespaces[0]])
        if first.failed {
            try? FileManager.default.removeItem(atPath: directory)
            let reason = first.stderr.trimmingCharacters(in: .whitespacesAndNewlines)
            if reason.contains("Operation not permitted") || reason.contains("Permission denied") {
                throw XCTSkip("network namespaces cannot be created here (`ip netns add`: \(reason))")
            }
            throw HostsError("ip netns add \(namespaces[0]) failed: \(reason)")
        }
        do { try build() } catch { tearDown(); throw error }
    }

    private func build() throws {
        let (a, b) = (namespaces[0], namespaces[1])
        try Self.must(["netns", "add", b])
        // Created directly inside the namespaces, so concurrent runs never collide on names in the root one.
        try Self.must(["-n", a, "link", "add", Self.interface, "type", "veth", "peer", "name", Self.interface, "netns", b])
        for (ns, address) in zip(namespaces, Self.addresses) {
            try Self.must(["-n", ns, "addr", "add", address + "/24", "dev", Self.interface])
            try Self.must(["-n", ns, "link", "set", "lo", "up"])
            try Self.must(["-n", ns, "link", "set", Self.interface, "up"])
        }
        try Data(Self.addresses.map { "\($0) slots=1\n" }.joined().utf8).write(to: URL(fileURLWithPath: hostfile))
        // ssh's contract: `agent HOST COMMAND...`, the command words joined and run by the remote shell.
        let cases = zip(Self.addresses, namespaces).map { "  \($0)) ns=\($1) ;;" }.joined(separator: "\n")
        try Data("""
        #!/bin/sh
        host="$1"; shift
        case "$host" in
        \(cases)
          *) echo "rsh-agent: unknown host '$host'" >&2; exit 255 ;;
        esac
        echo "$host -> $ns: $*" >> '\(agentLog)'
        exec '\(Self.ipTool!)' netns exec "$ns" /bin/sh -c "$*"

        """.utf8).write(to: URL(fileURLWithPath: agent))
        chmod(agent, 0o755)
    }

    /// mpirun over the two hosts, one rank each, TCP only (`btl tcp,self`: no shared memory), daemons
    /// and ranks both on the veth interface, started inside the first host; `options` are more mpirun
    /// options.
    func mpirun(_ program: [String], options: [String] = []) -> [String] {
        [Self.ipTool!, "netns", "exec", namespaces[0], "mpirun", "-np", "2", "--hostfile", hostfile,
         "--mca", "plm_rsh_agent", agent,
         "--mca", "oob_tcp_if_include", Self.interface,
         "--mca", "btl", "tcp,self", "--mca", "btl_tcp_if_include", Self.interface] + options + program
    }

    /// Bytes sent plus received on host `index`'s veth interface.
    func interfaceBytes(host index: Int) throws -> Int {
        let run = try Self.ip(["netns", "exec", namespaces[index], "cat",
                               "/sys/class/net/\(Self.interface)/statistics/tx_bytes",
                               "/sys/class/net/\(Self.interface)/statistics/rx_bytes"])
        let numbers = run.stdout.split(separator: "\n").compactMap { Int($0) }
        guard !run.failed, numbers.count == 2 else { throw HostsError("cannot read the byte counters of \(namespaces[index]): \(run.stderr)") }
        return numbers[0] + numbers[1]
    }

    /// The processes living in host `index` (its orted and ranks while a job runs).
    func processes(host index: Int) -> [pid_t] {
        let run = try? Self.ip(["netns", "pids", namespaces[index]])
        return (run?.stdout ?? "").split(separator: "\n").compactMap { pid_t($0) }
    }

    /// SIGKILL to every process of host `index`: the host is gone. Returns the processes killed.
    @discardableResult
    func killHost(_ index: Int) -> [pid_t] {
        let pids = processes(host: index)
        for pid in pids { kill(pid, SIGKILL) }
        return pids
    }

    /// Takes host `index` off the network without ending anything on it (a host that lost power or its
    /// network): its address is removed, so what is sent to it is dropped and nothing it sends arrives,
    /// while the other end's link stays up and no connection is closed: its peers just stop hearing.
    func disconnectHost(_ index: Int) throws {
        try Self.must(["-n", namespaces[index], "addr", "flush", "dev", Self.interface])
    }

    /// Kills whatever still runs in the namespaces and deletes them and the directory; safe to call twice.
    func tearDown() {
        for ns in namespaces { Self.delete(ns) }
        try? FileManager.default.removeItem(atPath: directory)
    }

    private static func delete(_ ns: String) {
        let pids = ((try? ip(["netns", "pids", ns]))?.stdout ?? "").split(separator: "\n").compactMap { pid_t($0) }
        for pid in pids { kill(pid, SIGKILL) }
        _ = try? ip(["netns", "del", ns])
    }

    /// Deletes namespaces of this prefix whose creating process no longer exists (a run that crashed).
    static func deleteLeftovers() {
        let list = (try? ip(["netns", "list"]))?.stdout ?? ""
        for line in list.split(separator: "\n") {
            let name = String(line.split(separator: " ").first ?? "")
            guard name.hasPrefix(prefix), let owner = pid_t(name.dropFirst(prefix.count).prefix { $0.isNumber }) else { continue }
            if kill(owner, 0) != 0 && errno == ESRCH { delete(name) }
        }
    }

    @discardableResult
    static func ip(_ arguments: [String]) throws -> BoundedRun {
        try BoundedProcess.run([ipTool!] + arguments, timeout: 10)
    }

    private static func must(_ arguments: [String]) throws {
        let run = try ip(arguments)
        if run.failed { throw HostsError("ip \(arguments.joined(separator: " ")) failed: \(run.stderr)") }
    }
}

struct HostsError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
