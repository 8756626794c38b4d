/// A piece of the block schedule (BlockSchedule.swift), as timers and profilers see it.
public enum SchedulePiece: Hashable, Sendable {
    /// The token embedding (group 0).
    case embedding
    /// Block `l` (group l + 1): its attention, MLP and norms.
    case block(Int)
    /// Final norm, LM head and loss: one fused kernel computes the loss and its gradient, so this piece
    /// has forward and backward in one interval (reported with `backward` false).
    case headAndLoss
    /// Inside `.block(l)`: its attention (QKV, the attention products, the output projection and its
    /// residual), and its MLP (the projections, the activation and its residual). The rest of the block
    /// is its norms. A timer that sums pieces must not add these to their block a second time.
    case attention(Int), mlp(Int)

    /// True for the pieces inside a block's interval.
    public var isInsideBlock: Bool {
        switch self {
        case .attention, .mlp: return true
        default: return false
        }
    }
}

/// Told when each piece of the schedule starts and ends its compute (not the hooks' communication, which
/// the communicator sees). Set on `TrainingState.timer`; nil costs nothing. Only `attention` and `mlp`
/// nest, inside their block's interval; otherwise each `begin` is followed by its `end` first.
public protocol ScheduleTimer: AnyObject {
    func begin(_ piece: SchedulePiece, backward: Bool)
    func end(_ piece: SchedulePiece, backward: Bool)
}
