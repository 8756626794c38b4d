"""What the PyTorch peers share with the Swift benchmarks: the 135M Llama-shaped model (SmolLM2-135M's
shape), the thread count and where results go."""
import os

import torch
from transformers import LlamaConfig

OUT = os.environ.get("SWIFT_FINETUNE_BENCH_DIR", "/tmp/swift-finetune-bench")


def setup_threads():
    threads = int(os.environ.get("BENCH_THREADS", os.cpu_count()))
    torch.set_num_threads(threads)
    return threads


def time_steps(step, runs=3, warmup=1):
    """`warmup` calls of `step`, then the median seconds of `runs` calls, and this process's peak RSS."""
    import resource
    import statistics
    import time
    for _ in range(warmup):
        step()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def config_135m():
    return LlamaConfig(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                       num_attention_heads=9, num_key_value_heads=3, max_position_embeddings=2048,
                       rms_norm_eps=1e-5, tie_word_embeddings=True)
