"""Optimizer, clipping, parameter-group and LR-schedule fixtures from the real libraries.

Writes ../../Tests/Fixtures/optim/:
  trajectory.safetensors  initial parameters, the raw gradients of 20 steps, and per run the final
                          parameters (and AdamW's exp_avg / exp_avg_sq / max_exp_avg_sq)
  trajectory.json         per run: optimizer settings, schedule, lr and pre-clip grad norm of every step,
                          decay / no-decay / frozen names
  decay_names.json        transformers' Trainer.get_decay_parameter_names on tiny Llama and GPT-2 models
  schedules.json          60 learning rates of transformers and DeepSpeed schedulers, several configs each

The loop is transformers Trainer's: p.grad = g; clip_grad_norm_(trainable, max_norm); optimizer.step();
scheduler.step(). The lr recorded for step k is the one optimizer step k used.

DeepSpeed's schedulers come from deepspeed 0.19.8's own deepspeed/runtime/lr_schedules.py, loaded alone
(its only non-torch import, deepspeed.utils.logger, is stubbed). If deepspeed is not installed the file is
taken from `pip download deepspeed==0.19.8 --no-deps` into a temporary folder.

Run from Scripts/reference/: python3 gen_optim.py
"""
import glob
import importlib.util
import json
import logging
import os
import subprocess
import sys
import tarfile
import tempfile
import types

import torch
from safetensors.torch import save_file
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM, Trainer
from transformers.optimization import (
    get_constant_schedule,
    get_constant_schedule_with_warmup,
    get_cosine_schedule_with_warmup,
    get_cosine_with_min_lr_schedule_with_warmup,
    get_linear_schedule_with_warmup,
)

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "Tests", "Fixtures", "optim")
STEPS = 20
MAX_NORM = 1.0
SCHEDULE_STEPS = 60


def tiny_llama():
    config = LlamaConfig(vocab_size=33, hidden_size=16, intermediate_size=40, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=1, attention_bias=True,
                         tie_word_embeddings=False)
    torch.manual_seed(0)
    return LlamaForCausalLM(config)


def tiny_gpt2():
    config = GPT2Config(vocab_size=11, n_embd=8, n_layer=2, n_head=2, n_positions=16,
                        bos_token_id=0, eos_token_id=0)
    torch.manual_seed(0)
    return GPT2LMHeadModel(config)


def decay_names(model):
    # The method does not use `self`.
    return Trainer.get_decay_parameter_names(None, model)


def all_names(model):
    # Tied weights (GPT-2's lm_head.weight) are listed too: get_parameter_names walks modules, not unique tensors.
    return [n for n, _ in model.named_parameters(remove_duplicate=False)]


def trajectory_runs():
    adamw = dict(lr=1e-2, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.1)
    return [
        # Linear warmup: the first step runs at lr 0. embed_tokens frozen.
        dict(name="adamw", optimizer="adamw", args=dict(adamw, amsgrad=False),
             schedule=dict(type="linear", num_warmup_steps=3, num_training_steps=STEPS),
             frozen=["model.embed_tokens.weight"]),
        # beta1 0.3 makes lerp's weight 0.7, PyTorch's other lerp branch; amsgrad on.
        dict(name="adamw_amsgrad", optimizer="adamw",
             args=dict(lr=3e-3, betas=(0.3, 0.99), eps=1e-6, weight_decay=0.05, amsgrad=True),
             schedule=dict(type="cosine", num_warmup_steps=2, num_training_steps=STEPS), frozen=[]),
        dict(name="sgd_momentum", optimizer="sgd",
             args=dict(lr=0.05, momentum=0.9, dampening=0.1, weight_decay=0.01, nesterov=False),
             schedule=dict(type="constant"), frozen=[]),
        dict(name="sgd_nesterov", optimizer="sgd",
             args=dict(lr=0.02, momentum=0.8, dampening=0.0, weight_decay=0.001, nesterov=True),
             schedule=dict(type="constant"), frozen=["lm_head.weight"]),
        dict(name="sgd_plain", optimizer="sgd",
             args=dict(lr=0.1, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False),
             schedule=dict(type="constant"), frozen=[]),
    ]


def hf_schedule(optimizer, spec):
    kind = spec["type"]
    if kind == "constant":
        return get_constant_schedule(optimizer)
    if kind == "linear":
        return get_linear_schedule_with_warmup(optimizer, spec["num_warmup_steps"], spec["num_training_steps"])
    if kind == "cosine":
        return get_cosine_schedule_with_warmup(optimizer, spec["num_warmup_steps"], spec["num_training_steps"])
    raise ValueError(kind)


def make_trajectories(tensors):
    model = tiny_llama()
    names = [n for n, _ in model.named_parameters()]
    decay = set(decay_names(model))
    gen = torch.Generator().manual_seed(1234)
    init = {}
    for n, p in model.named_parameters():
        base = torch.ones_like(p) if "norm" in n else torch.zeros_like(p)
        init[n] = (base + 0.1 * torch.randn(p.shape, generator=gen)).contiguous()
    # Per-step gradient scales put the total norm on both sides of MAX_NORM (~0.3 to ~3).
    grads = []
    for t in range(STEPS):
        scale = [0.005, 0.02, 0.05, 0.01][t % 4]
        grads.append({n: (scale * torch.randn(init[n].shape, generator=gen)).contiguous() for n in names})
    for n in names:
        tensors[f"init.{n}"] = init[n]
        for t in range(STEPS):
            tensors[f"grad.{t}.{n}"] = grads[t][n]

    runs = []
    for run in trajectory_runs():
        params = {n: torch.nn.Parameter(init[n].clone()) for n in names}
        frozen = set(run["frozen"])
        trainable = [n for n in names if n not in frozen]
        for n in frozen:
            params[n].requires_grad_(False)
        a = run["args"]
        groups = [
            {"params": [params[n] for n in trainable if n in decay], "weight_decay": a["weight_decay"]},
            {"params": [params[n] for n in trainable if n not in decay], "weight_decay": 0.0},
        ]
        if run["optimizer"] == "adamw":
            opt = torch.optim.AdamW(groups, lr=a["lr"], betas=a["betas"], eps=a["eps"], amsgrad=a["amsgrad"])
        else:
            opt = torch.optim.SGD(groups, lr=a["lr"], momentum=a["momentum"], dampening=a["dampening"],
                                  nesterov=a["nesterov"])
        sched = hf_schedule(opt, run["schedule"])
        lrs, norms = [], []
        for t in range(STEPS):
            for n in trainable:
                params[n].grad = grads[t][n].clone()
            lrs.append(opt.param_groups[0]["lr"])
            norm = torch.nn.utils.clip_grad_norm_([params[n] for n in trainable], MAX_NORM)
            norms.append(float(norm))
            opt.step()
            sched.step()
        for n in names:
            tensors[f"{run['name']}.final.{n}"] = params[n].detach().clone()
            if run["optimizer"] == "adamw" and n not in frozen:
                st = opt.state[params[n]]
                tensors[f"{run['name']}.exp_avg.{n}"] = st["exp_avg"].clone()
                tensors[f"{run['name']}.exp_avg_sq.{n}"] = st["exp_avg_sq"].clone()
                if a["amsgrad"]:
                    tensors[f"{run['name']}.max_exp_avg_sq.{n}"] = st["max_exp_avg_sq"].clone()
        args = dict(a)
        if "betas" in args:
            args["betas"] = list(args["betas"])
        runs.append(dict(name=run["name"], optimizer=run["optimizer"], args=args, schedule=run["schedule"],
                         frozen=run["frozen"], lrs=lrs, grad_norms=norms))
    return dict(steps=STEPS, max_norm=MAX_NORM,
                parameters=[dict(name=n, shape=list(init[n].shape)) for n in names],
                decay=[n for n in names if n in decay], runs=runs)


def make_single_steps(tensors):
    """One step from a non-zero state without clipping: m, v and SGD's parameters involve no sqrt, so they
    are expected to match bit for bit. 1003 elements: SIMD body plus a scalar tail."""
    gen = torch.Generator().manual_seed(99)
    n = 1003
    p0, g = torch.randn(n, generator=gen), torch.randn(n, generator=gen)
    m0, v0 = 0.1 * torch.randn(n, generator=gen), 0.01 * torch.rand(n, generator=gen)
    for key, t in dict(p=p0, g=g, m=m0, v=v0).items():
        tensors[f"single.{key}"] = t
    cases = []
    for beta1 in (0.9, 0.3):
        p = torch.nn.Parameter(p0.clone())
        opt = torch.optim.AdamW([p], lr=1e-3, betas=(beta1, 0.999), eps=1e-8, weight_decay=0.1)
        p.grad = g.clone()
        opt.step()  # creates the state; overwrite it with the chosen state and step 5
        st = opt.state[p]
        with torch.no_grad():
            p.copy_(p0)
        st["exp_avg"].copy_(m0)
        st["exp_avg_sq"].copy_(v0)
        st["step"].fill_(4.0)
        opt.step()
        name = f"adamw_b{beta1}"
        tensors[f"single.{name}.p"] = p.detach().clone()
        tensors[f"single.{name}.m"] = st["exp_avg"].clone()
        tensors[f"single.{name}.v"] = st["exp_avg_sq"].clone()
        cases.append(dict(name=name, optimizer="adamw", lr=1e-3, betas=[beta1, 0.999], eps=1e-8,
                          weight_decay=0.1, step=5))
    for nesterov in (False, True):
        p = torch.nn.Parameter(p0.clone())
        opt = torch.optim.SGD([p], lr=0.05, momentum=0.9, dampening=0.0 if nesterov else 0.2,
                              weight_decay=0.01, nesterov=nesterov)
        p.grad = g.clone()
        opt.step()
        with torch.no_grad():
            p.copy_(p0)
        opt.state[p]["momentum_buffer"].copy_(m0)
        opt.step()
        name = f"sgd_nesterov{int(nesterov)}"
        tensors[f"single.{name}.p"] = p.detach().clone()
        tensors[f"single.{name}.m"] = opt.state[p]["momentum_buffer"].clone()
        cases.append(dict(name=name, optimizer="sgd", lr=0.05, momentum=0.9,
                          dampening=0.0 if nesterov else 0.2, weight_decay=0.01, nesterov=nesterov))
    return cases


def load_deepspeed_schedules():
    try:
        import deepspeed.runtime.lr_schedules as mod  # noqa: F401
        return mod
    except ImportError:
        pass
    tmp = tempfile.mkdtemp()
    subprocess.run([sys.executable, "-m", "pip", "download", "deepspeed==0.19.8", "--no-deps", "-q", "-d", tmp],
                   check=True)
    archive = glob.glob(os.path.join(tmp, "deepspeed-0.19.8*"))[0]
    with tarfile.open(archive) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith("deepspeed/runtime/lr_schedules.py"))
        source = tar.extractfile(member).read().decode()
    stub = types.ModuleType("deepspeed.utils")
    stub.logger = logging.getLogger("deepspeed-stub")
    stub.logger.disabled = True
    sys.modules.setdefault("deepspeed", types.ModuleType("deepspeed"))
    sys.modules["deepspeed.utils"] = stub
    mod = types.ModuleType("lr_schedules")
    exec(compile(source, "lr_schedules.py", "exec"), mod.__dict__)
    return mod


def schedule_cases():
    hf = [
        ("constant", {}),
        ("constant_with_warmup", dict(num_warmup_steps=7)),
        ("linear", dict(num_warmup_steps=5, num_training_steps=50)),
        ("linear", dict(num_warmup_steps=0, num_training_steps=40)),
        ("cosine", dict(num_warmup_steps=6, num_training_steps=50)),
        ("cosine", dict(num_warmup_steps=0, num_training_steps=60, num_cycles=1.0)),
        ("cosine_with_min_lr", dict(num_warmup_steps=4, num_training_steps=45, min_lr=1e-5)),
        ("cosine_with_min_lr", dict(num_warmup_steps=10, num_training_steps=50, min_lr_rate=0.1)),
    ]
    ds = [
        ("WarmupLR", dict(warmup_min_lr=1e-5, warmup_max_lr=1e-3, warmup_num_steps=10, warmup_type="log")),
        ("WarmupLR", dict(warmup_min_lr=0.0, warmup_num_steps=15, warmup_type="linear")),
        ("WarmupLR", dict(warmup_min_lr=2e-4, warmup_max_lr=1e-3, warmup_num_steps=1, warmup_type="log")),
        ("WarmupDecayLR", dict(total_num_steps=50, warmup_min_lr=0.0, warmup_max_lr=1e-3,
                               warmup_num_steps=10, warmup_type="log")),
        ("WarmupDecayLR", dict(total_num_steps=40, warmup_min_lr=1e-6, warmup_max_lr=5e-4,
                               warmup_num_steps=8, warmup_type="linear")),
        ("WarmupCosineLR", dict(total_num_steps=50, warmup_min_ratio=0.1, warmup_num_steps=10,
                                cos_min_ratio=1e-4, warmup_type="log")),
        ("WarmupCosineLR", dict(total_num_steps=45, warmup_min_ratio=0.0, warmup_num_steps=5,
                                cos_min_ratio=0.05, warmup_type="linear")),
        ("WarmupCosineLR", dict(total_num_steps=5, warmup_min_ratio=0.2, warmup_num_steps=10,
                                cos_min_ratio=0.01, warmup_type="linear")),
    ]
    return hf, ds


def make_schedules():
    ds_mod = load_deepspeed_schedules()
    base_lr = 2e-3
    hf, ds = schedule_cases()
    out = []
    for kind, params in hf:
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=base_lr)
        if kind == "constant":
            sched = get_constant_schedule(opt)
        elif kind == "constant_with_warmup":
            sched = get_constant_schedule_with_warmup(opt, **params)
        elif kind == "linear":
            sched = get_linear_schedule_with_warmup(opt, **params)
        elif kind == "cosine":
            sched = get_cosine_schedule_with_warmup(opt, **params)
        else:
            sched = get_cosine_with_min_lr_schedule_with_warmup(opt, **params)
        lrs = []
        for _ in range(SCHEDULE_STEPS):
            lrs.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
        out.append(dict(family="transformers", type=kind, base_lr=base_lr, params=params, lrs=lrs))
    for kind, params in ds:
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=base_lr)
        sched = getattr(ds_mod, kind)(opt, **params)
        lrs = []
        for _ in range(SCHEDULE_STEPS):
            lrs.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()  # the DeepSpeed engine steps the scheduler after each applied optimizer step
        out.append(dict(family="deepspeed", type=kind, base_lr=base_lr, params=params, lrs=lrs))
    return out


def main():
    os.makedirs(OUT, exist_ok=True)
    tensors = {}
    trajectory = make_trajectories(tensors)
    trajectory["single_steps"] = make_single_steps(tensors)
    save_file(tensors, os.path.join(OUT, "trajectory.safetensors"), metadata={"format": "pt"})

    def write(name, value):
        with open(os.path.join(OUT, name), "w") as f:
            json.dump(value, f, indent=1)
            f.write("\n")

    write("trajectory.json", trajectory)
    llama, gpt2 = tiny_llama(), tiny_gpt2()
    write("decay_names.json", {
        "llama": {"names": all_names(llama), "decay": decay_names(llama)},
        "gpt2": {"layers": 2, "names": all_names(gpt2), "decay": decay_names(gpt2)},
    })
    write("schedules.json", make_schedules())


if __name__ == "__main__":
    main()
