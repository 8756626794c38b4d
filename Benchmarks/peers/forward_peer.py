"""PyTorch eager forward on the 135M Llama-shaped model, batch 4×256, f32, the same thread count as the
Swift benchmark; median of 5 after one warm-up. Writes $SWIFT_FINETUNE_BENCH_DIR/forward_peer.json."""
import json
import os
import statistics
import time

import torch
from transformers import LlamaForCausalLM

from bench_model import OUT, config_135m, setup_threads


def main():
    threads = setup_threads()
    torch.manual_seed(0)
    config = config_135m()
    model = LlamaForCausalLM(config).eval()
    ids = torch.randint(0, config.vocab_size, (4, 256))
    times = []
    with torch.no_grad():
        model(input_ids=ids)
        for _ in range(5):
            t0 = time.perf_counter()
            model(input_ids=ids)
            times.append(time.perf_counter() - t0)
    t = statistics.median(times)
    result = {"torch": torch.__version__, "threads": threads, "seconds": t, "tokens_per_second": ids.numel() / t}
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "forward_peer.json"), "w") as f:
        json.dump(result, f)
    print(f"PyTorch forward: {result['tokens_per_second']:.1f} tokens/s ({t:.3f} s/batch, {threads} threads)")


if __name__ == "__main__":
    main()
