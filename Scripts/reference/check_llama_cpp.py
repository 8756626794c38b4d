"""llama.cpp itself loads what `swift-finetune export --format gguf` writes. Uses llama.cpp through
xllamacpp 2026.10.11549 (PyPI; a prebuilt CPU wheel of llama.cpp's server, not in requirements.txt: install
it with `pip install xllamacpp==2026.10.11549`, in a venv if you like) and compares with transformers 5.23's
loading of the same file:
  - every committed export in ../../Tests/Fixtures/gguf_export/ (gen_gguf_export.py): at every prefix of the
    fixture's two id rows, llama.cpp's most likely next token equals transformers' (teacher forcing), and its
    log-probability is recorded against transformers' log_softmax (F32/F16/BF16 weights: llama.cpp's own kernel
    order only; Q8_0: llama.cpp also quantizes the activations to 8 bits in its Q8_0 matmul);
  - when present, the real SmolLM2 exports check_real_gguf.py writes (.build/real_gguf_export/*.gguf), and as a
    control the original Q4_1 file llama.cpp's converter wrote: the same on a chat prompt (16 tokens; equal
    ids required for F32, recorded for the quantized files), and the prompt token counts llama.cpp reports for the ~300 mixed texts of
    check_real_gguf.py equal transformers' token counts (llama.cpp's pre-tokenizer for our
    tokenizer.ggml.pre);
  - when present, `make run`'s out/quickstart/quill-135m.q8_0.gguf: llama.cpp's chat answers to the quickstart
    prompts (its chat template from our metadata).
Writes ../../.build/llama_cpp_check.json. Run from Scripts/reference/: python3 check_llama_cpp.py
"""
import json
import os
import sys

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TQDM_DISABLE", "1")

import torch
import xllamacpp as xlc
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
EXPORTS = os.path.join(ROOT, "Tests", "Fixtures", "gguf_export")


def server(path, ctx=512):
    p = xlc.CommonParams()
    p.model.path = path
    p.n_ctx = ctx
    p.n_parallel = 1
    p.cpuparams.n_threads = 2
    # An f32 KV cache: llama.cpp's default f16 cache would add its own rounding to the comparison.
    p.cache_type_k = xlc.ggml_type.GGML_TYPE_F32
    p.cache_type_v = xlc.ggml_type.GGML_TYPE_F32
    return xlc.Server(p)


def llama_greedy(s, ids, n, eos):
    """One token per request, so each reply's single log-probability entry is that token (the server merges
    entries of tokens that end inside a UTF-8 character); an end-of-generation reply is the EOS token."""
    out, logprobs = [], []
    for _ in range(n):
        r = s.handle_completions({"prompt": ids + out, "n_predict": 1, "temperature": 0, "n_probs": 1, "cache_prompt": False})
        logprobs_reply = r["choices"][0]["logprobs"]
        if logprobs_reply is None:  # a token ending inside a UTF-8 character is held back: unreadable here
            out.append(None)
            break
        content = logprobs_reply["content"]
        if not content:
            out.append(eos)
            break
        out.append(content[0]["id"])
        logprobs.append(content[0]["logprob"])
        if out[-1] == eos:
            break
    return out, logprobs


def transformers_greedy(model, ids, n):
    """Greedy decoding that stops after the end-of-sequence token, as llama.cpp's server does."""
    eos = model.config.eos_token_id
    x = torch.tensor([ids])
    out, logprobs = [], []
    with torch.no_grad():
        for _ in range(n):
            lp = torch.log_softmax(model(x).logits[0, -1].double(), -1)
            t = int(lp.argmax())
            out.append(t)
            logprobs.append(float(lp[t]))
            if t == eos:
                break
            x = torch.cat([x, torch.tensor([[t]])], 1)
    return out, logprobs


def compare(path, ids, n):
    folder, name = os.path.dirname(path), os.path.basename(path)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name).eval()
    s = server(path)
    a, la = llama_greedy(s, ids, n, model.config.eos_token_id)
    b, lb = transformers_greedy(model, ids, n)
    common = min(len(la), next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), len(a)))
    return {"llama_cpp": a, "transformers": b, "ids_equal": a == b, "logprobs_compared": common,
            "logprob_max_abs_diff": max(abs(x - y) for x, y in zip(la[:common], lb[:common])) if common else None}, s, model


def next_token_agreement(path, rows):
    """At every prefix of every row: llama.cpp's most likely next token and its log-probability against
    transformers' logits of the same file (teacher forcing: one position never depends on another's choice)."""
    folder, name = os.path.dirname(path), os.path.basename(path)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name).eval()
    s = server(path)
    equal = compared = unreadable = 0
    worst = 0.0
    for row in rows:
        with torch.no_grad():
            lp = torch.log_softmax(model(torch.tensor([row])).logits[0].double(), -1)
        for n in range(1, len(row) + 1):
            r = s.handle_completions({"prompt": row[:n], "n_predict": 1, "temperature": 0, "n_probs": 1, "cache_prompt": False})
            reply = r["choices"][0]["logprobs"]
            if reply is None or not reply["content"]:
                unreadable += 1
                continue
            t, l = reply["content"][0]["id"], reply["content"][0]["logprob"]
            compared += 1
            equal += int(t == int(lp[n - 1].argmax()))
            worst = max(worst, abs(l - float(lp[n - 1][t])))
    return {"positions": compared, "top1_equal": equal, "held_back_by_server": unreadable, "logprob_max_abs_diff": worst}


def main():
    verdict = {"xllamacpp": "2026.10.11549", "fixtures": {}}
    rows = load_file(os.path.join(EXPORTS, "expected.safetensors"))["input_ids"].tolist()
    with open(os.path.join(EXPORTS, "verdict.json")) as f:
        cases = sorted(json.load(f))
    for case in cases:
        # A file llama.cpp refuses is recorded, and the others still run. (The tiny phi3 fixture is one:
        # llama.cpp sets token attributes for any model whose name contains "phi3" by looking up
        # <|endoftext|>, which the tiny vocabulary does not have; real Phi-3 vocabularies do.)
        try:
            verdict["fixtures"][case] = next_token_agreement(os.path.join(EXPORTS, case + ".gguf"), rows)
        except RuntimeError as e:
            verdict["fixtures"][case] = {"llama_cpp_refused": str(e)}
        print(case, json.dumps(verdict["fixtures"][case]))

    real = os.path.join(ROOT, ".build", "real_gguf_export")
    if os.path.isdir(real):
        sys.path.insert(0, HERE)
        from check_real_gguf import texts
        corpus = texts()
        verdict["real"] = {}
        # The original Q4_1 file llama.cpp's own converter wrote is the control: how far llama.cpp's quantized
        # kernels (which also quantize activations) move greedy decoding from transformers' on the same file.
        files = [os.path.join(real, n) for n in sorted(os.listdir(real))] + [os.path.join(ROOT, ".build", "models", "SmolLM2-135M-Instruct.Q4_1.gguf")]
        for path in files:
            name = os.path.basename(path)
            tok = AutoTokenizer.from_pretrained(os.path.dirname(path), gguf_file=name)
            chat = tok.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}], add_generation_prompt=True)
            chat = chat["input_ids"] if hasattr(chat, "keys") else chat
            result, s, _ = compare(path, list(chat), 16)
            counts = [s.handle_completions({"prompt": t, "n_predict": 1, "temperature": 0, "cache_prompt": False})["usage"]["prompt_tokens"]
                      for t in corpus if t]
            expected = [len(tok(t)["input_ids"]) for t in corpus if t]
            result["prompt_token_counts_equal"] = sum(x == y for x, y in zip(counts, expected))
            result["texts"] = len(expected)
            result["answer"] = tok.decode(result["llama_cpp"], skip_special_tokens=True)
            verdict["real"][name] = result
            print(name, json.dumps(result))

    quill = os.path.join(ROOT, "out", "quickstart", "quill-135m.q8_0.gguf")
    if os.path.exists(quill):
        s = server(quill)
        verdict["quickstart"] = {q: s.handle_chat_completions({"messages": [{"role": "user", "content": q}], "max_tokens": 20,
                                                                "temperature": 0})["choices"][0]["message"]["content"]
                                 for q in ["What is your name?", "Who made you?", "What is the capital of Germany?"]}
        print("quickstart", json.dumps(verdict["quickstart"]))
    with open(os.path.join(ROOT, ".build", "llama_cpp_check.json"), "w") as f:
        f.write(json.dumps(verdict, indent=2) + "\n")
    # Two tiny fixtures cannot agree with llama.cpp whatever the exporter writes, so they are recorded only:
    # gemma3_f32 has head_dim 16, and llama.cpp scales Gemma 3 queries by 1/sqrt(head_dim) while transformers'
    # GGUF loading takes query_pre_attn_scalar's default 256 (real Gemma 3 models have head_dim 256, where both
    # agree); phi3_f32's tiny vocabulary lacks <|endoftext|>, which llama.cpp looks up for any model named phi3.
    known = {"gemma3_f32", "phi3_f32"}
    ok = all(v["top1_equal"] == v["positions"] > 0 for k, v in verdict["fixtures"].items() if k not in known)
    # Our exports must tokenize as transformers does (and F32 decode as it does); the control is only recorded:
    # its tokenizer.ggml.pre "smollm" makes llama.cpp split digits, which transformers' GGUF tokenizer does not.
    ok &= all(v["prompt_token_counts_equal"] == v["texts"] and (v["ids_equal"] or "f32" not in k)
              for k, v in verdict.get("real", {}).items() if k != "SmolLM2-135M-Instruct.Q4_1.gguf")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    torch.set_num_threads(2)
    main()
