"""Proves that what `swift-finetune export MODEL OUT.gguf --format gguf` writes is a GGUF file the gguf
package (0.19.0) reads and transformers 5.23's GGUF loading turns back into the same model.

For each case the project's own CLI exports a fixture model (sources converted from the gguf fixtures go
through `swift-finetune convert` first); the file is committed under ../../Tests/Fixtures/gguf_export/ and
checked here:
  - gguf.GGUFReader: llama.cpp's tensor names and shapes (dims innermost first), 1-D tensors F32, the rest
    the requested type; general.architecture and the {arch}.* keys equal the source config; the tokenizer
    arrays have one entry per embedding row; for F32 files every tensor equals the source's (Q/K rows in
    llama.cpp's permuted order for llama, Gemma's norms + 1 in f32) exactly;
  - transformers' from_pretrained(dir, gguf_file=...): the state dict against the source (0 for F32; the
    F16/BF16/Q8_0 rounding otherwise), and its logits on fixed ids, written to expected.safetensors as
    `logits.<case>` for the Swift test to hold our own logits of the same file to (1e-4 relative);
  - transformers' GGUF tokenizer, saved as <case>.tokenizer.json for the Swift test to compare with what
    our `convert` makes of the exported file.
verdict.json records every figure. The Swift test (GGUFExportTests) re-exports and compares bytes, so the
files checked here are the ones the code writes today.

Run from Scripts/reference after `swift build --product swift-finetune`: python3 gen_gguf_export.py
"""
import json
import os
import shutil
import subprocess
import tempfile

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TQDM_DISABLE", "1")

import numpy as np
import torch
import gguf
from gguf import GGUFReader
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM, AutoTokenizer

from gen_gguf import gguf_name, permute
from gen_gguf_families import BLOCK_NAMES, family_gguf_name

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
FIXTURES = os.path.join(ROOT, "Tests", "Fixtures")
OUT = os.path.join(FIXTURES, "gguf_export")
CLI = os.path.join(ROOT, ".build", "debug", "swift-finetune")

# (case, source: a model folder under Fixtures/models or a .gguf under Fixtures/gguf, dtype)
CASES = [
    ("smollm_f32", "models/smollm_chat", "f32"),
    ("smollm_f16", "models/smollm_chat", "f16"),
    ("smollm_q8_0", "models/smollm_chat", "q8_0"),
    ("qwen2_bf16", "gguf/qwen2_bpe.gguf", "bf16"),
    ("llama_spm_f32", "gguf/llama_spm.gguf", "f32"),
    # The families of gen_gguf_families.py, from their converted fixtures (whose configs are what a GGUF file
    # can carry: transformers' defaults for everything else).
    ("qwen3_f32", "gguf/qwen3_bpe.gguf", "f32"),
    ("gemma3_f32", "gguf/gemma3_spm.gguf", "f32"),
    ("phi3_f32", "gguf/phi3_spm.gguf", "f32"),
]
INPUT_IDS = torch.tensor([[1, 17, 230, 45, 812, 3, 99, 600, 7, 2], [5, 5, 120, 640, 33, 871, 0, 48, 250, 11]])
TYPES = {"f32": "F32", "f16": "F16", "bf16": "BF16", "q8_0": "Q8_0"}


def cli(*args):
    subprocess.run([CLI, *args], check=True, capture_output=True, text=True)


def source_folder(source, scratch):
    if source.endswith(".gguf"):
        folder = os.path.join(scratch, os.path.basename(source)[:-5])
        if not os.path.exists(folder):
            cli("convert", os.path.join(FIXTURES, source), folder)
        return folder
    return os.path.join(FIXTURES, source)


def check_case(case, folder, dtype, verdict, tensors_out):
    path = os.path.join(OUT, case + ".gguf")
    cli("export", folder, path, "--format", "gguf", "--dtype", dtype)
    source = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    cfg = source.config
    state = {k: v for k, v in source.state_dict().items() if not (k == "lm_head.weight" and cfg.tie_word_embeddings)}

    # The gguf package's view of the file.
    reader = GGUFReader(path)
    arch = reader.fields["general.architecture"].contents()
    by_name = {t.name: t for t in reader.tensors}
    name_of = (lambda k: family_gguf_name(arch, k)) if arch in BLOCK_NAMES else gguf_name
    expected_names = sorted(name_of(k) for k in state)
    names_ok = sorted(by_name) == expected_names
    shapes_ok = types_ok = True
    exact_max = 0.0
    for k, v in state.items():
        t = by_name[name_of(k)]
        shapes_ok &= [int(d) for d in reversed(t.shape)] == list(v.shape)
        want = "F32" if v.dim() == 1 else TYPES[dtype] if v.shape[-1] % (32 if dtype == "q8_0" else 1) == 0 else "F16"
        types_ok &= t.tensor_type.name == want
        if dtype == "f32":
            w = v.numpy()
            if arch == "llama" and (".q_proj." in k or ".k_proj." in k):
                heads = cfg.num_attention_heads
                w = permute(w, heads, cfg.num_key_value_heads if ".k_proj." in k else heads)
            if arch == "gemma3" and name_of(k).endswith("norm.weight"):
                w = (v + 1.0).numpy()  # llama.cpp's norm_shift, in f32
            got = gguf.quants.dequantize(t.data, t.tensor_type).reshape(w.shape)
            exact_max = max(exact_max, float(np.abs(got - w).max()))
    keys = {"block_count": cfg.num_hidden_layers, "embedding_length": cfg.hidden_size,
            "feed_forward_length": cfg.intermediate_size, "attention.head_count": cfg.num_attention_heads,
            "attention.head_count_kv": cfg.num_key_value_heads, "context_length": cfg.max_position_embeddings}
    metadata_ok = all(reader.fields[f"{arch}.{k}"].contents() == v for k, v in keys.items())
    theta = cfg.rope_parameters.get("full_attention", cfg.rope_parameters)["rope_theta"]
    metadata_ok &= abs(reader.fields[f"{arch}.rope.freq_base"].contents() - theta) <= 1e-3 * theta
    if arch in ("qwen3", "gemma3"):  # llama.cpp writes the head size whenever config.json has head_dim
        metadata_ok &= reader.fields[f"{arch}.attention.key_length"].contents() == cfg.head_dim
        metadata_ok &= reader.fields[f"{arch}.attention.value_length"].contents() == cfg.head_dim
    if arch == "gemma3":
        metadata_ok &= reader.fields["gemma3.attention.sliding_window"].contents() == cfg.sliding_window
    if arch == "phi3":
        metadata_ok &= reader.fields["phi3.rope.dimension_count"].contents() == cfg.hidden_size // cfg.num_attention_heads
        metadata_ok &= reader.fields["phi3.rope.scaling.original_context_length"].contents() == cfg.original_max_position_embeddings
        metadata_ok &= reader.fields["phi3.attention.sliding_window"].contents() == (cfg.sliding_window or 0)
    metadata_ok &= abs(reader.fields[f"{arch}.attention.layer_norm_rms_epsilon"].contents() - cfg.rms_norm_eps) < 1e-9
    vocab = cfg.vocab_size
    tokenizer_ok = len(reader.fields["tokenizer.ggml.tokens"].contents()) == vocab == len(reader.fields["tokenizer.ggml.token_type"].contents())

    # transformers' view.
    loaded = AutoModelForCausalLM.from_pretrained(OUT, gguf_file=case + ".gguf").eval()
    loaded_state = loaded.state_dict()
    state_max = max(float((loaded_state[k] - v).abs().max()) for k, v in state.items())
    with torch.no_grad():
        logits = loaded(INPUT_IDS).logits
        source_logits = source(INPUT_IDS).logits
    tensors_out["logits." + case] = logits.contiguous()
    if not any(s == dict((c, s) for c, s, _ in CASES)[case] for c, s, _ in CASES[:[c for c, _, _ in CASES].index(case)]):
        # One tokenizer per source (the dtype does not touch it).
        tok = AutoTokenizer.from_pretrained(OUT, gguf_file=case + ".gguf")
        with tempfile.TemporaryDirectory() as d:
            tok.save_pretrained(d)
            shutil.copy(os.path.join(d, "tokenizer.json"), os.path.join(OUT, case + ".tokenizer.json"))
    verdict[case] = {
        "source": os.path.relpath(os.path.join(FIXTURES, dict((c, s) for c, s, _ in CASES)[case]), FIXTURES), "dtype": dtype,
        "architecture": arch, "gguf_reads": True, "names_llama_cpp": names_ok, "shapes_ok": shapes_ok, "types_ok": types_ok,
        "metadata_ok": bool(metadata_ok), "tokenizer_arrays_ok": tokenizer_ok,
        "f32_tensors_max_abs_diff": exact_max if dtype == "f32" else None,
        "transformers_state_dict_max_abs_diff_vs_source": state_max,
        "transformers_logits_max_abs_diff_vs_source": float((logits - source_logits).abs().max()),
        "source_logits_max_abs": float(source_logits.abs().max()),
        "model_type_loaded": loaded.config.model_type, "bytes": os.path.getsize(path),
    }
    print(case, json.dumps(verdict[case]))
    assert names_ok and shapes_ok and types_ok and metadata_ok and tokenizer_ok, case
    # Gemma's norms come back as (w + 1) - 1 in f32: within half an f32 ulp of 2 of the source.
    assert dtype != "f32" or (exact_max == 0 and state_max <= (2.0 ** -23 if arch == "gemma3" else 0)), case


def main():
    torch.set_num_threads(1)
    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(OUT)
    verdict, tensors = {}, {"input_ids": INPUT_IDS.to(torch.int64)}
    with tempfile.TemporaryDirectory() as scratch:
        for case, source, dtype in CASES:
            check_case(case, source_folder(source, scratch), dtype, verdict, tensors)
    save_file(tensors, os.path.join(OUT, "expected.safetensors"))
    with open(os.path.join(OUT, "verdict.json"), "w") as f:
        f.write(json.dumps(verdict, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
