"""20 optimizer steps of full fine-tuning in a plain PyTorch loop, the reference for the Swift trainer's
parity test. Model: Tests/Fixtures/models/smollm_chat (initial weights as saved). Batches are explicit
(written to the fixture) so data order is identical: each step has 2 micro-batches of 2 sequences of
varying length; targets are the next token with some positions masked (-100). The loss of a step is
Σ token losses / label tokens of the whole step (transformers' num_items_in_batch), gradients clipped to
norm 1.0, AdamW (lr 2e-3, betas 0.9/0.95, eps 1e-8, weight decay 0.1 except biases and norm weights,
transformers' grouping), linear schedule with 4 warmup steps over 20.

Writes ../../Tests/Fixtures/parity/: batches.json, expected.json (per-step loss, grad norm, lr) and
final.safetensors (every parameter after 20 steps). Run from Scripts/reference: python3 gen_parity.py
"""
import json
import os

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import torch
from safetensors.torch import save_file
from transformers import LlamaForCausalLM, get_linear_schedule_with_warmup

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
MODEL = os.path.join(ROOT, "Tests", "Fixtures", "models", "smollm_chat")
OUT = os.path.join(ROOT, "Tests", "Fixtures", "parity")
STEPS, ACCUM, PER_MICRO = 20, 2, 2


def make_batches(vocab):
    g = torch.Generator().manual_seed(123)
    steps = []
    for _ in range(STEPS):
        micro = []
        for _ in range(ACCUM):
            seqs = []
            for _ in range(PER_MICRO):
                n = int(torch.randint(5, 17, (1,), generator=g))
                tokens = torch.randint(3, vocab, (n,), generator=g).tolist()
                targets = tokens[1:] + [-100]
                mask_upto = int(torch.randint(0, n // 2, (1,), generator=g))
                targets = [-100] * mask_upto + targets[mask_upto:]
                seqs.append({"tokens": tokens, "targets": targets})
            micro.append(seqs)
        steps.append(micro)
    return steps


def train(model, batches, groups, params):
    """The reference loop: per step, Σ token losses of all micro-batches / label tokens of the step,
    clipping to 1.0 over `params`, AdamW (lr 2e-3, betas 0.9/0.95, eps 1e-8) over `groups`, linear warmup
    4 of STEPS. Returns per-step loss, grad norm, lr and label count. Shared by gen_families and gen_lora."""
    opt = torch.optim.AdamW(groups, lr=2e-3, betas=(0.9, 0.95), eps=1e-8)
    sched = get_linear_schedule_with_warmup(opt, num_warmup_steps=4, num_training_steps=STEPS)
    assert len(batches) == STEPS and all(len(s) == ACCUM for s in batches)
    records = []
    for step in batches:
        labels = sum(sum(t != -100 for t in s["targets"]) for micro in step for s in micro)
        opt.zero_grad()
        total = 0.0
        lr = opt.param_groups[0]["lr"]
        for micro in step:
            loss = 0.0
            for s in micro:
                ids = torch.tensor([s["tokens"]])
                logits = model(input_ids=ids).logits[0]
                loss = loss + torch.nn.functional.cross_entropy(logits, torch.tensor(s["targets"]), ignore_index=-100,
                                                                reduction="sum")
            total += loss.item()
            (loss / labels).backward()
        norm = torch.nn.utils.clip_grad_norm_(params, 1.0).item()
        opt.step()
        sched.step()
        records.append({"loss": total / labels, "grad_norm": norm, "lr": lr, "labels": labels})
    return records


def main():
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    model = LlamaForCausalLM.from_pretrained(MODEL, dtype=torch.float32).train()
    batches = make_batches(model.config.vocab_size)
    no_decay = [n for n, _ in model.named_parameters() if "bias" in n or "norm" in n]
    groups = [{"params": [p for n, p in model.named_parameters() if n not in no_decay], "weight_decay": 0.1},
              {"params": [p for n, p in model.named_parameters() if n in no_decay], "weight_decay": 0.0}]
    records = train(model, batches, groups, list(model.parameters()))
    for i, r in enumerate(records):
        print(f"step {i + 1}: loss {r['loss']:.6f} grad_norm {r['grad_norm']:.4f} lr {r['lr']:.2e}")
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "batches.json"), "w") as f:
        f.write(json.dumps(batches) + "\n")
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        f.write(json.dumps({"steps": records}, indent=2) + "\n")
    save_file({n: p.detach().contiguous() for n, p in model.named_parameters()}, os.path.join(OUT, "final.safetensors"),
              metadata={"format": "pt"})


if __name__ == "__main__":
    main()
