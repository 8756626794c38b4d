"""Loss and per-parameter gradients transformers computes for the tiny models of gen_models.py (read from
../../Tests/Fixtures/models/<name>/, not modified). Writes ../../Tests/Fixtures/gradients/<name>.safetensors:

  batch.input_ids I64 [2, 11], batch.labels I64 [2, 11]   two rows, some labels -100 (transformers' unshifted
                                                           convention: labels[t+1] is the target of position t)
  batch.loss F32 [1]                                       model(input_ids, labels=labels).loss: the mean over
                                                           label tokens (sum / count after the shift)
  batch.label_tokens I64 [1]                               that count
  batch.grad.<hf name> F32                                 loss.backward() gradients, tied weights once
  packed.*  (some models)                                  two examples of different lengths (ids0/labels0,
                                                           ids1/labels1), as the Swift side packs them into one
                                                           row with positions restarting and attention not
                                                           crossing. PyTorch runs each example as its own row
                                                           with num_items_in_batch = label tokens of both, so
                                                           each loss is sum/total; losses and gradients add up
                                                           to the packed row's.

Run from Scripts/reference: python3 gen_gradients.py   (pinned versions: requirements.txt; CPU only)
Deterministic: fixed seeds, one thread, deterministic algorithms.
"""
import os

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM

HERE = os.path.dirname(os.path.abspath(__file__))
MODELS = os.path.join(HERE, "..", "..", "Tests", "Fixtures", "models")
OUT = os.path.join(HERE, "..", "..", "Tests", "Fixtures", "gradients")
torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)

# (model folder, seed, with a packed case). Packed cases only where positions are most likely to go wrong
# (rotary with llama3 scaling, learned wpe) to keep the fixtures small.
CASES = [("llama_gqa_llama3rope", 100, True), ("llama_tied_linear_bias_v4", 200, False),
         ("qwen2_bias_tied", 300, False), ("gpt2", 400, True)]


def manual_loss_sum(logits, labels):
    """Σ −log p(labels[t+1] | ≤t) over label tokens, computed independently of transformers' loss_function."""
    return F.cross_entropy(logits[..., :-1, :].reshape(-1, logits.shape[-1]).float(),
                           labels[..., 1:].reshape(-1), ignore_index=-100, reduction="sum")


def label_tokens(labels):
    return int((labels[..., 1:] != -100).sum())


def grads(model, prefix):
    out = {}
    for name, p in model.named_parameters():
        out[f"{prefix}.grad.{name}"] = p.grad.detach().float().contiguous().clone()
    model.zero_grad(set_to_none=True)
    return out


def build(name, seed, packed):
    model = AutoModelForCausalLM.from_pretrained(os.path.join(MODELS, name), dtype=torch.float32)
    model.train()  # dropout is 0 in every config; train mode is what fine-tuning runs
    tensors = record(model, seed, packed)
    save_file(tensors, os.path.join(OUT, name + ".safetensors"), metadata={"format": "pt"})
    print(f"{name}: batch loss {tensors['batch.loss'].item():.6f}"
          + (f", packed loss {tensors['packed.loss'].item():.6f}" if packed else ""))


def record(model, seed, packed):
    """The batch case (and the packed one) of `model`: inputs, loss and every parameter's gradient.
    Shared by gen_families."""
    V = model.config.vocab_size
    g = torch.Generator().manual_seed(seed)
    tensors = {}

    ids = torch.randint(0, V, (2, 11), generator=g)
    labels = ids.clone()
    labels[0, :3] = -100          # a prompt without loss
    labels[1, 4] = -100
    labels[1, 9:] = -100
    out = model(input_ids=ids, labels=labels)
    n = label_tokens(labels)
    with torch.no_grad():
        check = manual_loss_sum(out.logits, labels) / n
    assert torch.allclose(out.loss, check, rtol=1e-6), (out.loss, check)
    out.loss.backward()
    tensors.update({"batch.input_ids": ids, "batch.labels": labels, "batch.loss": out.loss.detach().reshape(1),
                    "batch.label_tokens": torch.tensor([n])})
    tensors.update(grads(model, "batch"))

    if packed:
        examples = []
        for length in (9, 6):
            e_ids = torch.randint(0, V, (1, length), generator=g)
            e_labels = e_ids.clone()
            e_labels[0, :2] = -100
            examples.append((e_ids, e_labels))
        total = sum(label_tokens(l) for _, l in examples)
        loss = 0.0
        for i, (e_ids, e_labels) in enumerate(examples):
            o = model(input_ids=e_ids, labels=e_labels, num_items_in_batch=torch.tensor(total))
            with torch.no_grad():
                check = manual_loss_sum(o.logits, e_labels) / total
            assert torch.allclose(o.loss, check, rtol=1e-6), (o.loss, check)
            o.loss.backward()
            loss = loss + o.loss.detach()
            tensors[f"packed.ids{i}"] = e_ids[0]
            tensors[f"packed.labels{i}"] = e_labels[0]
        tensors["packed.loss"] = loss.reshape(1)
        tensors["packed.label_tokens"] = torch.tensor([total])
        tensors.update(grads(model, "packed"))

    return {k: v.contiguous() for k, v in tensors.items()}


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, seed, packed in CASES:
        build(name, seed, packed)


if __name__ == "__main__":
    main()
