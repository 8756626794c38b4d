"""Tiny random models of each supported family, saved by transformers' save_pretrained, with the logits
and greedy continuations transformers computes for them. Writes ../../Tests/Fixtures/models/<name>/:

  config.json, model.safetensors (or shards + index)   what save_pretrained wrote
  expected.safetensors                                  input_ids I64 [B, T], logits F32 [B, T, V],
                                                        prompt I64 [P], generated I64 [G] (greedy, no EOS stop)

Run from Scripts/reference: python3 gen_models.py   (pinned versions: requirements.txt; CPU only)
Re-running reproduces the same bytes: fixed seeds, deterministic CPU kernels, one thread.
"""
import json
import os
import shutil

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

import torch
from safetensors.torch import save_file
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM, MistralConfig, \
    MistralForCausalLM, Qwen2Config, Qwen2ForCausalLM

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "Tests", "Fixtures", "models")
torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)

# head_dim 16 and 20 so the SIMD paths (8 lanes) and their scalar tails both run.
COMMON = dict(vocab_size=96, hidden_size=64, intermediate_size=88, num_hidden_layers=2,
              num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64, initializer_range=0.2)


def perturb(model, seed):
    """transformers initialises norms to one and biases to zero; random values test that we read them."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1:
                base = 1.0 if ("norm" in name or "ln_" in name) and name.endswith("weight") else 0.0
                p.copy_(base + 0.1 * torch.randn(p.shape, generator=g))


def build(name, config, cls, seed, dtype=torch.float32, shard=None, v4_layout=False):
    torch.manual_seed(seed)
    model = cls(config).eval()
    perturb(model, seed + 1)
    if config.tie_word_embeddings:
        model.tie_weights()
    folder = os.path.join(OUT, name)
    shutil.rmtree(folder, ignore_errors=True)
    saved = model.to(dtype)
    kwargs = {"max_shard_size": shard} if shard else {}
    saved.save_pretrained(folder, **kwargs)
    for extra in ("generation_config.json",):
        p = os.path.join(folder, extra)
        if os.path.exists(p):
            os.remove(p)
    if v4_layout:
        to_v4(os.path.join(folder, "config.json"))
    # Expected values come from the model transformers loads back from disk, upcast to f32 (the
    # project computes in f32 whatever the storage dtype).
    loaded = cls.from_pretrained(folder, dtype=torch.float32).eval()
    g = torch.Generator().manual_seed(seed + 2)
    ids = torch.randint(0, config.vocab_size, (2, 11), generator=g)
    prompt = torch.randint(0, config.vocab_size, (1, 5), generator=g)
    with torch.no_grad():
        logits = loaded(input_ids=ids).logits.float().contiguous()
        gen = loaded.generate(prompt, max_new_tokens=12, do_sample=False, eos_token_id=None, pad_token_id=0,
                              min_new_tokens=12)
    save_file({"input_ids": ids.to(torch.int64).contiguous(), "logits": logits,
               "prompt": prompt[0].to(torch.int64).contiguous(),
               "generated": gen[0, prompt.shape[1]:].to(torch.int64).contiguous()},
              os.path.join(folder, "expected.safetensors"), metadata={"format": "pt"})
    print(f"{name}: {sum(p.numel() for p in model.parameters())} parameters, logits absmax {logits.abs().max():.3f}")


def to_v4(path):
    """Rewrites a transformers-5 config.json in the transformers-4 layout (torch_dtype, rope_theta, rope_scaling)."""
    with open(path) as f:
        c = json.load(f)
    if "dtype" in c:
        c["torch_dtype"] = c.pop("dtype")
    rp = c.pop("rope_parameters", None)
    if rp is not None:
        c["rope_theta"] = rp.pop("rope_theta")
        scaling = dict(rp)
        if scaling.get("rope_type") == "linear":
            scaling["type"] = scaling.pop("rope_type")  # the oldest files say "type"
        c["rope_scaling"] = None if scaling.get("rope_type") == "default" else scaling
    c["transformers_version"] = "4.46.0"
    with open(path, "w") as f:
        f.write(json.dumps(c, indent=2, sort_keys=True) + "\n")


def main():
    os.makedirs(OUT, exist_ok=True)
    llama3 = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
              "original_max_position_embeddings": 16}
    build("llama_gqa_llama3rope", LlamaConfig(**COMMON, rope_parameters={"rope_theta": 500000.0, **llama3},
                                              tie_word_embeddings=False), LlamaForCausalLM, 10)
    build("llama_tied_linear_bias_v4", LlamaConfig(**{**COMMON, "hidden_size": 60, "num_attention_heads": 6, "num_key_value_heads": 3}, head_dim=20,
                                                   attention_bias=True, mlp_bias=True, tie_word_embeddings=True,
                                                   rope_parameters={"rope_type": "linear", "factor": 2.0,
                                                                    "rope_theta": 10000.0}),
          LlamaForCausalLM, 20, v4_layout=True)
    build("mistral_sharded", MistralConfig(**COMMON, tie_word_embeddings=False, sliding_window=None),
          MistralForCausalLM, 30, shard="80KB")
    build("qwen2_bias_tied", Qwen2Config(**COMMON, tie_word_embeddings=True), Qwen2ForCausalLM, 40)
    build("llama_bf16", LlamaConfig(**COMMON, tie_word_embeddings=False), LlamaForCausalLM, 50, dtype=torch.bfloat16)
    build("gpt2", GPT2Config(vocab_size=96, n_embd=64, n_layer=2, n_head=4, n_positions=64, initializer_range=0.2,
                             attn_pdrop=0.0, embd_pdrop=0.0, resid_pdrop=0.0, bos_token_id=0, eos_token_id=0), GPT2LMHeadModel, 60)
    build_chat_model()


def build_chat_model():
    """A tiny Llama with the SmolLM tokenizer the project ships, and what transformers does with it from
    the command line's point of view: token ids, greedy continuations (plain and through the chat
    template), and the mean token loss of a small JSONL file."""
    from transformers import AutoTokenizer
    tok_dir = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "Tokenizers", "smollm")
    tok = AutoTokenizer.from_pretrained(tok_dir)
    config = LlamaConfig(**{**COMMON, "vocab_size": len(tok)}, tie_word_embeddings=True,
                         bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    torch.manual_seed(70)
    model = LlamaForCausalLM(config).eval()
    perturb(model, 71)
    folder = os.path.join(OUT, "smollm_chat")
    shutil.rmtree(folder, ignore_errors=True)
    model.save_pretrained(folder)
    os.remove(os.path.join(folder, "generation_config.json"))
    for f in os.listdir(tok_dir):
        shutil.copy(os.path.join(tok_dir, f), folder)
    prompts = ["Hello world", "What is 2 + 2?", "  spaces  and\nnewlines 123"]
    cases = []
    for p in prompts:
        ids = tok(p)["input_ids"]
        with torch.no_grad():
            out = model.generate(torch.tensor([ids]), max_new_tokens=12, do_sample=False, pad_token_id=0)
        plain = tok.decode(out[0, len(ids):], skip_special_tokens=True)
        chat_ids = tok.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True,
                                           tokenize=True, return_dict=False)
        if isinstance(chat_ids, dict):
            chat_ids = chat_ids["input_ids"]
        with torch.no_grad():
            out = model.generate(torch.tensor([chat_ids]), max_new_tokens=12, do_sample=False, pad_token_id=0)
        chat = tok.decode(out[0, len(chat_ids):], skip_special_tokens=True)
        cases.append({"prompt": p, "ids": ids, "generated": plain, "chat_ids": list(chat_ids), "chat_generated": chat})
    texts = ["The quick brown fox jumps over the lazy dog.", "1 2 3 4 5 6 7 8 9 10", "Hello, hello, hello!"]
    with open(os.path.join(folder, "eval.jsonl"), "w") as f:
        for t in texts:
            f.write(json.dumps({"text": t}) + "\n")
    total, count = 0.0, 0
    for t in texts:
        ids = torch.tensor([tok(t)["input_ids"]])
        with torch.no_grad():
            logits = model(input_ids=ids).logits[0, :-1].double()
        total += torch.nn.functional.cross_entropy(logits, ids[0, 1:], reduction="sum").item()
        count += ids.shape[1] - 1
    with open(os.path.join(folder, "expected_cli.json"), "w") as f:
        f.write(json.dumps({"cases": cases, "eval_mean_loss": total / count, "eval_tokens": count}, indent=2,
                           sort_keys=True, ensure_ascii=False) + "\n")
    print(f"smollm_chat: vocab {len(tok)}, eval loss {total / count:.4f} over {count} tokens")


if __name__ == "__main__":
    main()
