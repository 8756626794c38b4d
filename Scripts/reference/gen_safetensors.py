"""Writes the safetensors fixtures with the reference stack (safetensors 0.8.0, transformers 5.23.0,
huggingface_hub's sharding) plus manifest.json describing every tensor, so the Swift tests can rebuild
the same tensors, write them with the Swift writer and compare bytes.

Run from Scripts/reference/:  python3 gen_safetensors.py
Deterministic: fixed seeds; the one nondeterminism of the reference (Rust HashMap order of user
metadata keys) is removed by re-saving until the order is the canonical one the Swift writer uses.
"""

import json
import os
import shutil
import struct
import tempfile

import torch
from safetensors.torch import save_file

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../Tests/Fixtures/safetensors")


def values_of(t):
    """Exact values as JSON lists: floats through float64 (exact for f32/bf16/f16), ints as ints."""
    if t.dtype == torch.bool:
        return t.reshape(-1).tolist()
    if t.dtype.is_floating_point:
        return [float(v) for v in t.to(torch.float64).reshape(-1).tolist()]
    return [int(v) for v in t.reshape(-1).tolist()]


DTYPE_NAMES = {
    torch.float64: "F64", torch.float32: "F32", torch.bfloat16: "BF16", torch.float16: "F16",
    torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8",
    torch.uint8: "U8", torch.bool: "BOOL",
}


def describe(tensors):
    return [
        {"name": k, "dtype": DTYPE_NAMES[v.dtype], "shape": list(v.shape), "values": values_of(v)}
        for k, v in tensors.items()
    ]


def header_metadata_keys(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
    return list(header.get("__metadata__", {}).keys())


def save_canonical(tensors, path, metadata):
    """safetensors serializes user metadata from a Rust HashMap, in a random order per process run.
    The Swift writer puts "format" first, then the other keys sorted; keep re-saving until the
    reference picked that order, so the committed file is a genuine reference output and stable."""
    canonical = ["format"] + sorted(k for k in metadata if k != "format")
    for _ in range(1000):
        save_file(tensors, path, metadata=metadata)
        if header_metadata_keys(path) == canonical:
            return
    raise RuntimeError("could not obtain the canonical metadata order")


def dtypes_file():
    g = torch.Generator().manual_seed(1234)
    t = {}
    # Insertion order deliberately unsorted; the file is written sorted by dtype then name.
    t["zeta.weight"] = torch.randn(3, 4, generator=g)
    t["layers.10.bias"] = torch.randn(5, generator=g).to(torch.bfloat16)
    t["alpha"] = torch.randn(2, 3, generator=g).to(torch.float16)
    t["layers.2.bias"] = torch.tensor([1.0, -0.0, 65504.0, 6.0e-8, -2.5, 3.140625], dtype=torch.float16)
    t["ids"] = torch.tensor([0, -1, 2**62, -(2**62), 123456789012], dtype=torch.int64)
    t["counts"] = torch.randint(-2**31, 2**31 - 1, (2, 2), generator=g, dtype=torch.int32)
    t["bytes"] = torch.arange(0, 256, 37, dtype=torch.uint8)
    t["mask"] = torch.tensor([[True, False, True], [False, False, True]])
    t["scalar"] = torch.tensor(2.75)  # 0-dim
    t["empty"] = torch.zeros(0)
    t["empty_2d"] = torch.zeros(3, 0, dtype=torch.bfloat16)
    t["double"] = torch.tensor([1.0 / 3.0, -1e300], dtype=torch.float64)
    t["small_ints"] = torch.tensor([-128, 0, 127], dtype=torch.int8)
    t["shorts"] = torch.tensor([-32768, 7, 32767], dtype=torch.int16)
    t["model.embed_tokens.weight"] = torch.randn(4, 2, generator=g).to(torch.bfloat16)
    t['odd "name"\twith é'] = torch.tensor([1.5])  # escaping: quote, control character, non-ASCII
    return t


def llama_state_dict_checkpoint(folder, max_shard_size):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(7)
    config = LlamaConfig(
        vocab_size=16, hidden_size=8, intermediate_size=16, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=1, head_dim=4, tie_word_embeddings=False, max_position_embeddings=32,
    )
    model = LlamaForCausalLM(config)
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp, max_shard_size=max_shard_size)
        written = sorted(f for f in os.listdir(tmp) if f.startswith("model"))
        os.makedirs(folder, exist_ok=True)
        for f in written:
            shutil.copyfile(os.path.join(tmp, f), os.path.join(folder, f))
    state = {k: v for k, v in model.state_dict().items()}
    return state, written, model.num_parameters()


def main():
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    os.makedirs(OUT)
    manifest = {"files": [], "checkpoints": []}

    t = dtypes_file()
    save_file(t, os.path.join(OUT, "dtypes.safetensors"), metadata={"format": "pt"})
    manifest["files"].append({"file": "dtypes.safetensors", "metadata": {"format": "pt"}, "tensors": describe(t)})

    meta = {"format": "pt", "source": "swift-finetune fixture", "zeta": "ü \"quoted\""}
    t = {"b": torch.arange(6, dtype=torch.float32).reshape(2, 3), "a": torch.tensor([7], dtype=torch.int64)}
    save_canonical(t, os.path.join(OUT, "metadata.safetensors"), meta)
    manifest["files"].append({"file": "metadata.safetensors", "metadata": meta, "tensors": describe(t)})

    save_file({}, os.path.join(OUT, "no_tensors.safetensors"), metadata={"format": "pt"})
    manifest["files"].append({"file": "no_tensors.safetensors", "metadata": {"format": "pt"}, "tensors": []})

    for folder, max_size in [("sharded", "0.5KB"), ("single", "50GB")]:
        state, written, total_parameters = llama_state_dict_checkpoint(os.path.join(OUT, folder), max_size)
        saved = set()
        for f in written:
            if f.endswith(".safetensors"):
                from safetensors import safe_open

                with safe_open(os.path.join(OUT, folder, f), "pt") as h:
                    saved.update(h.keys())
        state = {k: v for k, v in state.items() if k in saved}  # state-dict order, tied/unsaved dropped
        manifest["checkpoints"].append({
            "folder": folder, "max_shard_size": max_size, "total_parameters": total_parameters,
            "files": written, "tensors": describe(state),
        })

    with open(os.path.join(OUT, "manifest.json"), "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=1, ensure_ascii=False)
        f.write("\n")


if __name__ == "__main__":
    main()
