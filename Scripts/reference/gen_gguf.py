"""GGUF fixtures, written by the gguf package (0.19.0) and read back by it and by transformers 5.23's own
GGUF loading, into ../../Tests/Fixtures/gguf/:

  quants.gguf + quants_expected.safetensors   one tensor per ggml type we read (F32 F16 BF16 Q8_0 Q4_0
      Q4_1 Q5_0 Q5_1 Q4_K Q5_K Q6_K), both random raw blocks (every bit pattern, scales kept finite) and
      real quantizations of normal data; expected = gguf.quants.dequantize of what GGUFReader reads.
  quantize_expected.safetensors   f32 sources and the bytes gguf.quants.quantize makes of them as Q8_0, F16
      and BF16: what `swift-finetune export --format gguf` must write.
  <case>.gguf + <case>/   tiny models as llama.cpp's converter lays them out (Q/K rows permuted, llama.cpp
      names and keys, tokenizer in metadata), and what transformers makes of them:
      config.json, generation_config.json, tokenizer.json, tokenizer_config.json, expected.safetensors (the
      state dict) and ids.json (token ids of TEXTS). Cases: llama_bpe (SmolLM-style byte-level BPE, tied,
      Q8_0/Q4_x/Q5_x), qwen2_bpe (biases, untied, F16/BF16, qwen2 pre-tokenizer), llama_spm (SentencePiece
      vocabulary with scores and no merges, K-quants, GGUF v2), mistral_spm (llama_spm named "mistral").
  (What our exporter writes is proven by gen_gguf_export.py, into ../../Tests/Fixtures/gguf_export/.)

What we store beside transformers' output, and why: config.json drops `quantization_config` (it describes
keeping the GGUF file; a converted folder has plain weights) and gains `architectures` (what
save_pretrained adds; transformers refuses to save a GGUF-loaded model). tokenizer_config.json drops
`is_local`/`local_files_only`/`model_max_length` (where and how it was loaded; the length is transformers'
1e30 placeholder) and holds the chat template inline. transformers cannot load the weights of a file named
"mistral" (gguf 0.19 has no "mistral" architecture), so mistral_spm has no expected.safetensors: its
tensors must equal llama_spm's.

Run from Scripts/reference/:  python3 gen_gguf.py     (deterministic: fixed seeds)
"""
import json
import os
import re
import shutil

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TQDM_DISABLE", "1")

import numpy as np
import torch
import gguf
from gguf import GGUFReader, GGUFWriter, GGMLQuantizationType as Q
from safetensors.numpy import save_file as save_numpy
from safetensors.torch import save_file as save_torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
OUT = os.path.join(ROOT, "Tests", "Fixtures", "gguf")

TEXTS = [
    "Hello world", "Hello world 123, 4567 and 89.", "  leading spaces and trailing  ", "new\nlines\n\n and\ttabs",
    "It's what you'll do, isn't it? We've I'm they'd", "café naïve façade Ünïcödé", "日本語のテキスト", "emoji 🙂👍🏽 done",
    "<|im_start|>user\nhi there<|im_end|>\n<|im_start|>assistant\n", "<s> starts </s> ends <unk>", "a", "",
    "    ", "x = [1, 2, 3]; y = {'k': v}  # comment", "UPPER lower MiXeD", "don't stop", "e\u0301 vs \u00e9",
    "The capital of Belgium is Brussels.", "What is 37 - 29?", "tabs\t\tand  double  spaces",
]

# ---------------------------------------------------------------- quants


def finite_f16(rng, n):
    """n finite half-precision values as raw little-endian bytes (the scale fields of random blocks)."""
    return rng.normal(0, 0.05, n).astype(np.float16).view(np.uint8).reshape(n, 2)


# (type, byte offsets of the f16 scale fields inside a block)
SCALE_FIELDS = {
    Q.Q8_0: [0], Q.Q4_0: [0], Q.Q4_1: [0, 2], Q.Q5_0: [0], Q.Q5_1: [0, 2], Q.Q4_K: [0, 2], Q.Q5_K: [0, 2], Q.Q6_K: [208],
}


def random_blocks(rng, qtype, rows, cols):
    block, size = gguf.GGML_QUANT_SIZES[qtype]
    n = rows * cols // block
    raw = rng.integers(0, 256, (n, size), dtype=np.uint8)
    for at in SCALE_FIELDS[qtype]:
        raw[:, at:at + 2] = finite_f16(rng, n)
    return raw.reshape(rows, cols // block * size)


def quants():
    rng = np.random.default_rng(1234)
    path = os.path.join(OUT, "quants.gguf")
    w = GGUFWriter(path, "llama")
    rows, cols = 3, 512
    specials = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e-45, -3e-39, 65504.0, 3.4e38], dtype=np.float32)
    f32 = rng.normal(0, 1, rows * cols).astype(np.float32)
    f32[:len(specials)] = specials
    w.add_tensor("f32", f32.reshape(rows, cols))
    # Every 16-bit pattern class: random bits cover NaN payloads, infinities, subnormals, both zeros.
    w.add_tensor("f16", rng.integers(0, 65536, (rows, cols), dtype=np.uint16).view(np.float16))
    w.add_tensor("bf16", rng.integers(0, 65536, (rows, cols), dtype=np.uint16).view(np.uint8).reshape(rows, cols * 2),
                 raw_dtype=Q.BF16)
    for qtype in [Q.Q8_0, Q.Q4_0, Q.Q4_1, Q.Q5_0, Q.Q5_1, Q.Q4_K, Q.Q5_K, Q.Q6_K]:
        name = qtype.name.lower()
        w.add_tensor(f"{name}.random", random_blocks(rng, qtype, rows, cols), raw_dtype=qtype)
        if qtype in (Q.Q8_0, Q.Q4_0, Q.Q4_1, Q.Q5_0, Q.Q5_1):  # the ones gguf can quantize itself
            data = rng.normal(0, 0.1, (rows, cols)).astype(np.float32)
            w.add_tensor(f"{name}.quantized", gguf.quants.quantize(data, qtype), raw_dtype=qtype)
    # A 3-D tensor: dims are stored innermost first.
    w.add_tensor("q8_0.3d", gguf.quants.quantize(rng.normal(0, 1, (2, 3, 64)).astype(np.float32), Q.Q8_0), raw_dtype=Q.Q8_0)
    write(w)

    expected = {}
    types = {}
    for t in GGUFReader(path).tensors:
        expected[t.name] = np.ascontiguousarray(gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32))
        types[t.name] = t.tensor_type.name
    save_numpy(expected, os.path.join(OUT, "quants_expected.safetensors"), metadata={"types": json.dumps(types, sort_keys=True)})

    # What export must write: gguf.quants.quantize of f32 sources (llama.cpp's converter calls the same).
    source = rng.normal(0, 0.5, (4, 64)).astype(np.float32)
    source[0, :32] = 0.0                                    # an all-zero block: d = 0, every q = 0
    source[1, :8] = [1.5, -2.5, 0.5, 127.0, -127.0, 1e-8, 3e4, -3e4]
    halves = source.copy()
    halves[2, :10] = [np.nan, -np.nan, np.inf, -np.inf, 65519.0, 65520.0, 1e-8, -6e-8, 3.4e38, 1.0009765625]
    out = {
        "source.q8_0": source, "quantized.q8_0": gguf.quants.quantize(source, Q.Q8_0),
        "source.half": halves,
        "quantized.f16": gguf.quants.quantize(halves, Q.F16).view(np.uint8),
        "quantized.bf16": gguf.quants.quantize(halves, Q.BF16).view(np.uint8),
    }
    save_numpy({k: np.ascontiguousarray(v) for k, v in out.items()}, os.path.join(OUT, "quantize_expected.safetensors"))


def write(w):
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


# ---------------------------------------------------------------- tokenizers as llama.cpp stores them


def tokenizer_files(name):
    with open(os.path.join(ROOT, "Tokenizers", name, "tokenizer.json"), encoding="utf-8") as f:
        tj = json.load(f)
    with open(os.path.join(ROOT, "Tokenizers", name, "tokenizer_config.json"), encoding="utf-8") as f:
        tc = json.load(f)
    template = tc.get("chat_template")
    jinja = os.path.join(ROOT, "Tokenizers", name, "chat_template.jinja")
    if os.path.exists(jinja):
        with open(jinja, encoding="utf-8") as f:
            template = f.read()
    return tj, template


def token_list(tj):
    vocab = tj["model"]["vocab"]
    size = max(max(vocab.values()), max((a["id"] for a in tj["added_tokens"]), default=-1)) + 1
    tokens = [None] * size
    for t, i in vocab.items():
        tokens[i] = t
    for a in tj["added_tokens"]:
        tokens[a["id"]] = a["content"]
    assert None not in tokens
    return tokens


def add_bpe_vocab(w, tj, pre):
    """What llama.cpp's convert_hf_to_gguf writes for a byte-level BPE (its `_set_vocab_gpt2`)."""
    tokens = token_list(tj)
    special = {a["id"] for a in tj["added_tokens"] if a["special"]}
    added = {a["id"] for a in tj["added_tokens"]}
    types = [3 if i in special else 4 if i in added else 1 for i in range(len(tokens))]
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(pre)
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges([" ".join(m) if isinstance(m, list) else m for m in tj["model"]["merges"]])
    return tokens


def add_spm_vocab(w, tj, respell=None):
    """What llama.cpp writes for a SentencePiece model (`_set_vocab_sentencepiece`): scores (here -rank for
    pieces, 0 for specials and bytes, as a trained SentencePiece BPE model has them), token types, no merges.
    `respell` {id: token} renames tokens first (gen_gguf_families.py's Gemma-style vocabulary)."""
    tokens = token_list(tj)
    for i, t in (respell or {}).items():
        tokens[i] = t
    types, scores = [], []
    for i, t in enumerate(tokens):
        if t == "<unk>":
            types.append(2); scores.append(0.0)
        elif t in ("<s>", "</s>", "<bos>", "<eos>", "<pad>", "<mask>"):
            types.append(3); scores.append(0.0)
        elif re.fullmatch(r"<0x[0-9A-F]{2}>", t):
            types.append(6); scores.append(0.0)
        else:
            types.append(1); scores.append(float(-(i - 259)))
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    return tokens


# ---------------------------------------------------------------- models


def permute(weights, n_head, n_head_kv):
    """llama.cpp's LlamaModel.permute: Q/K rows from Hugging Face's rotate-half order to interleaved pairs."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:]).swapaxes(1, 2).reshape(weights.shape)


GGUF_NAMES = [("self_attn.q_proj", "attn_q"), ("self_attn.k_proj", "attn_k"), ("self_attn.v_proj", "attn_v"),
              ("self_attn.o_proj", "attn_output"), ("mlp.gate_proj", "ffn_gate"), ("mlp.up_proj", "ffn_up"),
              ("mlp.down_proj", "ffn_down"), ("input_layernorm", "attn_norm"), ("post_attention_layernorm", "ffn_norm")]


def gguf_name(hf):
    if hf == "model.embed_tokens.weight":
        return "token_embd.weight"
    if hf == "model.norm.weight":
        return "output_norm.weight"
    if hf == "lm_head.weight":
        return "output.weight"
    m = re.fullmatch(r"model\.layers\.(\d+)\.(.+)\.(weight|bias)", hf)
    for a, b in GGUF_NAMES:
        if m.group(2) == a:
            return f"blk.{m.group(1)}.{b}.{m.group(3)}"
    raise KeyError(hf)


def build_model(case, arch, cfg_class, model_class, cfg, tokenizer, name, types, permute_qk=True, version=3, seed=0):
    torch.manual_seed(seed)
    pad = cfg.pop("pad", None)
    config = cfg_class(**cfg)
    model = model_class(config).eval()
    with torch.no_grad():  # visible norms and biases, not all ones and zeros
        for k, p in model.named_parameters():
            if p.ndim == 1:
                p.copy_(torch.randn_like(p) * 0.1 + (1.0 if "norm" in k else 0.0))
    path = os.path.join(OUT, f"{case}.gguf")
    tj, template = tokenizer_files(tokenizer)
    w = GGUFWriter(path, arch)
    w.add_type("model")
    w.add_name(name)
    w.add_block_count(cfg["num_hidden_layers"])
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(cfg["hidden_size"])
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_head_count(cfg["num_attention_heads"])
    w.add_head_count_kv(cfg["num_key_value_heads"])
    w.add_rope_freq_base(cfg["rope_theta"])
    w.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    w.add_file_type(1)
    if arch == "llama":
        w.add_vocab_size(cfg["vocab_size"])
        w.add_rope_dimension_count(cfg["hidden_size"] // cfg["num_attention_heads"])
    if tokenizer == "llama2":
        add_spm_vocab(w, tj)
        w.add_add_space_prefix(True)
        w.add_add_bos_token(True)
        w.add_add_eos_token(False)
    else:
        add_bpe_vocab(w, tj, {"smollm": "smollm", "qwen2": "qwen2"}[tokenizer])
        w.add_add_bos_token(False)
    w.add_bos_token_id(cfg["bos_token_id"])
    w.add_eos_token_id(cfg["eos_token_id"])
    if pad is not None:
        w.add_pad_token_id(pad)
    if tokenizer == "llama2":
        w.add_unk_token_id(0)
    if template:
        w.add_chat_template(template)
    heads, kv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    for k, v in model.state_dict().items():
        if k == "lm_head.weight" and cfg.get("tie_word_embeddings"):
            continue
        a = v.numpy().astype(np.float32)
        if permute_qk and ".q_proj." in k:
            a = permute(a, heads, heads)
        if permute_qk and ".k_proj." in k:
            a = permute(a, heads, kv)
        qtype = Q.F32 if a.ndim == 1 else types(k)
        if qtype == Q.F32:
            w.add_tensor(gguf_name(k), a)
        elif qtype == Q.F16:
            w.add_tensor(gguf_name(k), a.astype(np.float16))
        elif qtype in (Q.Q4_K, Q.Q5_K, Q.Q6_K):  # gguf cannot quantize to K-quants: random blocks
            w.add_tensor(gguf_name(k), random_blocks(np.random.default_rng(seed), qtype, *a.shape), raw_dtype=qtype)
        else:
            w.add_tensor(gguf_name(k), gguf.quants.quantize(a, qtype), raw_dtype=qtype)
    w.add_quantization_version(2)
    write(w)
    if version != 3:
        with open(path, "r+b") as f:
            f.seek(4)
            f.write(version.to_bytes(4, "little"))
    return path


def expected_outputs(case, path, load_weights=True):
    """What transformers' own GGUF loading makes of the file, as the files a converted folder holds."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, GenerationConfig
    folder = os.path.join(OUT, case)
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    directory, file = os.path.dirname(path), os.path.basename(path)
    tok = AutoTokenizer.from_pretrained(directory, gguf_file=file)
    scratch = os.path.join(folder, "scratch")
    tok.save_pretrained(scratch)
    shutil.copy(os.path.join(scratch, "tokenizer.json"), folder)
    with open(os.path.join(scratch, "tokenizer_config.json"), encoding="utf-8") as f:
        tc = json.load(f)
    for k in ("is_local", "local_files_only", "model_max_length"):
        tc.pop(k, None)
    jinja = os.path.join(scratch, "chat_template.jinja")
    if os.path.exists(jinja):
        with open(jinja, encoding="utf-8") as f:
            tc["chat_template"] = f.read()
    with open(os.path.join(folder, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        f.write(json.dumps(tc, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
    shutil.rmtree(scratch)
    ids = [{"text": t, "ids": tok(t)["input_ids"], "decoded": tok.decode(tok(t)["input_ids"], skip_special_tokens=True)}
           for t in TEXTS]
    with open(os.path.join(folder, "ids.json"), "w", encoding="utf-8") as f:
        f.write(json.dumps(ids, indent=1, ensure_ascii=False) + "\n")

    if load_weights:
        model = AutoModelForCausalLM.from_pretrained(directory, gguf_file=file)
        config = model.config
        state = {k: v.contiguous() for k, v in model.state_dict().items()
                 if not (k == "lm_head.weight" and config.tie_word_embeddings)}
        save_torch(state, os.path.join(folder, "expected.safetensors"), metadata={"format": "pt"})
    else:
        config = AutoConfig.from_pretrained(directory, gguf_file=file)
    # What save_pretrained writes beside the weights (from_pretrained derives it from the config too).
    GenerationConfig.from_model_config(config).save_pretrained(folder)
    cd = json.loads(config.to_json_string(use_diff=True))
    cd.pop("quantization_config", None)
    cd.setdefault("dtype", "float32")  # the converted weights are f32 (only AutoConfig ran for mistral_spm)
    cd["architectures"] = [{"llama": "LlamaForCausalLM", "mistral": "MistralForCausalLM", "qwen2": "Qwen2ForCausalLM",
                           "qwen3": "Qwen3ForCausalLM", "gemma3_text": "Gemma3ForCausalLM", "phi3": "Phi3ForCausalLM"}[config.model_type]]
    with open(os.path.join(folder, "config.json"), "w") as f:
        f.write(json.dumps(cd, indent=2, sort_keys=True) + "\n")
    print(case, config.model_type, "tokenizer", type(tok).__name__, "vocab", len(tok))


def models():
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM
    small = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                 max_position_embeddings=128, rms_norm_eps=1e-5, rope_theta=10000.0)

    def llama_types(k):
        if "embed" in k:
            return Q.Q8_0
        return {"q_proj": Q.Q4_0, "k_proj": Q.Q4_1, "v_proj": Q.Q5_0, "o_proj": Q.Q5_1, "gate_proj": Q.Q8_0,
                "up_proj": Q.Q4_1, "down_proj": Q.Q4_0}[k.split(".")[-2]]
    p = build_model("llama_bpe", "llama", LlamaConfig, LlamaForCausalLM,
                    dict(small, vocab_size=900, tie_word_embeddings=True, bos_token_id=1, eos_token_id=2, pad=2),
                    "smollm", "Tiny SmolLM", llama_types, seed=1)
    expected_outputs("llama_bpe", p)

    p = build_model("qwen2_bpe", "qwen2", Qwen2Config, Qwen2ForCausalLM,
                    dict(small, vocab_size=1100, tie_word_embeddings=False, bos_token_id=0, eos_token_id=2, rope_theta=1000000.0),
                    "qwen2", "Tiny Qwen2", lambda k: Q.BF16 if "lm_head" in k else Q.F16, permute_qk=False, seed=2)
    expected_outputs("qwen2_bpe", p)

    def spm_types(k):
        if "down_proj" in k:
            return [Q.Q4_K, Q.Q5_K, Q.Q6_K][int(k.split(".")[2])]
        return Q.F16 if "embed" in k else Q.F32
    spm = dict(small, intermediate_size=256, num_hidden_layers=3, num_key_value_heads=4, rms_norm_eps=1e-6,
               vocab_size=1056, tie_word_embeddings=False, bos_token_id=1, eos_token_id=2)
    p = build_model("llama_spm", "llama", LlamaConfig, LlamaForCausalLM, dict(spm), "llama2", "Tiny SentencePiece Llama",
                    spm_types, version=2, seed=3)
    expected_outputs("llama_spm", p)
    p = build_model("mistral_spm", "llama", LlamaConfig, LlamaForCausalLM, dict(spm), "llama2", "mistral", spm_types, version=2, seed=3)
    expected_outputs("mistral_spm", p, load_weights=False)


def main():
    torch.set_num_threads(1)
    os.makedirs(OUT, exist_ok=True)
    quants()
    models()


if __name__ == "__main__":
    main()
