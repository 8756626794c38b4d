"""PyTorch eager full fine-tune step on the 135M Llama-shaped model: batch 4×256, f32, loss over every
next token, clip_grad_norm_(1.0), AdamW; same thread count as the Swift benchmark; median of 3 after one
warm-up. Peak RSS from getrusage. Writes $SWIFT_FINETUNE_BENCH_DIR/train_peer.json."""
import json
import os

import torch
from transformers import LlamaForCausalLM

from bench_model import OUT, config_135m, setup_threads, time_steps


def main():
    threads = setup_threads()
    torch.manual_seed(0)
    config = config_135m()
    model = LlamaForCausalLM(config).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    ids = torch.randint(0, config.vocab_size, (4, 256))

    def step():
        opt.zero_grad()
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()

    t, rss = time_steps(step)
    result = {"torch": torch.__version__, "threads": threads, "seconds": t, "tokens_per_second": ids.numel() / t,
              "peak_rss_bytes": rss}
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "train_peer.json"), "w") as f:
        json.dump(result, f)
    print(f"PyTorch train step: {result['tokens_per_second']:.1f} tokens/s ({t:.3f} s/step), peak RSS {rss / 1e9:.2f} GB")


if __name__ == "__main__":
    main()
