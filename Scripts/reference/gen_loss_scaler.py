"""Fixtures for the fp16 loss scaler: DeepSpeed 0.19.8's own scaler driven through fixed overflow patterns.

The scaler is built exactly as DeepSpeed's ZeRO optimizers build it (stage_1_and_2.py / stage3.py):
the `fp16` config section goes through `DeepSpeedFP16Config` (with its validators and defaults), then
`CreateLossScaler(torch.half, loss_scale, loss_scale == 0, config.dynamic_loss_scale_args())`, which gives a
`DynamicLossScaler` (raise_error_at_min_scale left at its default, True, because the engine never passes
it) or a static `LossScaler`. Each step calls `update_scale(overflow)` as the optimizer's step() does and
then applies the engine's rule (engine.py: `if overflow: skipped_steps += 1`).

DynamicLossScaler logs through `deepspeed.comm.get_rank()`, so a one-process gloo group is initialised.
When update_scale raises (scale already at min_loss_scale, hysteresis exhausted), the pattern records the
message and the (unchanged) state and stops there, as a DeepSpeed run would.

Run from Scripts/reference/: `python3 gen_loss_scaler.py`; writes ../../Tests/Fixtures/loss_scaler/.
Deterministic: overflow patterns are spelled out or drawn from random.Random(seed).
"""

import json
import os
import random

os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
os.environ.setdefault("MASTER_PORT", "29533")
os.environ.setdefault("RANK", "0")
os.environ.setdefault("WORLD_SIZE", "1")
os.environ.setdefault("LOCAL_RANK", "0")
os.environ.setdefault("DS_BUILD_OPS", "0")

import torch  # noqa: E402
import deepspeed  # noqa: E402
from deepspeed.runtime.fp16.loss_scaler import CreateLossScaler, DynamicLossScaler  # noqa: E402
from deepspeed.runtime.precision_config import DeepSpeedFP16Config  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "Tests", "Fixtures", "loss_scaler")


def spelled(text):
    """'x' = overflow, '.' = clean step; spaces are ignored (they only group the pattern for reading)."""
    return [c == "x" for c in text if c in "x."]


def drawn(seed, steps, probability):
    rng = random.Random(seed)
    return [rng.random() < probability for _ in range(steps)]


# (name, fp16 config as a user writes it, overflow flags, why this pattern exists)
PATTERNS = [
    ("grow_window3", {"initial_scale_power": 4, "loss_scale_window": 3}, spelled("." * 30),
     "no overflow: the scale doubles every window clean steps (first growth after window+1 steps)"),
    ("grow_window1", {"initial_scale_power": 16, "loss_scale_window": 1}, spelled("." * 40),
     "window 1 grows on every step after the first; scales far above 2^16 stay exact"),
    ("burst_exhausts_hysteresis", {"initial_scale_power": 10, "loss_scale_window": 4, "hysteresis": 3},
     spelled("xxxxxx ........... xx ...... x . x . x ..........."),
     "a burst uses up hysteresis 3, then every further overflow halves until a growth refills it"),
    ("alternating_not_consecutive", {"initial_scale_power": 12, "loss_scale_window": 3, "hysteresis": 2},
     spelled("x.x.x.x. x.x.x.x. ....... xx.x ..... x.x."),
     "consecutive_hysteresis false: clean steps between overflows do not refill hysteresis"),
    ("alternating_consecutive", {"initial_scale_power": 12, "loss_scale_window": 3, "hysteresis": 2,
                                 "consecutive_hysteresis": True},
     spelled("x.x.x.x. x.x.x.x. ....... xx.x ..... x.x."),
     "same flags with consecutive_hysteresis true: every clean step refills hysteresis"),
    ("hysteresis1", {"initial_scale_power": 8, "loss_scale_window": 5, "hysteresis": 1},
     spelled("x.x.xx ...... x ....... xxx ........"),
     "hysteresis 1: every overflow halves the scale"),
    ("min_scale_raises", {"initial_scale_power": 3, "loss_scale_window": 4, "hysteresis": 2},
     spelled("x.x.x.x.x.x"),
     "halving down to min_loss_scale 1, then the next exhausted-hysteresis overflow raises"),
    ("min_scale_clamps_then_raises", {"initial_scale_power": 5, "loss_scale_window": 100, "min_loss_scale": 3},
     spelled("xxxxxxxxx"),
     "min_loss_scale 3 is not a power of two: 32,16,8,4 then max(2,3)=3, then raise"),
    ("min_scale_consecutive_survives", {"initial_scale_power": 2, "loss_scale_window": 50, "hysteresis": 2,
                                        "consecutive_hysteresis": True},
     spelled("xx.xx.x.x.x.x.x.x.x.x.x.x ...... x.x.xx"),
     "at min scale with hysteresis refilled by each clean step an isolated overflow only decrements it; "
     "two in a row raise"),
    ("hysteresis0_never_reduces", {"initial_scale_power": 6, "loss_scale_window": 4, "hysteresis": 0},
     spelled("xxxx .... x ...... xxxxxx"),
     "hysteresis 0 counts down below zero and never reaches 1: DeepSpeed never lowers the scale"),
    ("defaults_random", {}, drawn(1, 60, 0.2),
     "DeepSpeed defaults (2^16, window 1000, hysteresis 2) under random overflows"),
    ("random_window2", {"initial_scale_power": 16, "loss_scale_window": 2, "hysteresis": 2}, drawn(2, 60, 0.3),
     "random overflows with a short window: growth and reduction interleave"),
    ("random_window2_consecutive", {"initial_scale_power": 16, "loss_scale_window": 2, "hysteresis": 2,
                                    "consecutive_hysteresis": True}, drawn(2, 60, 0.3),
     "same flags as random_window2 with consecutive_hysteresis"),
    ("random_hysteresis4", {"initial_scale_power": 20, "loss_scale_window": 3, "hysteresis": 4,
                            "min_loss_scale": 2}, drawn(3, 60, 0.45),
     "frequent random overflows, hysteresis 4"),
    ("static_128", {"loss_scale": 128}, drawn(4, 30, 0.3),
     "static scale: overflowing steps are skipped, the scale never changes, nothing raises"),
    ("static_1_5", {"loss_scale": 1.5, "initial_scale_power": 3}, spelled("xxx..x.x"),
     "static scale below the dynamic minimum and with a fraction"),
]


def state(scaler):
    if isinstance(scaler, DynamicLossScaler):
        return {
            "loss_scale": float(scaler.cur_scale),
            "cur_hysteresis": scaler.cur_hysteresis,
            "cur_iter": scaler.cur_iter,
            "last_overflow_iter": scaler.last_overflow_iter,
        }
    # The static LossScaler keeps no counters.
    return {"loss_scale": float(scaler.cur_scale), "cur_hysteresis": None, "cur_iter": None,
            "last_overflow_iter": None}


def run(name, fp16, flags, why):
    config = DeepSpeedFP16Config(enabled=True, **fp16)
    dynamic = config.loss_scale == 0
    scaler = CreateLossScaler(dtype=torch.half, static_loss_scale=config.loss_scale, dynamic_scaling=dynamic,
                              dynamic_loss_args=config.dynamic_loss_scale_args())
    assert scaler.dynamic == dynamic
    if dynamic:
        assert scaler.raise_error_at_min_scale is True
    options = {
        "loss_scale": float(config.loss_scale),
        "initial_scale_power": config.initial_scale_power,
        "loss_scale_window": config.loss_scale_window,
        "hysteresis": config.hysteresis,
        "consecutive_hysteresis": config.consecutive_hysteresis,
        "min_loss_scale": float(config.min_loss_scale),
    }
    steps = []
    error = None
    skipped_steps = 0
    for index, overflow in enumerate(flags):
        scale_used = float(scaler.cur_scale)
        try:
            scaler.update_scale(overflow)
        except Exception as e:  # DeepSpeed raises a bare Exception at min scale
            error = {"step": index, "message": str(e), "state_after": state(scaler)}
            break
        if overflow:
            skipped_steps += 1
        steps.append(dict(step=index, overflow=overflow, scale_used=scale_used, skipped=overflow,
                          skipped_steps=skipped_steps, **state(scaler)))
    return {
        "name": name,
        "why": why,
        "fp16_config": fp16,
        "options": options,
        "dynamic": dynamic,
        "initial": state(CreateLossScaler(dtype=torch.half, static_loss_scale=config.loss_scale,
                                          dynamic_scaling=dynamic,
                                          dynamic_loss_args=config.dynamic_loss_scale_args())),
        "overflows": "".join("x" if f else "." for f in flags),
        "steps": steps,
        "error": error,
    }


def main():
    deepspeed.init_distributed(dist_backend="gloo", verbose=False)
    os.makedirs(OUT, exist_ok=True)
    document = {
        "source": f"deepspeed {deepspeed.__version__} runtime/fp16/loss_scaler.py via CreateLossScaler "
                  "(as ZeRO stages 1-3 build it); skipped = overflow as engine.py counts skipped_steps",
        "patterns": [run(*p) for p in PATTERNS],
    }
    with open(os.path.join(OUT, "dynamic_loss_scaler.json"), "w") as f:
        json.dump(document, f, indent=1, sort_keys=True)
        f.write("\n")
    for p in document["patterns"]:
        last = p["steps"][-1] if p["steps"] else p["initial"]
        print(f"{p['name']:34s} steps={len(p['steps']):3d} final_scale={last['loss_scale']:g} "
              f"error_at={p['error']['step'] if p['error'] else None}")


if __name__ == "__main__":
    main()
