import Engine
import Formats
import Foundation

/// The ds_config keys this build maps, each onto the recipe key that means the same, with DeepSpeed's
/// semantics (deepspeed/runtime/config.py, lr_schedules.py, ops/adam) where a value is absent.
struct DeepSpeedMerge {
    var config: TrainingConfiguration
    /// The recipe before merging: what it set is judged on this, not on values earlier ds keys put in.
    let original: TrainingConfiguration
    let defaults: TrainingConfiguration
    let isExplicit: ((String) -> Bool)?
    let worldSize: Int
    var problems: [ConfigurationProblem] = []

    init(config: TrainingConfiguration, defaults: TrainingConfiguration, isExplicit: ((String) -> Bool)?, worldSize: Int) {
        self.config = config
        original = config
        self.defaults = defaults
        self.isExplicit = isExplicit
        self.worldSize = worldSize
    }

    /// Did the recipe set `recipeKey` itself?
    private func explicit<T: Equatable>(_ recipeKey: String, _ kp: WritableKeyPath<TrainingConfiguration, T>) -> Bool {
        isExplicit?(recipeKey) ?? (original[keyPath: kp] != defaults[keyPath: kp])
    }

    /// Puts a ds_config value into the recipe unless the recipe set the key to something else.
    private mutating func assign<T: Equatable>(_ s: DSSection, _ dsKey: String, _ value: T?, to recipeKey: String,
                                               _ kp: WritableKeyPath<TrainingConfiguration, T>) {
        guard let value else { return }
        if explicit(recipeKey, kp), original[keyPath: kp] != value {
            s.problem(dsKey, "the ds_config says \(Self.text(value)), the recipe's \(recipeKey) says \(Self.text(original[keyPath: kp])); make them agree or write \"auto\"")
            return
        }
        config[keyPath: kp] = value
    }

    private mutating func assign<T: Equatable>(_ s: DSSection, _ dsKey: String, _ v: DSValue<T>, to recipeKey: String,
                                               _ kp: WritableKeyPath<TrainingConfiguration, T>) {
        assign(s, dsKey, v.value, to: recipeKey, kp)
    }

    /// A value as a user wrote it: `nil` as null, an offload as its device and path.
    static func text<T>(_ value: T) -> String {
        if let o = value as? EngineOptions.Offload { return o.device.rawValue + (o.path.map { " at \($0)" } ?? "") }
        if let o = value as? Optional<Any> {
            switch o { case .none: return "null"; case .some(let v): return "\(v)" }
        }
        return "\(value)"
    }

    mutating func apply(_ root: DSSection) {
        // The pipeline's stage count decides how many data-parallel replicas the batch arithmetic counts.
        if let p = root.section("pipeline") { pipeline(p) }
        batch(root)
        switch root.double("gradient_clipping") {
        case .value(let v): assign(root, "gradient_clipping", Optional(v), to: "training.max_grad_norm", \.training.maxGradNorm)
        // DeepSpeed clips only when told to; a recipe that asks for clipping keeps it.
        case .absent where !explicit("training.max_grad_norm", \.training.maxGradNorm): config.training.maxGradNorm = 0
        default: break
        }
        if let o = root.section("optimizer") { optimizer(o) }
        if let s = root.section("scheduler") { scheduler(s) }
        precision(root)
        if let z = root.section("zero_optimization") { zero(z) }
        if let a = root.section("activation_checkpointing") {
            // The section configures DeepSpeed's checkpointing API; here it turns block checkpointing on.
            assign(root, "activation_checkpointing", true, to: "engine.activation_checkpointing", \.engine.activationCheckpointing)
            a.noEffect(["partition_activations", "contiguous_memory_optimization", "cpu_checkpointing", "number_checkpoints",
                        "synchronize_checkpoint_boundary", "profile"])
            a.finish()
        }
        monitoring(root)
        root.noEffect(["prescale_gradients", "gradient_predivide_factor", "communication_data_type", "zero_allow_untested_optimizer",
                       "zero_force_ds_cpu_optimizer", "memory_breakdown", "dump_state", "sparse_gradients", "disable_allgather",
                       "seq_parallel_communication_data_type", "checkpoint", "aio", "data_types", "graph_harvesting",
                       "use_data_before_expert_parallelism", "torch_autocast"])
        root.unsupported(["wandb", "comet", "comms_logger", "amp", "elasticity", "compression_training", "data_efficiency",
                          "curriculum_learning", "autotuning", "sparse_attention", "progressive_layer_drop", "eigenvalue",
                          "quantize_training", "hybrid_engine", "nebula", "tensor_parallel", "weight_quantization",
                          "sequence_parallel_size", "compile"], "this DeepSpeed feature")
    }

    /// The data-parallel replicas a batch is counted over: the world, or world / P under a pipeline
    /// (DeepSpeed's `dp_world_size` of the PipeDataParallelTopology). A world that P does not divide is
    /// left whole here; the recipe check reports it.
    private var replicas: Int {
        let stages = config.engine.pipeline.stages
        return stages > 1 && worldSize % stages == 0 ? worldSize / stages : worldSize
    }

    /// DeepSpeed's `pipeline` section (get_pipeline_config: stages "auto", partition "best", seed_layers,
    /// activation_checkpoint_interval, pipe_partitioned, grad_partitioned). "auto" and "best" are its
    /// defaults and keep the recipe's engine.pipeline; PipelineModule's partition methods map by name.
    private mutating func pipeline(_ s: DSSection) {
        defer { s.finish() }
        switch s.int("stages") {
        case .value(let n) where n < 1: s.problem("stages", "must be at least 1, got \(n)")
        case .value(let n): assign(s, "stages", n, to: "engine.pipeline.stages", \.engine.pipeline.stages)
        case .auto, .absent: break
        }
        if case .value(let name) = s.string("partition") {
            switch name.lowercased() {
            case "best": break
            case "parameters": assign(s, "partition", EngineOptions.Pipeline.Partition.parameters, to: "engine.pipeline.partition", \.engine.pipeline.partition)
            case "uniform": assign(s, "partition", EngineOptions.Pipeline.Partition.uniform, to: "engine.pipeline.partition", \.engine.pipeline.partition)
            case let n where n.hasPrefix("type:"):
                s.problem("partition", "partitioning by layer type ('\(name)') is not available in this build; use parameters, uniform or the recipe's engine.pipeline.partition list")
            default:
                s.problem("partition", "must be 'parameters', 'uniform' or 'best', got '\(name)'" + Suggestion.phrase(for: name, in: ["parameters", "uniform", "best"]))
            }
        }
        switch s.int("activation_checkpoint_interval") {
        case .value(0), .auto, .absent: break
        case .value(1): assign(s, "activation_checkpoint_interval", true, to: "engine.activation_checkpointing", \.engine.activationCheckpointing)
        case .value(let n):
            s.problem("activation_checkpoint_interval", "checkpoints every block (1) or none (0) in this build, got \(n)")
        }
        // Layer seeding only matters for random initialization; the partition flags shard activations
        // over tensor-parallel ranks, which this build does not have.
        s.noEffect(["seed_layers", "pipe_partitioned", "grad_partitioned"])
    }

    /// train_batch_size = micro × accumulation × ranks: any two give the third (DeepSpeed's
    /// `_set_batch_related_parameters`), "auto" takes the recipe's, a mismatch is an error.
    private mutating func batch(_ s: DSSection) {
        let t = config.training
        func given(_ v: DSValue<Int>, recipe: Int?) -> Int? {
            switch v { case .value(let x): return x; case .auto: return recipe; case .absent: return nil }
        }
        let tv = s.int("train_batch_size"), mv = s.int("train_micro_batch_size_per_gpu"), gv = s.int("gradient_accumulation_steps")
        let worldSize = replicas
        var tbs = given(tv, recipe: t.trainBatchSize ?? t.microBatchSize * t.gradientAccumulationSteps * worldSize)
        var micro = given(mv, recipe: t.microBatchSize), gas = given(gv, recipe: t.gradientAccumulationSteps)
        for (key, v) in [("train_batch_size", tbs), ("train_micro_batch_size_per_gpu", micro), ("gradient_accumulation_steps", gas)] {
            if let v, v < 1 { s.problem(key, "must be at least 1, got \(v)"); return }
        }
        switch (tbs, micro, gas) {
        case (nil, nil, nil): return  // the ds_config says nothing about batches
        case (.some(let b), .some(let m), nil): gas = b / m / worldSize
        case (.some(let b), nil, .some(let g)): micro = b / worldSize / g
        case (nil, .some(let m), .some(let g)): tbs = m * g * worldSize
        case (.some(let b), nil, nil): (micro, gas) = (b / worldSize, 1)
        case (nil, .some(let m), nil): (tbs, gas) = (m * worldSize, 1)
        case (nil, nil, .some): micro = t.microBatchSize; tbs = micro! * gas! * worldSize
        case (.some, .some, .some): break
        }
        guard let b = tbs, let m = micro, let g = gas, m >= 1, g >= 1, b == m * g * worldSize else {
            s.problem("train_batch_size", "train_batch_size \(tbs ?? 0) ≠ train_micro_batch_size_per_gpu \(micro ?? 0) × gradient_accumulation_steps \(gas ?? 0) × \(worldSize) \(worldSize == self.worldSize ? "rank(s)" : "data-parallel replica(s) (\(self.worldSize) ranks / \(config.engine.pipeline.stages) pipeline stages)")")
            return
        }
        assign(s, "train_micro_batch_size_per_gpu", m, to: "training.micro_batch_size", \.training.microBatchSize)
        assign(s, "gradient_accumulation_steps", g, to: "training.gradient_accumulation_steps", \.training.gradientAccumulationSteps)
        if config.training.trainBatchSize != nil || tv.value != nil {
            assign(s, "train_batch_size", Optional(b), to: "training.train_batch_size", \.training.trainBatchSize)
        }
    }

    /// Adam and AdamW (decoupled weight decay unless `adam_w_mode` is false, as DeepSpeed's FusedAdam and
    /// CPUAdam default), and torch.optim's SGD, which DeepSpeed takes by name. Absent params are
    /// DeepSpeed's defaults (lr 1e-3, betas (0.9, 0.999), eps 1e-8, weight decay 0; torch's AdamW 0.01).
    private mutating func optimizer(_ o: DSSection) {
        let type = o.string("type").value?.lowercased()
        let p = o.section("params") ?? DSSection(object: .init(), path: o.dsPath("params"), file: o.file, findings: .init())
        defer { p.finish(); o.finish() }
        switch type {
        case "adam", "adamw":
            let torchAdam = p.bool("torch_adam").value ?? false
            let decoupled = type == "adamw" || (p.bool("adam_w_mode").value ?? true)
            if type == "adamw" { _ = p.bool("adam_w_mode") }
            assign(o, "type", OptimizerOptions.Kind.adamw, to: "optimizer.type", \.optimizer.type)
            let lr = p.double("lr"), betas = p.doubles("betas"), eps = p.double("eps"), wd = p.double("weight_decay")
            assign(p, "lr", lr.isAbsent ? .value(1e-3) : lr, to: "training.learning_rate", \.training.learningRate)
            assign(p, "betas", betas.isAbsent ? .value([0.9, 0.999]) : betas, to: "optimizer.betas", \.optimizer.betas)
            assign(p, "eps", eps.isAbsent ? .value(1e-8) : eps, to: "optimizer.eps", \.optimizer.eps)
            let weightDecay = wd.isAbsent ? .value(torchAdam && type == "adamw" ? 0.01 : 0) : wd
            if !decoupled, (weightDecay.value ?? config.optimizer.weightDecay) != 0 {
                p.problem("adam_w_mode", "Adam with L2 weight decay (adam_w_mode false) is not available in this build; use AdamW (adam_w_mode true) or weight_decay 0")
            }
            assign(p, "weight_decay", weightDecay, to: "optimizer.weight_decay", \.optimizer.weightDecay)
            if p.bool("bias_correction").value == false { p.problem("bias_correction", "Adam without bias correction is not available in this build") }
            if p.bool("amsgrad").value == true { p.problem("amsgrad", "AMSGrad is not available in this build") }
            p.noEffect(["fused", "foreach", "capturable", "set_grad_none"])
        case "sgd":
            assign(o, "type", OptimizerOptions.Kind.sgd, to: "optimizer.type", \.optimizer.type)
            assign(p, "lr", p.double("lr"), to: "training.learning_rate", \.training.learningRate)
            assign(p, "momentum", p.double("momentum"), to: "optimizer.momentum", \.optimizer.momentum)
            assign(p, "weight_decay", p.double("weight_decay"), to: "optimizer.weight_decay", \.optimizer.weightDecay)
            assign(p, "nesterov", p.bool("nesterov"), to: "optimizer.nesterov", \.optimizer.nesterov)
            if let d = p.double("dampening").value, d != 0 { p.problem("dampening", "SGD dampening is not available in this build (0 only)") }
        case "onebitadam", "zerooneadam", "onebitlamb":
            p.skipRest()
            o.problem("type", "1-bit optimizers (\(o.string("type").value ?? "")) compress communication between GPUs and are not available in this build; use Adam or AdamW")
        case nil:
            p.skipRest()
            o.problem("type", "an optimizer section needs a type (Adam, AdamW or SGD)")
        default:
            p.skipRest()
            o.problem("type", "optimizer '\(o.string("type").value ?? "")' is not available in this build; use Adam, AdamW or SGD"
                      + Suggestion.phrase(for: type!, in: ["adam", "adamw", "sgd"]))
        }
    }

    /// WarmupLR, WarmupDecayLR and WarmupCosineLR with DeepSpeed's defaults for absent params
    /// (warmup_min_lr 0, warmup_max_lr 1e-3, warmup_num_steps 1000, warmup_type log, cos_min_ratio 1e-4).
    private mutating func scheduler(_ s: DSSection) {
        let p = s.section("params") ?? DSSection(object: .init(), path: s.dsPath("params"), file: s.file, findings: .init())
        defer { p.finish(); s.finish() }
        let kinds: [String: SchedulerOptions.Kind] = ["WarmupLR": .warmup_lr, "WarmupDecayLR": .warmup_decay_lr, "WarmupCosineLR": .warmup_cosine_lr]
        guard let name = s.string("type").value else {
            p.skipRest()
            return s.problem("type", "a scheduler section needs a type (WarmupLR, WarmupDecayLR or WarmupCosineLR)")
        }
        guard let kind = kinds[name] else {
            p.skipRest()
            return s.problem("type", "scheduler '\(name)' is not available in this build; use WarmupLR, WarmupDecayLR or WarmupCosineLR"
                             + Suggestion.phrase(for: name, in: Array(kinds.keys)))
        }
        assign(s, "type", kind, to: "scheduler.type", \.scheduler.type)
        func orDefault<T>(_ v: DSValue<T>, _ d: T) -> DSValue<T> { v.isAbsent ? .value(d) : v }
        assign(p, "warmup_num_steps", orDefault(p.int("warmup_num_steps"), 1000), to: "scheduler.warmup_steps", \.scheduler.warmupSteps)
        if let t = orDefault(p.string("warmup_type"), "log").value {
            if let w = SchedulerOptions.WarmupType(rawValue: t) { assign(p, "warmup_type", w, to: "scheduler.warmup_type", \.scheduler.warmupType) }
            else { p.problem("warmup_type", "must be 'log' or 'linear', got '\(t)'") }
        }
        if kind != .warmup_lr {
            assign(p, "total_num_steps", p.int("total_num_steps").value.map { Optional($0) }, to: "scheduler.total_num_steps", \.scheduler.totalNumSteps)
        }
        if kind == .warmup_cosine_lr {
            assign(p, "warmup_min_ratio", orDefault(p.double("warmup_min_ratio"), 0), to: "scheduler.warmup_min_ratio", \.scheduler.warmupMinRatio)
            assign(p, "cos_min_ratio", orDefault(p.double("cos_min_ratio"), 1e-4), to: "scheduler.cos_min_ratio", \.scheduler.cosMinRatio)
        } else {
            assign(p, "warmup_min_lr", orDefault(p.double("warmup_min_lr"), 0), to: "scheduler.warmup_min_lr", \.scheduler.warmupMinLR)
            // The scheduler sets the optimizer's lr in DeepSpeed: its peak is the run's learning rate.
            assign(p, "warmup_max_lr", orDefault(p.double("warmup_max_lr"), 1e-3), to: "training.learning_rate", \.training.learningRate)
        }
        if let l = p.int("last_batch_iteration").value, l != -1 {
            p.problem("last_batch_iteration", "only -1 (a fresh schedule) is accepted; resume continues the schedule from a checkpoint")
        }
    }

    /// fp16 (with every loss-scaler key) or bf16 (also spelt `bfloat16`); "auto" keeps the recipe's precision.
    private mutating func precision(_ root: DSSection) {
        let fp16 = root.section("fp16")
        let bf16 = root.section("bf16") ?? root.section("bfloat16")
        let fpOn = fp16?.bool("enabled"), bfOn = bf16?.bool("enabled")
        if fpOn?.value == true && bfOn?.value == true {
            return root.problem("fp16", "fp16 and bf16 are both enabled; enable one")
        }
        let p = config.engine.precision
        if fpOn?.value == true { assign(fp16!, "enabled", EngineOptions.Precision.fp16, to: "engine.precision", \.engine.precision) }
        else if bfOn?.value == true { assign(bf16!, "enabled", EngineOptions.Precision.bf16, to: "engine.precision", \.engine.precision) }
        else if fpOn?.value == false && p == .fp16 && explicit("engine.precision", \.engine.precision) {
            fp16!.problem("enabled", "the ds_config disables fp16, the recipe's engine.precision says fp16")
        } else if bfOn?.value == false && p == .bf16 && explicit("engine.precision", \.engine.precision) {
            bf16!.problem("enabled", "the ds_config disables bf16, the recipe's engine.precision says bf16")
        }
        if let f = fp16 {
            // DeepSpeed's names are the recipe's engine.loss_scaler names.
            assign(f, "loss_scale", f.double("loss_scale"), to: "engine.loss_scaler.loss_scale", \.engine.lossScaler.lossScale)
            assign(f, "initial_scale_power", f.int("initial_scale_power"), to: "engine.loss_scaler.initial_scale_power", \.engine.lossScaler.initialScalePower)
            assign(f, "loss_scale_window", f.int("loss_scale_window"), to: "engine.loss_scaler.loss_scale_window", \.engine.lossScaler.lossScaleWindow)
            assign(f, "hysteresis", f.int("hysteresis"), to: "engine.loss_scaler.hysteresis", \.engine.lossScaler.hysteresis)
            assign(f, "consecutive_hysteresis", f.bool("consecutive_hysteresis"), to: "engine.loss_scaler.consecutive_hysteresis", \.engine.lossScaler.consecutiveHysteresis)
            assign(f, "min_loss_scale", f.double("min_loss_scale"), to: "engine.loss_scaler.min_loss_scale", \.engine.lossScaler.minLossScale)
            f.noEffect(["auto_cast"])
            f.unsupported(["fp16_master_weights_and_grads"], "fp16 master weights (fp32 masters only)")
            f.finish()
        }
        if let b = bf16 {
            b.noEffect(["immediate_grad_update", "check_grad_overflow"])
            b.unsupported(["bf16_master_weights_and_grads", "bf16_optimizer_states"], "bf16 master weights or optimizer state (fp32 only)")
            b.finish()
        }
    }

    /// ZeRO stage and offload; `cpu` offload means "in memory" here, `nvme` files under nvme_path.
    private mutating func zero(_ z: DSSection) {
        assign(z, "stage", z.int("stage").isAbsent ? .value(0) : z.int("stage"), to: "engine.zero_stage", \.engine.zeroStage)
        for (key, recipeKey, kp) in [("offload_optimizer", "engine.offload_optimizer", \TrainingConfiguration.engine.offloadOptimizer),
                                     ("offload_param", "engine.offload_param", \TrainingConfiguration.engine.offloadParam)] {
            guard let o = z.section(key) else { continue }
            var target = config[keyPath: kp]
            if let d = o.string("device").value {
                if let device = EngineOptions.Offload.Device(rawValue: d) { target.device = device }
                else { o.problem("device", "must be 'none', 'cpu' or 'nvme', got '\(d)'" + Suggestion.phrase(for: d, in: ["none", "cpu", "nvme"])) }
            }
            if let path = o.string("nvme_path").value { target.path = path }
            assign(z, key, target, to: recipeKey, kp)
            o.noEffect(["pin_memory", "buffer_count", "fast_init", "ratio", "pipeline_read", "pipeline_write", "pipeline", "buffer_size", "max_in_cpu"])
            o.finish()
        }
        if z.bool("cpu_offload").value == true {
            z.problem("cpu_offload", "deprecated by DeepSpeed; write offload_optimizer: {device: cpu}")
        }
        z.noEffect(["contiguous_gradients", "overlap_comm", "reduce_scatter", "reduce_bucket_size", "allgather_partitions",
                    "allgather_bucket_size", "round_robin_gradients", "sub_group_size", "load_from_fp32_weights", "elastic_checkpoint",
                    "ignore_unused_parameters", "legacy_stage1", "use_multi_rank_bucket_allreduce", "stage3_prefetch_bucket_size",
                    "stage3_param_persistence_threshold", "stage3_model_persistence_threshold", "stage3_max_live_parameters",
                    "stage3_max_reuse_distance", "stage3_gather_16bit_weights_on_model_save", "stage3_gather_fp16_weights_on_model_save",
                    "stage3_module_granularity_threshold", "prefetch_bucket_size", "param_persistence_threshold", "model_persistence_threshold",
                    "max_live_parameters", "max_reuse_distance", "gather_16bit_weights_on_model_save", "memory_efficient_linear",
                    "log_trace_cache_warnings", "override_module_apply", "aio", "cpu_offload_param",
                    "cpu_offload_use_pin_memory", "zeropp_loco_param", "offload_optimizer_config", "pipeline_loading_checkpoint"])
        z.unsupported(["zero_hpz_partition_size", "zero_quantized_weights", "zero_quantized_nontrainable_weights", "zero_quantized_gradients",
                       "mics_shard_size", "mics_hierarchical_params_gather"], "ZeRO++ / MiCS")
        z.finish()
    }

    /// steps_per_print, wall_clock_breakdown, flops_profiler, tensorboard and csv_monitor.
    private mutating func monitoring(_ root: DSSection) {
        assign(root, "steps_per_print", root.int("steps_per_print"), to: "logging.steps", \.logging.steps)
        assign(root, "wall_clock_breakdown", root.bool("wall_clock_breakdown"), to: "logging.wall_clock_breakdown", \.logging.wallClockBreakdown)
        if let f = root.section("flops_profiler") {
            assign(f, "enabled", f.bool("enabled"), to: "logging.flops_profiler.enabled", \.logging.flopsProfiler.enabled)
            assign(f, "profile_step", f.int("profile_step"), to: "logging.flops_profiler.profile_step", \.logging.flopsProfiler.profileStep)
            assign(f, "module_depth", f.int("module_depth"), to: "logging.flops_profiler.module_depth", \.logging.flopsProfiler.moduleDepth)
            assign(f, "top_modules", f.int("top_modules"), to: "logging.flops_profiler.top_modules", \.logging.flopsProfiler.topModules)
            assign(f, "detailed", f.bool("detailed"), to: "logging.flops_profiler.detailed", \.logging.flopsProfiler.detailed)
            assign(f, "output_file", f.string("output_file").value.map { Optional($0) }, to: "logging.flops_profiler.output_file", \.logging.flopsProfiler.outputFile)
            f.noEffect(["recompute_fwd_factor"])
            f.finish()
        }
        if let t = root.section("tensorboard") {
            assign(t, "enabled", t.bool("enabled"), to: "logging.tensorboard", \.logging.tensorboard)
            if let p = t.string("output_path").value, !p.isEmpty {
                assign(t, "output_path", Optional(p), to: "logging.tensorboard_output_path", \.logging.tensorboardOutputPath)
            }
            assign(t, "job_name", t.string("job_name"), to: "logging.tensorboard_job_name", \.logging.tensorboardJobName)
            t.finish()
        }
        if let c = root.section("csv_monitor") {
            assign(c, "enabled", c.bool("enabled"), to: "logging.csv", \.logging.csv)
            // One metrics.csv in output.dir holds every column DeepSpeed's per-tag CSV files would.
            c.noEffect(["output_path", "job_name"])
            c.finish()
        }
    }
}

extension DSValue {
    var isAbsent: Bool { if case .absent = self { return true }; return false }
}
