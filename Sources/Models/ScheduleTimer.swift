/// A piece of the block schedule (BlockSchedule.swift), as timers and profilers see it.
public enum SchedulePiece: Hashable, Sendable {
    /// The token embedding (group 0).
    case embedding
    /// Block `l` (group l + 1): its attention, MLP and norms.
    case block(Int)
    /// Final norm, LM head and loss: one fused kernel computes the loss and its gradient, so this piece
    /// has forward and backward in one interval (reported with `backward` false).
    case headAndLoss
}

/// Told when each piece of the schedule starts and ends its compute (not the hooks' communication, which
/// the communicator sees). Set on `TrainingState.timer`; nil costs nothing. Calls nest never: each
/// `begin` is followed by its `end` before the next `begin`.
public protocol ScheduleTimer: AnyObject {
    func begin(_ piece: SchedulePiece, backward: Bool)
    func end(_ piece: SchedulePiece, backward: Bool)
}
