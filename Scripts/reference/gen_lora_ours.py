"""PEFT reads the adapters swift-finetune writes: fixtures for Tests/CLITests/LoRAOutputTests.swift.

For each case below, this script
  1. trains a fresh LoRA adapter with OUR command line (the debug build, or $SWIFT_FINETUNE) for 4 steps on
     a tiny base model from ../../Tests/Fixtures/models (not modified), and copies the run's final/ adapter
     folder (adapter_config.json, adapter_model.safetensors, tokenizer files) to
     ../../Tests/Fixtures/lora/ours_<base>/adapter, with base_model_name_or_path set to
     "Tests/Fixtures/models/<base>" (relative to the repository root);
  2. loads it with PeftModel.from_pretrained(base, folder) (peft 0.21.2, f32, eager attention) and checks
     every LoRA tensor PEFT holds equals the file's (nothing missing, nothing unexpected), and that
     AutoPeftModelForCausalLM resolves the base from the folder alone;
  3. writes expected.safetensors with gen_lora.build_expected's format: input_ids I64 [2, 11], logits F32
     [2, 11, V] of the PeftModel (unmerged, eval), merged.<hf name> of merge_and_unload()'s model.

  ours_smollm_chat  tied Llama; lora r=4 alpha=8 all-linear, dropout 0.1 (training only)
  ours_qwen3_gqa    untied Qwen3; r=4 alpha=8 rsLoRA, q_proj/v_proj, modules_to_save [embed_tokens] and
                    [lm_head]; trained through a word-level tokenizer of its vocabulary (a scratch copy of
                    the base; the adapter folder then carries that tokenizer)

Run from Scripts/reference after `swift build`: python3 gen_lora_ours.py
Re-running reproduces the same bytes: our training is deterministic (seeded counter RNG, fixed data) and
PEFT runs with fixed seeds on one thread.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ["HF_HUB_OFFLINE"] = "1"

import torch
from safetensors.torch import load_file

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from gen_lora import MODELS, OUT, ROOT, build_expected, lora_layers, load_adapter  # noqa: E402

BINARY = os.environ.get("SWIFT_FINETUNE", os.path.join(ROOT, ".build", "debug", "swift-finetune"))

CASES = [
    ("smollm_chat", "{r: 4, alpha: 8, target_modules: all-linear, dropout: 0.1}", 3000),
    ("qwen3_gqa", "{r: 4, alpha: 8, rslora: true, target_modules: [q_proj, v_proj], modules_to_save: [embed_tokens, lm_head]}", 4000),
]


def word_tokenizer_copy(name, scratch):
    """The base folder, or a copy with a word-level tokenizer of exactly its vocabulary (w0 w1 ...)."""
    folder = os.path.join(MODELS, name)
    if os.path.exists(os.path.join(folder, "tokenizer.json")):
        return folder, None
    copy = os.path.join(scratch, name)
    shutil.copytree(folder, copy)
    V = json.load(open(os.path.join(folder, "config.json")))["vocab_size"]
    tok = {"version": "1.0", "added_tokens": [], "pre_tokenizer": {"type": "WhitespaceSplit"},
           "model": {"type": "WordLevel", "vocab": {f"w{i}": i for i in range(V)}, "unk_token": "w0"}}
    with open(os.path.join(copy, "tokenizer.json"), "w") as f:
        json.dump(tok, f)
    with open(os.path.join(copy, "tokenizer_config.json"), "w") as f:
        json.dump({"eos_token": "w1"}, f)
    return copy, V


def train_ours(name, lora, seed, scratch):
    model, words = word_tokenizer_copy(name, scratch)
    data = os.path.join(scratch, f"{name}.jsonl")
    if words:
        g = torch.Generator().manual_seed(seed)
        with open(data, "w") as f:
            for _ in range(32):
                ids = torch.randint(2, words, (int(torch.randint(6, 20, (1,), generator=g)),), generator=g)
                f.write(json.dumps({"text": " ".join(f"w{i}" for i in ids.tolist())}) + "\n")
        fmt = "text"
    else:
        shutil.copy(os.path.join(ROOT, "Recipes", "data", "quickstart_chat.jsonl"), data)
        fmt = "chat"
    out = os.path.join(scratch, f"{name}-run")
    recipe = os.path.join(scratch, f"{name}.yaml")
    with open(recipe, "w") as f:
        f.write(f"""model: {{path: {model}}}
data: {{train: {{path: {data}, format: {fmt}}}, max_seq_len: 32, packing: true}}
training: {{max_steps: 4, micro_batch_size: 2, learning_rate: 2.0e-2}}
lora: {lora}
output: {{dir: {out}}}
logging: {{progress: none}}
seed: {seed}
""")
    subprocess.run([BINARY, recipe], check=True, stdout=subprocess.DEVNULL)
    return os.path.join(out, "final")


def main():
    assert os.path.exists(BINARY), f"build first (swift build), or set SWIFT_FINETUNE: {BINARY}"
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as scratch:
        for name, lora, seed in CASES:
            final = train_ours(name, lora, seed, scratch)
            out = os.path.join(OUT, f"ours_{name}")
            shutil.rmtree(out, ignore_errors=True)
            folder = os.path.join(out, "adapter")
            shutil.copytree(final, folder)
            path = os.path.join(folder, "adapter_config.json")
            cfg = json.load(open(path))
            cfg["base_model_name_or_path"] = f"Tests/Fixtures/models/{name}"
            with open(path, "w") as f:
                f.write(json.dumps(cfg, indent=2, sort_keys=True))
            written = load_file(os.path.join(folder, "adapter_model.safetensors"))
            # PEFT holds exactly the file's tensors, unchanged.
            pm = load_adapter(name, folder, False)
            held = {n.replace(".default.", ".").replace(".modules_to_save.", "."): p
                    for n, p in pm.state_dict().items() if "lora_" in n or "modules_to_save" in n}
            assert set(held) == set(written), (sorted(set(held) ^ set(written)))
            for n, p in written.items():
                assert torch.equal(held[n], p), n
            assert len(lora_layers(pm)) > 0
            assert any(m.lora_B["default"].weight.abs().max() > 0 for _, m in lora_layers(pm)), "training moved B"
            change = build_expected(name, seed, folder, written, out)
            print(f"ours_{name}: {len(written)} tensors; the adapter moves the logits by up to {change:.6g}")


if __name__ == "__main__":
    main()
