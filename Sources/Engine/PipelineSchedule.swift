import Distributed
import Foundation
import Models
import Tensors

/// One instruction of a stage's part of an optimizer step.
public enum PipelineInstruction: Equatable, Sendable {
    case forward(Int)
    case backward(Int)
}

/// DeepSpeed's TrainSchedule (1F1B, PipeDream-Flush) for one stage: `min(P − stage − 1, M)` warm-up
/// forwards, then one forward and one backward alternating until every forward has run, then the
/// cool-down backwards. Micro-batches go through every stage in order; at most P − stage are in flight
/// on a stage, so its activations are bounded by the stage's depth, not by M.
public enum PipelineSchedule {
    public static func train(stage s: Int, stages P: Int, microBatches M: Int) -> [PipelineInstruction] {
        let warmup = Swift.min(P - s - 1, M)
        var out: [PipelineInstruction] = (0..<warmup).map { .forward($0) }
        for i in 0..<(M - warmup) {
            out.append(.forward(warmup + i))
            out.append(.backward(i))
        }
        for i in (M - warmup)..<M { out.append(.backward(i)) }
        return out
    }

    /// The fraction of a step a stage idles in an ideal 1F1B pipeline of equal stages: (P − 1)/(M + P − 1).
    public static func idealBubble(stages P: Int, microBatches M: Int) -> Double {
        Double(P - 1) / Double(M + P - 1)
    }
}

/// Where a stage spent one step's schedule: running its pieces, or waiting for a neighbour's message.
public struct PipelineTiming: Sendable {
    public init() {}
    public var computeSeconds = 0.0
    public var waitSeconds = 0.0
    public var bubbleFraction: Double { waitSeconds / Swift.max(computeSeconds + waitSeconds, 1e-12) }
}

extension TrainingEngine {
    /// One optimizer step's forwards and backwards on this pipeline stage, in the 1F1B order, over the
    /// step's micro-batches (the same list on every stage of a replica; nil = a micro-batch without
    /// tokens, skipped by every stage alike). Activations go to the next stage and their gradients to the
    /// previous one by non-blocking point-to-point messages (tag 2m for micro-batch m's activations, 2m+1
    /// for its gradient); the receive the next instruction needs is posted before this one computes.
    /// Gradients accumulate as `microStep`'s do. Returns the replica's summed token loss and label count
    /// (computed on the last stage and summed over the pipeline group, so every stage returns them).
    public func pipelineMicroSteps(_ batches: [MicroBatch?]) throws -> (lossSum: Double, labelTokens: Int) {
        guard let p = pipeline else { throw PipelineError.unsupported("pipelineMicroSteps on an engine without a pipeline placement") }
        releaseForeignParameters()
        tiedRows = p.holdsTiedReplica || p.ownsTiedWeight
            ? TiedEmbeddingRows(layout: trainableLayout, config: model.config, batches: batches) : .none
        let order = PipelineSchedule.train(stage: p.stage, stages: p.stages, microBatches: batches.count)
        let run = PipelineRun(engine: self, placement: p, batches: batches)
        for (k, instruction) in order.enumerated() {
            if k + 1 < order.count { try run.postReceive(for: order[k + 1]) }
            switch instruction {
            case .forward(let m): try run.forward(m)
            case .backward(let m): try run.backward(m)
            }
        }
        try run.finish()
        lastPipelineTiming = run.timing
        var totals = [run.lossSum, Double(run.labelTokens)]
        try p.pipeline.allReduce(&totals, count: 2, op: .sum)
        return (totals[0], Int(totals[1]))
    }
}

/// The state of one stage's schedule over one step: a training state per micro-batch in flight, the
/// messages in flight, and the loss so far.
final class PipelineRun {
    let engine: TrainingEngine
    let p: PipelinePlacement
    let batches: [MicroBatch?]
    let model: TransformerModel
    let hidden: Int
    private var states: [Int: TrainingState] = [:]
    /// States whose micro-batch has finished here, with the gradient send still reading them.
    private var free: [(TrainingState, PendingCollective?)] = []
    private var activationSends: [Int: PendingCollective] = [:]
    private var gradientSends: [PendingCollective] = []
    private var receives: [Int: PendingCollective] = [:]
    private let maxTokens: Int
    var lossSum = 0.0
    var labelTokens = 0
    var timing = PipelineTiming()

    init(engine: TrainingEngine, placement: PipelinePlacement, batches: [MicroBatch?]) {
        self.engine = engine
        p = placement
        self.batches = batches
        model = engine.model
        hidden = engine.model.config.hiddenSize
        let needed = Swift.max(1, batches.map { $0?.tokens.count ?? 0 }.max() ?? 1)
        // States from earlier steps are reused while they are large enough.
        maxTokens = Swift.max(needed, engine.pipelineStates.map(\.maxTokens).min() ?? 0)
        if engine.pipelineStates.contains(where: { $0.maxTokens < needed }) { engine.pipelineStates = [] }
        free = engine.pipelineStates.map { ($0, nil) }
        engine.pipelineStates = []
    }

    private func bytes(_ b: MicroBatch) -> Int { b.tokens.count * hidden * MemoryLayout<Float>.size }

    private func state(for m: Int) throws -> TrainingState {
        if let s = states[m] { return s }
        let s: TrainingState
        if let (reused, pending) = free.popLast() {
            try timed(waiting: true) { try pending?.wait() }
            s = reused
        } else {
            s = engine.makePipelineState(tokens: maxTokens)
        }
        states[m] = s
        return s
    }

    /// Posts the receive `instruction` will need, if any and not yet posted: activations for a forward
    /// on every stage but the first, the gradient for a backward on every stage but the last.
    func postReceive(for instruction: PipelineInstruction) throws {
        switch instruction {
        case .forward(let m):
            guard !p.isFirst, let b = batches[m], receives[2 * m] == nil else { return }
            let s = try state(for: m)
            receives[2 * m] = try transfer(peer: p.stage - 1, "receiving the activations of micro-batch \(m)") {
                try p.pipeline.startReceive(UnsafeMutableRawPointer(s.blockInput(p.blocks.lowerBound)), bytes: bytes(b),
                                            from: p.stage - 1, tag: 2 * m)
            }
        case .backward(let m):
            guard !p.isLast, let b = batches[m], receives[2 * m + 1] == nil, let s = states[m] else { return }
            receives[2 * m + 1] = try transfer(peer: p.stage + 1, "receiving the gradient of micro-batch \(m)") {
                try p.pipeline.startReceive(UnsafeMutableRawPointer(s.residualGradient), bytes: bytes(b), from: p.stage + 1, tag: 2 * m + 1)
            }
        }
    }

    private func awaitReceive(tag: Int, peer: Int, _ what: String) throws {
        guard let r = receives.removeValue(forKey: tag) else { return }
        try timed(waiting: true) { try transfer(peer: peer, what) { try r.wait() } }
    }

    func forward(_ m: Int) throws {
        guard let b = batches[m] else { return }
        if p.isFirst {
            _ = try state(for: m)
        } else {
            try postReceive(for: .forward(m))
            try awaitReceive(tag: 2 * m, peer: p.stage - 1, "receiving the activations of micro-batch \(m)")
        }
        let s = try state(for: m)
        try timed(waiting: false) {
            if p.isFirst { try model.embedForward(b, state: s) }
            try model.blocksForward(p.blocks, b, state: s)
        }
        if p.isLast {
            try timed(waiting: false) {
                let r = try model.headForwardBackward(b, grads: engine.grads, state: s)
                try engine.finishTiedHeadGradients()
                lossSum += r.lossSum
                labelTokens += r.labelTokens
            }
        } else {
            activationSends[m] = try transfer(peer: p.stage + 1, "sending the activations of micro-batch \(m)") {
                try p.pipeline.startSend(UnsafeRawPointer(s.blockInput(p.blocks.upperBound)), bytes: bytes(b), to: p.stage + 1, tag: 2 * m)
            }
        }
    }

    func backward(_ m: Int) throws {
        guard let b = batches[m], let s = states[m] else { return }
        if !p.isLast {
            // Recomputing the last block (activation checkpointing) rewrites the buffer that was sent.
            if let send = activationSends.removeValue(forKey: m) {
                try timed(waiting: true) { try transfer(peer: p.stage + 1, "sending the activations of micro-batch \(m)") { try send.wait() } }
            }
            try postReceive(for: .backward(m))
            try awaitReceive(tag: 2 * m + 1, peer: p.stage + 1, "receiving the gradient of micro-batch \(m)")
        }
        try timed(waiting: false) {
            try model.blocksBackward(p.blocks, b, grads: engine.grads, state: s)
            if p.isFirst { try model.embedBackward(b, grads: engine.grads, state: s) }
        }
        var pending: PendingCollective?
        if !p.isFirst {
            pending = try transfer(peer: p.stage - 1, "sending the gradient of micro-batch \(m)") {
                try p.pipeline.startSend(UnsafeRawPointer(s.residualGradient), bytes: bytes(b), to: p.stage - 1, tag: 2 * m + 1)
            }
        }
        states[m] = nil
        free.append((s, pending))
    }

    /// Every message of the step completed (their buffers are about to be reused).
    func finish() throws {
        for (m, send) in activationSends { try transfer(peer: p.stage + 1, "sending the activations of micro-batch \(m)") { try send.wait() } }
        activationSends = [:]
        for (_, pending) in free { try timed(waiting: true) { try transfer(peer: p.stage - 1, "sending a gradient") { try pending?.wait() } } }
        engine.pipelineStates = free.map(\.0) + states.values
        free = []
        guard receives.isEmpty else {
            throw PipelineError.unsupported("stage \(p.stage): \(receives.count) posted receives were never consumed")
        }
    }

    private func transfer<T>(peer: Int, _ what: String, _ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let e as PipelineError {
            throw e
        } catch {
            throw PipelineError.transfer(stage: p.stage, peer: peer, what: what, underlying: error)
        }
    }

    private func timed(waiting: Bool, _ body: () throws -> Void) throws {
        let start = DispatchTime.now().uptimeNanoseconds
        defer {
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            if waiting { timing.waitSeconds += seconds } else { timing.computeSeconds += seconds }
        }
        try body()
    }
}
