"""GGUF fixtures for the families beyond llama/mistral/qwen2 (gen_gguf.py has those), written by the gguf
package (0.19.0) as llama.cpp's convert_hf_to_gguf.py lays them out, and what transformers 5.23's own GGUF
loading makes of them, into ../../Tests/Fixtures/gguf/:

  qwen3_bpe.gguf + qwen3_bpe/    Qwen3: q_norm/k_norm as attn_q_norm/attn_k_norm, Q/K rows not permuted
      (llama.cpp permutes for its llama architecture only), attention.key_length/value_length written (which
      transformers does not read for qwen3: its config keeps Qwen3Config's head_dim 128, so the model is
      built with head_dim 128), byte-level BPE with the qwen2 pre-tokenizer; F16 matrices, Q8_0 embedding.
  gemma3_spm.gguf + gemma3_spm/  Gemma 3 text: every norm weight stored as w + 1 (llama.cpp's norm_shift;
      transformers subtracts 1 on load), post_attention_norm / ffn_norm (pre-feedforward) / post_ffw_norm,
      key_length/value_length, sliding_window; a SentencePiece vocabulary without merges, Gemma's special
      tokens (<bos> <eos> <pad> <mask>, which transformers' GemmaTokenizer adds by name) and two tokens
      spelled as real spaces (Gemma files do that; transformers respells them with U+2581) -- transformers'
      Gemma builder ranks the recovered merges by file position, not by score; F32 and F16, untied head.
  phi3_spm.gguf + phi3_spm/      Phi-3: fused attn_qkv [q+2kv, H] and ffn_up holding gate then up [2I, H],
      rope.dimension_count, rope.scaling.original_context_length, attention.sliding_window (0 for none, as
      llama.cpp writes it); SentencePiece vocabulary (transformers' Phi-3 builder: a Prepend+Replace
      normalizer instead of Metaspace); F32 and F16, tied.

Each folder holds config.json, generation_config.json, tokenizer.json, tokenizer_config.json,
expected.safetensors and ids.json exactly as gen_gguf.py's `expected_outputs` writes them.

Run from Scripts/reference/:  python3 gen_gguf_families.py     (deterministic: fixed seeds)
"""
import os

import numpy as np
import torch
from gguf import GGUFWriter, GGMLQuantizationType as Q
import gguf

from gen_gguf import OUT, add_bpe_vocab, add_spm_vocab, expected_outputs, random_blocks, tokenizer_files, write

# Hugging Face module path (after model.layers.N.) -> llama.cpp tensor name, per architecture.
BLOCK_NAMES = {
    "qwen3": {"self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
              "self_attn.o_proj": "attn_output", "self_attn.q_norm": "attn_q_norm", "self_attn.k_norm": "attn_k_norm",
              "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down",
              "input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm"},
    "gemma3": {"self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
               "self_attn.o_proj": "attn_output", "self_attn.q_norm": "attn_q_norm", "self_attn.k_norm": "attn_k_norm",
               "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down",
               "input_layernorm": "attn_norm", "post_attention_layernorm": "post_attention_norm",
               "pre_feedforward_layernorm": "ffn_norm", "post_feedforward_layernorm": "post_ffw_norm"},
    "phi3": {"self_attn.qkv_proj": "attn_qkv", "self_attn.o_proj": "attn_output", "mlp.gate_up_proj": "ffn_up",
             "mlp.down_proj": "ffn_down", "input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm"},
}


def family_gguf_name(arch, hf):
    top = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
           "lm_head.weight": "output.weight"}
    if hf in top:
        return top[hf]
    parts = hf.split(".")
    layer, module, kind = parts[2], ".".join(parts[3:-1]), parts[-1]
    return f"blk.{layer}.{BLOCK_NAMES[arch][module]}.{kind}"


def checked_against_gguf_package(arch, names):
    """Our name table must be the gguf package's (the one transformers inverts)."""
    m = gguf.get_tensor_name_map({"qwen3": gguf.MODEL_ARCH.QWEN3, "gemma3": gguf.MODEL_ARCH.GEMMA3,
                                  "phi3": gguf.MODEL_ARCH.PHI3}[arch], 4)
    for hf in names:
        base, kind = hf.rsplit(".", 1)
        assert m.get_name(base) + "." + kind == family_gguf_name(arch, hf), hf


def build(case, arch, model, cfg, keys, vocab, types, seed, norm_shift=0.0, respell=None):
    path = os.path.join(OUT, f"{case}.gguf")
    w = GGUFWriter(path, arch)
    w.add_type("model")
    w.add_name(case)
    for key, value in keys:
        if isinstance(value, float):
            w.add_float32(f"{arch}.{key}", value)
        else:
            w.add_uint32(f"{arch}.{key}", value)
    w.add_file_type(1)
    tj, template = tokenizer_files(vocab)
    if vocab == "llama2":
        add_spm_vocab(w, tj, respell)
        w.add_add_space_prefix(arch != "gemma3")
        w.add_add_bos_token(True)
        w.add_add_eos_token(False)
        w.add_unk_token_id(0)
    else:
        add_bpe_vocab(w, tj, "qwen2")
        w.add_add_bos_token(False)
    w.add_bos_token_id(cfg["bos_token_id"])
    w.add_eos_token_id(cfg["eos_token_id"])
    if cfg.get("pad_token_id") is not None:
        w.add_pad_token_id(cfg["pad_token_id"])
    if template:
        w.add_chat_template(template)
    names = []
    for k, v in model.state_dict().items():
        if k == "lm_head.weight" and cfg.get("tie_word_embeddings"):
            continue
        names.append(k)
        a = v.numpy().astype(np.float32)
        name = family_gguf_name(arch, k)
        if norm_shift and name.endswith("norm.weight"):
            a = (torch.from_numpy(a) + norm_shift).numpy()  # llama.cpp: data_torch + norm_shift, in f32
        qtype = Q.F32 if a.ndim == 1 else types(k)
        if qtype == Q.F32:
            w.add_tensor(name, a)
        elif qtype == Q.F16:
            w.add_tensor(name, a.astype(np.float16))
        elif qtype in (Q.Q4_K, Q.Q5_K, Q.Q6_K):
            w.add_tensor(name, random_blocks(np.random.default_rng(seed), qtype, *a.shape), raw_dtype=qtype)
        else:
            w.add_tensor(name, gguf.quants.quantize(a, qtype), raw_dtype=qtype)
    checked_against_gguf_package(arch, names)
    w.add_quantization_version(2)
    write(w)
    return path


def randomized(model_class, config, seed):
    torch.manual_seed(seed)
    model = model_class(config).eval()
    with torch.no_grad():  # visible norms and biases, not all ones and zeros
        for k, p in model.named_parameters():
            if p.ndim == 1:
                p.copy_(torch.randn_like(p) * 0.1 + (1.0 if "norm" in k else 0.0))
    return model


def main():
    torch.set_num_threads(1)
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig, Phi3Config, Phi3ForCausalLM, Qwen3Config, Qwen3ForCausalLM

    # Qwen3: head_dim 128, the only one transformers' GGUF loading can build (it keeps Qwen3Config's default).
    cfg = dict(vocab_size=1100, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
               num_key_value_heads=1, head_dim=128, max_position_embeddings=256, rms_norm_eps=1e-6,
               tie_word_embeddings=False, bos_token_id=0, eos_token_id=2)
    model = randomized(Qwen3ForCausalLM, Qwen3Config(**cfg, rope_parameters={"rope_type": "default", "rope_theta": 1000000.0}), 11)
    keys = [("block_count", 2), ("context_length", 256), ("embedding_length", 32), ("feed_forward_length", 64),
            ("attention.head_count", 2), ("attention.head_count_kv", 1), ("rope.freq_base", 1000000.0),
            ("attention.layer_norm_rms_epsilon", 1e-6), ("attention.key_length", 128), ("attention.value_length", 128)]
    p = build("qwen3_bpe", "qwen3", model, cfg, keys, "qwen2",
              lambda k: Q.Q8_0 if "embed" in k else Q.BF16 if "lm_head" in k else Q.F16, seed=11)
    expected_outputs("qwen3_bpe", p)

    # Gemma 3: head_dim 16 (from key_length), 3 layers, untied.
    cfg = dict(vocab_size=1056, hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=4,
               num_key_value_heads=2, head_dim=16, max_position_embeddings=512, rms_norm_eps=1e-6,
               sliding_window=8, tie_word_embeddings=False, bos_token_id=1, eos_token_id=2, pad_token_id=1052)
    model = randomized(Gemma3ForCausalLM, Gemma3TextConfig(**cfg), 12)
    keys = [("context_length", 512), ("embedding_length", 32), ("block_count", 3), ("feed_forward_length", 64),
            ("attention.head_count", 4), ("attention.layer_norm_rms_epsilon", 1e-6), ("attention.key_length", 16),
            ("attention.value_length", 16), ("rope.freq_base", 1000000.0), ("attention.sliding_window", 8),
            ("attention.head_count_kv", 2)]
    p = build("gemma3_spm", "gemma3", model, cfg, keys, "llama2",
              lambda k: Q.F16 if "embed" in k or "up_proj" in k else Q.F32, seed=12, norm_shift=1.0,
              respell={1: "<bos>", 2: "<eos>", 1052: "<pad>", 1053: "<mask>", 1054: "  ", 1055: "   "})
    expected_outputs("gemma3_spm", p)

    # Phi-3: fused projections, tied, no sliding window.
    cfg = dict(vocab_size=1056, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
               num_key_value_heads=2, max_position_embeddings=4096, original_max_position_embeddings=4096,
               rms_norm_eps=1e-5, sliding_window=None, tie_word_embeddings=True, bos_token_id=1, eos_token_id=2,
               pad_token_id=2)  # without a padding id transformers keeps Phi3Config's 32000, past this vocabulary
    model = randomized(Phi3ForCausalLM, Phi3Config(**cfg), 13)
    keys = [("context_length", 4096), ("rope.scaling.original_context_length", 4096), ("embedding_length", 32),
            ("feed_forward_length", 48), ("block_count", 2), ("attention.head_count", 4), ("attention.head_count_kv", 2),
            ("attention.layer_norm_rms_epsilon", 1e-5), ("rope.dimension_count", 8), ("rope.freq_base", 10000.0),
            ("attention.sliding_window", 0)]
    p = build("phi3_spm", "phi3", model, cfg, keys, "llama2", lambda k: Q.F16 if "qkv" in k else Q.F32, seed=13)
    expected_outputs("phi3_spm", p)


if __name__ == "__main__":
    main()
