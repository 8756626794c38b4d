"""Proves transformers loads what swift-finetune writes. Exports fixture models with the project's own
CLI (`swift-finetune export`, f32, bf16, and sharded), loads each with transformers' from_pretrained,
and checks the state dict and logits against the source model. The exported files are committed under
../../Tests/Fixtures/roundtrip/<case>/ with verdict.json; the Swift test re-exports and compares bytes,
so the files transformers was shown to load are exactly the ones the code writes today.

Run from Scripts/reference after `swift build --product swift-finetune`: python3 gen_roundtrip.py
"""
import json
import os
import shutil
import subprocess

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

import torch
from transformers import AutoModelForCausalLM

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
MODELS = os.path.join(ROOT, "Tests", "Fixtures", "models")
OUT = os.path.join(ROOT, "Tests", "Fixtures", "roundtrip")
CLI = os.path.join(ROOT, ".build", "debug", "swift-finetune")

CASES = [
    ("llama_f32", "llama_gqa_llama3rope", ["--dtype", "f32"]),
    ("qwen2_bf16", "qwen2_bias_tied", ["--dtype", "bf16"]),
    ("mistral_sharded_f32", "mistral_sharded", ["--dtype", "f32", "--max-shard-size", "80KB"]),
    ("gpt2_f32", "gpt2", ["--dtype", "f32"]),
    ("qwen3_f32", "qwen3_gqa", ["--dtype", "f32"]),
    ("phi3_f32", "phi3_gqa", ["--dtype", "f32"]),
    # A transformers-5 Gemma config (rope_parameters per layer type) exported in the transformers-4 layout.
    ("gemma3_f32", "gemma3_text", ["--dtype", "f32"]),
    ("gemma3_v4_bf16", "gemma3_text_v4", ["--dtype", "bf16"]),
]


def finetuned_case(verdict):
    """A model fine-tuned by the project's own trainer: transformers loads the exported folder, and its
    logits on fixed ids are recorded for the Swift test to compare with ours."""
    recipe = os.path.join(ROOT, "Tests", "Fixtures", "roundtrip_recipe", "finetune.yaml")
    work = os.path.join(ROOT, ".build", "roundtrip-finetune")
    shutil.rmtree(work, ignore_errors=True)
    subprocess.run([CLI, recipe, f"output.dir={work}"], check=True, cwd=ROOT)
    folder = os.path.join(OUT, "finetuned")
    shutil.copytree(os.path.join(work, "final"), folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    ids = (torch.arange(0, 24).reshape(2, 12) * 37) % model.config.vocab_size
    with torch.no_grad():
        logits = model(input_ids=ids).logits.float().contiguous()
    from safetensors.torch import save_file
    save_file({"input_ids": ids.to(torch.int64).contiguous(), "logits": logits},
              os.path.join(OUT, "finetuned_expected.safetensors"), metadata={"format": "pt"})
    verdict["finetuned"] = {"source": "Tests/Fixtures/roundtrip_recipe/finetune.yaml", "loaded_by_transformers": True,
                            "files": sorted(os.listdir(folder))}
    print("finetuned", verdict["finetuned"])


def main():
    torch.set_num_threads(1)
    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(OUT)
    verdict = {}
    finetuned_case(verdict)
    for case, source, args in CASES:
        folder = os.path.join(OUT, case)
        subprocess.run([CLI, "export", os.path.join(MODELS, source), folder] + args, check=True)
        dtype = torch.bfloat16 if "bf16" in args else torch.float32
        original = AutoModelForCausalLM.from_pretrained(os.path.join(MODELS, source), dtype=torch.float32).eval()
        # Weights compared in the stored dtype; logits computed in f32 on both sides (the bf16 weights
        # upcast), so non-persistent buffers like RoPE's inv_freq cannot differ by how they were cast.
        exported = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
        reference = original
        with torch.no_grad():  # round the parameters only: .to(bf16) would also round RoPE's inv_freq buffer
            for p in reference.parameters():
                p.copy_(p.to(dtype).to(torch.float32))
        sd_a, sd_b = exported.state_dict(), reference.state_dict()
        identical = sd_a.keys() == sd_b.keys() and all(torch.equal(sd_a[k], sd_b[k]) for k in sd_a)
        ids = torch.arange(0, 30).reshape(2, 15) % original.config.vocab_size
        with torch.no_grad():
            diff = (exported(input_ids=ids).logits.float() - reference(input_ids=ids).logits.float()).abs().max().item()
        verdict[case] = {"source": source, "args": args, "loaded_by_transformers": True,
                         "state_dict_identical": identical, "logits_max_abs_diff": diff,
                         "files": sorted(os.listdir(folder))}
        print(case, verdict[case])
        assert identical and diff == 0.0, case
    with open(os.path.join(OUT, "verdict.json"), "w") as f:
        f.write(json.dumps(verdict, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
