"""PyTorch + PEFT LoRA step on the 135M Llama-shaped model (or SmolLM2-1.7B's shape with --shape 1.7b):
LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", lora_dropout=0), base in f32 (what CPU
fine-tuning with PEFT uses), batch 4×256, loss over every next token, clip_grad_norm_(1.0) over the
trainable parameters, AdamW; same thread count as the Swift benchmark. One round: one warm-up step, then
the median of 3. Prints one JSON line (tokens_per_second, peak_rss_bytes); the Swift `lora` section
runs this script in rounds interleaved with its own."""
import json
import sys

import torch
from peft import LoraConfig, get_peft_model
from transformers import LlamaConfig, LlamaForCausalLM

from bench_model import config_135m, setup_threads, time_steps


def config_17b():
    return LlamaConfig(vocab_size=49152, hidden_size=2048, intermediate_size=8192, num_hidden_layers=24,
                       num_attention_heads=32, num_key_value_heads=32, max_position_embeddings=8192,
                       rms_norm_eps=1e-5, tie_word_embeddings=True)


def main():
    threads = setup_threads()
    torch.manual_seed(0)
    config = config_17b() if "--shape" in sys.argv and sys.argv[sys.argv.index("--shape") + 1] == "1.7b" else config_135m()
    model = get_peft_model(LlamaForCausalLM(config), LoraConfig(r=16, lora_alpha=32, target_modules="all-linear",
                                                                lora_dropout=0.0, task_type="CAUSAL_LM")).train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trainable, lr=1e-4)
    big = config.hidden_size == 2048
    ids = torch.randint(0, config.vocab_size, (1, 512) if big else (4, 256))
    if big:  # as ours: activation checkpointing, one timed step without warm-up
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()

    def step():
        opt.zero_grad()
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        opt.step()

    t, rss = time_steps(step, runs=1, warmup=0) if big else time_steps(step)
    print(json.dumps({"torch": torch.__version__, "threads": threads, "tokens_per_second": ids.numel() / t,
                      "peak_rss_bytes": rss, "trainable": sum(p.numel() for p in trainable)}))


if __name__ == "__main__":
    main()
