"""PEFT LoRA reference fixtures: adapter folders as PEFT writes them, the forward logits of the adapted model,
the merged weights, LoRA gradients and a 20-step LoRA training run, for two tiny base models read from
../../Tests/Fixtures/models/<base>/ (not modified; loaded with attn_implementation="eager", f32):

  smollm_chat  tiny Llama, tied embeddings. LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0,
               target_modules="all-linear", task_type CAUSAL_LM)            -> scaling alpha/r = 2.0
  qwen3_gqa    Qwen3, untied.  LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, use_rslora=True,
               target_modules=["q_proj","v_proj","o_proj","down_proj"], modules_to_save=["embed_tokens"],
               task_type CAUSAL_LM)                                         -> scaling alpha/sqrt(r) = 4.0

Writes ../../Tests/Fixtures/lora/<base>/:

  adapter/adapter_config.json       PeftModel.save_pretrained's file, then rewritten (same json.dumps(indent=2,
                                    sort_keys=True), no trailing newline, as PEFT writes it) with
                                    base_model_name_or_path = "Tests/Fixtures/models/<base>" (relative to the
                                    repository root) and target_modules sorted (PEFT keeps them in a set and
                                    writes its iteration order, which changes with PYTHONHASHSEED). The README.md
                                    model card save_pretrained also writes is deleted.
  adapter/adapter_model.safetensors PEFT's file as written: lora_A [r, in] and lora_B [out, r] per target
                                    module (names without the ".default" adapter name), and for qwen3_gqa the
                                    full trained copy of the embedding, base_model.model.model.embed_tokens.weight.
                                    Checked to load back with PeftModel.from_pretrained(base, folder) and with
                                    AutoPeftModelForCausalLM.from_pretrained(folder) run from the repository root
                                    (which resolves the relative base path), offline.
  expected.safetensors              input_ids I64 [2, 11] (seeded); logits F32 [2, 11, V] of the PeftModel (adapter
                                    unmerged, eval mode); merged.<hf name> F32 for every parameter of
                                    merge_and_unload()'s model (named_parameters: tied weights once, so
                                    smollm_chat has model.embed_tokens.weight and no lm_head.weight).
  gradients.safetensors             gen_gradients.py's batch.* format on the PeftModel (train mode): batch.input_ids
                                    / batch.labels I64 [2, 11] (labels unshifted, some -100), batch.loss F32 [1] =
                                    mean over label tokens, batch.label_tokens I64 [1], batch.grad.<peft name> for
                                    every trainable parameter, named as in adapter_model.safetensors.
  parity/batches.json, expected.json  gen_parity.py's loop and formats (batches = gen_parity.make_batches(V),
                                    seed 123, explicit tokens / shifted targets with -100; per step loss,
                                    grad_norm, lr, labels), run on PeftModel.from_pretrained(adapter/,
                                    is_trainable=True): only the adapter's parameters train, the base is frozen.
                                    AdamW lr 2e-3, betas (0.9, 0.95), eps 1e-8, weight decay 0.1 on
                                    Trainer.get_decay_parameter_names(PeftModel) ∩ trainable (= every trainable
                                    parameter here: all lora_A/lora_B weights, and the embed_tokens copy of
                                    qwen3_gqa; none is a bias or a norm), 0 on the rest (empty); clipping 1.0
                                    over the trainable parameters; accumulation 2; linear schedule, warmup 4 of 20.
  parity/final_adapter.safetensors  the trainable parameters after 20 steps, named as in adapter_model.safetensors.

Run from Scripts/reference: python3 gen_lora.py   (pinned versions: requirements.txt; CPU only, no hub)
Re-running reproduces the same bytes: fixed seeds, one thread, deterministic algorithms.

=============================== LoRA as PEFT 0.21.2 implements it (checked below) ===============================
Init (init_lora_weights=True, LoraLayer.reset_lora_parameters): nn.init.kaiming_uniform_(lora_A.weight,
  a=math.sqrt(5)) and nn.init.zeros_(lora_B.weight). kaiming_uniform_ with a = √5, fan_in mode, leaky_relu gain:
  gain = sqrt(2 / (1 + a²)) = sqrt(1/3), std = gain / sqrt(fan_in), bound = sqrt(3)·std = 1 / sqrt(fan_in), where
  fan_in = in_features (lora_A.weight is [r, in_features]); A ~ U(-1/sqrt(in_features), 1/sqrt(in_features)), the
  same as nn.Linear's default weight init. B = 0, so a fresh adapter is the identity. These fixtures then overwrite
  every lora_B with 0.05·N(0,1) (seeded) and, for qwen3_gqa, add 0.05·N(0,1) to the embed_tokens copy, so the
  adapter changes the outputs.
Scaling: lora_alpha / r (use_rslora false: 8/4 = 2.0); lora_alpha / sqrt(r) with use_rslora (8/2 = 4.0).
Forward of a lora.Linear (lora_dropout 0.0 -> nn.Identity): y = base_layer(x) + lora_B(lora_A(dropout(x))) ·
  scaling, i.e. y = x Wᵀ (+ b) + scaling · (x Aᵀ) Bᵀ; the LoRA branch runs in lora_A's dtype, the result is cast back
  to the base result's dtype. modules_to_save wraps the module in ModulesToSaveWrapper: the forward uses a trainable
  deep copy (modules_to_save.default) instead of the frozen original; the file stores the copy under the original
  module's name (base_model.model.model.embed_tokens.weight). It works cleanly on the untied qwen3_gqa (loads,
  trains, merges: merge_and_unload puts the copy in place of the original); lm_head is not touched.
"all-linear" (tuners_utils._maybe_include_all_linear_layers): every module that is an nn.Linear (or transformers'
  Conv1D) except the output embedding (model.get_output_embeddings(), i.e. lm_head, excluded even when tied), and
  except modules inside existing adapter layers. In 0.21.2 it replaces target_modules with the FULL dotted module
  names ("model.layers.0.self_attn.q_proj", ...; relative to the transformers model, without the
  base_model.model. prefix), and that is what adapter_config.json lists; for Llama: q/k/v/o_proj and
  gate/up/down_proj of every layer. A list entry matches a module whose name equals it or ends with "." + entry.
Merge (merge_and_unload -> lora.Linear.merge, safe_merge False): base_layer.weight.data += get_delta_weight(),
  get_delta_weight = transpose(B @ A, fan_in_fan_out) · scaling, i.e. W' = W + scaling · (B @ A) with the product
  computed first and then scaled. It runs in the weights' own dtype: only on CPU with f16/bf16 weights are A and B
  upcast to f32 for the product and the delta cast back; here everything is f32 (checked: merged weights equal
  W + (B @ A)·scaling exactly, merged logits match the unmerged ones to ~1e-5 absolute, f32 rounding).

adapter_config.json as written for qwen3_gqa (smollm_chat differs in target_modules = the 14 full names,
modules_to_save null, use_rslora false, base path):
{
  "alora_invocation_tokens": null,
  "alpha_pattern": {},
  "arrow_config": null,
  "auto_mapping": null,
  "base_model_name_or_path": "Tests/Fixtures/models/qwen3_gqa",
  "bias": "none",
  "corda_config": null,
  "ensure_weight_tying": false,
  "eva_config": null,
  "exclude_modules": null,
  "fan_in_fan_out": false,
  "inference_mode": true,
  "init_lora_weights": true,
  "kasa_config": null,
  "layer_replication": null,
  "layers_pattern": null,
  "layers_to_transform": null,
  "loftq_config": {},
  "lora_alpha": 8,
  "lora_bias": false,
  "lora_dropout": 0.0,
  "lora_ga_config": null,
  "megatron_config": null,
  "megatron_core": "megatron.core",
  "modules_to_save": [
    "embed_tokens"
  ],
  "monteclora_config": null,
  "peft_type": "LORA",
  "peft_version": "0.21.2",
  "qalora_group_size": 16,
  "r": 4,
  "rank_pattern": {},
  "revision": null,
  "target_modules": [
    "down_proj",
    "o_proj",
    "q_proj",
    "v_proj"
  ],
  "target_parameters": null,
  "task_type": "CAUSAL_LM",
  "trainable_token_indices": null,
  "use_bdlora": null,
  "use_dora": false,
  "use_qalora": false,
  "use_rslora": true,
  "velora_config": null
}
"""
import json
import math
import os
import shutil
import sys
import warnings

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ["HF_HUB_OFFLINE"] = "1"  # never touch the hub
warnings.filterwarnings("ignore", category=FutureWarning)

import torch
import torch.nn.functional as F
from peft import AutoPeftModelForCausalLM, LoraConfig, PeftModel, get_peft_model, get_peft_model_state_dict
from peft.tuners.lora import Linear as LoraLinear
from safetensors.torch import load_file, save_file
from transformers import AutoModelForCausalLM, Trainer

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from gen_parity import make_batches, train  # noqa: E402  (the batches and loop of the full fine-tune parity)

ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
MODELS = os.path.join(ROOT, "Tests", "Fixtures", "models")
OUT = os.path.join(ROOT, "Tests", "Fixtures", "lora")
torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)

# (base model folder, LoraConfig extras, seed, expected scaling)
CASES = [
    ("smollm_chat", dict(target_modules="all-linear", use_rslora=False), 1000, 8 / 4),
    ("qwen3_gqa", dict(target_modules=["q_proj", "v_proj", "o_proj", "down_proj"], use_rslora=True,
                       modules_to_save=["embed_tokens"]), 2000, 8 / math.sqrt(4)),
]


def load_base(name):
    return AutoModelForCausalLM.from_pretrained(os.path.join(MODELS, name), dtype=torch.float32,
                                                attn_implementation="eager")


def save_name(name):
    """PeftModel parameter name -> adapter_model.safetensors name (PEFT drops the adapter name)."""
    return name.replace(".modules_to_save.default.", ".").replace(".lora_A.default.", ".lora_A.") \
        .replace(".lora_B.default.", ".lora_B.")


def trainable(pm):
    named = [(n, p) for n, p in pm.named_parameters() if p.requires_grad]
    saved = get_peft_model_state_dict(pm, save_embedding_layers=False)  # no vocab-resize probe of the base path
    assert sorted(save_name(n) for n, _ in named) == sorted(saved), (sorted(saved), [n for n, _ in named])
    for n, p in named:
        assert torch.equal(saved[save_name(n)], p.detach()), n
    return named


def lora_layers(pm):
    return [(n, m) for n, m in pm.named_modules() if isinstance(m, LoraLinear)]


def build_adapter(name, extras, seed, scaling, folder):
    base = load_base(name)
    torch.manual_seed(seed)  # PEFT's kaiming_uniform_ of lora_A draws from the global generator
    pm = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, task_type="CAUSAL_LM", **extras))
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for n, m in lora_layers(pm):
            A, B = m.lora_A["default"].weight, m.lora_B["default"].weight
            assert m.scaling["default"] == scaling, (n, m.scaling)
            assert isinstance(m.lora_dropout["default"], torch.nn.Identity)
            bound = 1 / math.sqrt(m.in_features)  # kaiming_uniform_(a=√5): sqrt(3)·sqrt(2/(1+5))/sqrt(fan_in)
            assert A.shape == (4, m.in_features) and A.abs().max() <= bound and A.abs().max() > 0.8 * bound, n
            assert B.shape == (m.out_features, 4) and not B.any(), n
            B.copy_(0.05 * torch.randn(B.shape, generator=g))
        for n, p in pm.named_parameters():
            if ".modules_to_save.default." in n:
                p.add_(0.05 * torch.randn(p.shape, generator=g))
    if extras["target_modules"] == "all-linear":
        expanded = {n.removeprefix("base_model.model.") for n, _ in lora_layers(pm)}
        assert set(pm.peft_config["default"].target_modules) == expanded
        assert not any("lm_head" in n for n in expanded) and len(expanded) == 7 * base.config.num_hidden_layers
    shutil.rmtree(folder, ignore_errors=True)
    pm.save_pretrained(folder)
    os.remove(os.path.join(folder, "README.md"))
    path = os.path.join(folder, "adapter_config.json")
    with open(path) as f:
        cfg = json.load(f)
    cfg["base_model_name_or_path"] = f"Tests/Fixtures/models/{name}"
    cfg["target_modules"] = sorted(cfg["target_modules"])
    with open(path, "w") as f:
        f.write(json.dumps(cfg, indent=2, sort_keys=True))
    return {save_name(n): p.detach().clone() for n, p in trainable(pm)}


def load_adapter(name, folder, is_trainable):
    return PeftModel.from_pretrained(load_base(name), folder, is_trainable=is_trainable)


def build_expected(name, seed, folder, written, out):
    pm = load_adapter(name, folder, False).eval()
    assert not any(p.requires_grad for p in pm.parameters())
    assert set(load_file(os.path.join(folder, "adapter_model.safetensors"))) == set(written)
    for n, p in pm.state_dict().items():  # loaded adapter == what was saved
        if save_name(n) in written and ("lora_" in n or "modules_to_save" in n):
            assert torch.equal(p, written[save_name(n)]), n
    # the relative base path resolves from the repository root (AutoPeftModel reads base_model_name_or_path)
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        auto = AutoPeftModelForCausalLM.from_pretrained(os.path.relpath(folder, ROOT), dtype=torch.float32,
                                                        attn_implementation="eager").eval()
    finally:
        os.chdir(cwd)
    V = pm.config.vocab_size
    ids = torch.randint(0, V, (2, 11), generator=torch.Generator().manual_seed(seed + 2))
    with torch.no_grad():
        logits = pm(input_ids=ids).logits
        assert torch.equal(auto(input_ids=ids).logits, logits)
        # forward formula of one lora.Linear: y = x Wᵀ + scaling · (x Aᵀ) Bᵀ
        for n, m in lora_layers(pm):
            x = torch.randn(3, m.in_features, generator=torch.Generator().manual_seed(7))
            A, B, W = m.lora_A["default"].weight, m.lora_B["default"].weight, m.base_layer.weight
            assert torch.allclose(m(x), x @ W.T + m.scaling["default"] * ((x @ A.T) @ B.T), atol=1e-6), n
        with pm.disable_adapter():
            plain = pm(input_ids=ids).logits
        assert (plain - logits).abs().max() > 1e-2, "the adapter must change the logits"
        deltas = {n.removeprefix("base_model.model.") + ".weight":
                  (m.base_layer.weight + (m.lora_B["default"].weight @ m.lora_A["default"].weight) * m.scaling["default"])
                  for n, m in lora_layers(pm)}
    merged = pm.merge_and_unload().eval()
    assert not any(isinstance(m, LoraLinear) for m in merged.modules())
    named = dict(merged.named_parameters())
    for n, w in deltas.items():
        assert torch.equal(named[n], w), n
    if merged.config.tie_word_embeddings:
        assert merged.lm_head.weight is merged.model.embed_tokens.weight and "lm_head.weight" not in named
    for n, p in written.items():
        if "lora_" not in n:  # modules_to_save copy replaces the original
            assert torch.equal(named[n.removeprefix("base_model.model.")], p), n
    with torch.no_grad():
        merged_logits = merged(input_ids=ids).logits
    assert torch.allclose(merged_logits, logits, rtol=1e-5, atol=5e-5), (merged_logits - logits).abs().max()
    print(f"  {name}: |merged - unmerged logits| max {(merged_logits - logits).abs().max().item():.2e}, "
          f"|logits| max {logits.abs().max().item():.2f}")
    tensors = {"input_ids": ids, "logits": logits}
    tensors.update({f"merged.{n}": p.detach().float() for n, p in named.items()})
    save_file({k: v.contiguous() for k, v in tensors.items()}, os.path.join(out, "expected.safetensors"),
              metadata={"format": "pt"})
    return (plain - logits).abs().max().item()


def build_gradients(name, seed, folder, out):
    pm = load_adapter(name, folder, True).train()  # dropout 0: train mode is what fine-tuning runs
    V = pm.config.vocab_size
    g = torch.Generator().manual_seed(seed + 3)
    ids = torch.randint(0, V, (2, 11), generator=g)
    labels = ids.clone()
    labels[0, :3] = -100
    labels[1, 4] = -100
    labels[1, 9:] = -100
    o = pm(input_ids=ids, labels=labels)
    n = int((labels[..., 1:] != -100).sum())
    with torch.no_grad():
        check = F.cross_entropy(o.logits[..., :-1, :].reshape(-1, V).float(), labels[..., 1:].reshape(-1),
                                ignore_index=-100, reduction="sum") / n
    assert torch.allclose(o.loss, check, rtol=1e-6), (o.loss, check)
    o.loss.backward()
    tensors = {"batch.input_ids": ids, "batch.labels": labels, "batch.loss": o.loss.detach().reshape(1),
               "batch.label_tokens": torch.tensor([n])}
    for pn, p in trainable(pm):
        tensors[f"batch.grad.{save_name(pn)}"] = p.grad.detach().float().contiguous().clone()
    assert all(p.grad is None for p in pm.parameters() if not p.requires_grad)
    save_file({k: v.contiguous() for k, v in tensors.items()}, os.path.join(out, "gradients.safetensors"),
              metadata={"format": "pt"})
    return o.loss.item()


def build_parity(name, folder, out):
    pm = load_adapter(name, folder, True).train()
    batches = make_batches(pm.config.vocab_size)
    named = trainable(pm)
    decay = set(Trainer.get_decay_parameter_names(None, pm))
    decayed = [n for n, _ in named if n in decay]
    assert decayed == [n for n, _ in named if not ("bias" in n or "norm" in n)]
    groups = [{"params": [p for n, p in named if n in decay], "weight_decay": 0.1},
              {"params": [p for n, p in named if n not in decay], "weight_decay": 0.0}]
    params = [p for _, p in named]
    frozen = {n: p.detach().clone() for n, p in pm.named_parameters() if not p.requires_grad}
    records = train(pm, batches, groups, params)
    for n, p in pm.named_parameters():
        if not p.requires_grad:
            assert torch.equal(p, frozen[n]), n
    folder_p = os.path.join(out, "parity")
    os.makedirs(folder_p)
    with open(os.path.join(folder_p, "batches.json"), "w") as f:
        f.write(json.dumps(batches) + "\n")
    with open(os.path.join(folder_p, "expected.json"), "w") as f:
        f.write(json.dumps({"steps": records}, indent=2) + "\n")
    save_file({save_name(n): p.detach().contiguous() for n, p in named},
              os.path.join(folder_p, "final_adapter.safetensors"), metadata={"format": "pt"})
    return records, decayed, [n for n, _ in named if n not in decay]


def main():
    for name, extras, seed, scaling in CASES:
        out = os.path.join(OUT, name)
        shutil.rmtree(out, ignore_errors=True)
        os.makedirs(out)
        folder = os.path.join(out, "adapter")
        written = build_adapter(name, extras, seed, scaling, folder)
        change = build_expected(name, seed, folder, written, out)
        loss = build_gradients(name, seed, folder, out)
        records, decayed, not_decayed = build_parity(name, folder, out)
        print(f"{name}: scaling {scaling}, {len(written)} adapter tensors, adapter changes logits by up to "
              f"{change:.4f}, gradient batch loss {loss:.6f}; parity loss {records[0]['loss']:.6f} -> "
              f"{records[-1]['loss']:.6f}, grad norm {records[0]['grad_norm']:.4f} -> {records[-1]['grad_norm']:.4f}; "
              f"decay on {len(decayed)} trainable tensors, no decay on {not_decayed}")


if __name__ == "__main__":
    main()
