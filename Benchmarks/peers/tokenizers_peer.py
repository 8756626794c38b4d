#!/usr/bin/env python3
"""Peer for TokenizerBenchmark.swift: HF tokenizers' encode speed and load time on the same files.

Creates (once) in the cache directory (default /tmp/swift-finetune-bench, or argv[1]):
  corpus.txt                 >= 10 MB of mixed text, generated deterministically (seeded)
  bpe50k/tokenizer.json      a 50k-vocab GPT-2-style byte-level BPE trained on that corpus
and writes tokenizers_peer.json with encode MB/s (one thread, line by line, median of 3), load time
(median of 3), and the token count and id checksum the Swift side must reproduce.
"""
import json
import os
import random
import statistics
import sys
import time

os.environ["RAYON_NUM_THREADS"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"

import tokenizers  # noqa: E402
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers  # noqa: E402

CACHE = sys.argv[1] if len(sys.argv) > 1 else "/tmp/swift-finetune-bench"
CORPUS_BYTES = 10 * 1024 * 1024 + 1
SYLLABLES = [c + v for c in "bcdfghjklmnprstvwzBCDKLMST" for v in ["a", "e", "i", "o", "u", "ai", "ou", "ee"]]
CYRILLIC = "абвгдежзийклмнопрстуфхцчшщыэюя"
CJK = [chr(0x4E00 + i * 7) for i in range(2500)]
EMOJI = ["😀", "👍🏽", "🚀", "👨‍👩‍👧", "❤️", "🎉"]
CODE = ["def {w}(x, y=None):\n    return x + {n}\n", "for (int i = 0; i < {n}; ++i) {{ {w}[i] = i * 2; }}\n",
        "if {w} != nil {{\n\tprint(\"{w}: \\({n})\")\n}}\n", "const {w} = await fetch(`/api/{w}?id={n}`);\n"]


def build_corpus(path):
    rng = random.Random(20240501)
    lexicon = ["".join(rng.choice(SYLLABLES) for _ in range(rng.randint(1, 4))) for _ in range(60000)]
    weights = [1.0 / (i + 1) ** 1.05 for i in range(len(lexicon))]
    cyr = ["".join(rng.choice(CYRILLIC) for _ in range(rng.randint(2, 9))) for _ in range(8000)]
    out, size = [], 0
    while size < CORPUS_BYTES:
        kind = rng.random()
        if kind < 0.70:
            words = rng.choices(lexicon, weights, k=rng.randint(5, 30))
            line = " ".join(words).capitalize() + rng.choice([".", "!", "?", ",", ";", "..."])
            if rng.random() < 0.3:
                line += " " + str(rng.randint(0, 10 ** rng.randint(1, 9)))
            if rng.random() < 0.05:
                line += " " + rng.choice(EMOJI)
        elif kind < 0.82:
            line = " ".join(rng.choice(cyr) for _ in range(rng.randint(4, 20))).capitalize() + "."
        elif kind < 0.90:
            line = "".join(rng.choice(CJK) for _ in range(rng.randint(8, 40))) + "。"
        else:
            line = rng.choice(CODE).format(w=rng.choice(lexicon[:3000]), n=rng.randint(0, 99999)).rstrip("\n")
        out.append(line)
        size += len(line.encode("utf-8")) + 1
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(out) + "\n")


def build_tokenizer(corpus, out_dir):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(vocab_size=50000, min_frequency=2, show_progress=False,
                                  special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train([corpus], trainer=trainer)
    os.makedirs(out_dir, exist_ok=True)
    tok.save(os.path.join(out_dir, "tokenizer.json"))


def main():
    os.makedirs(CACHE, exist_ok=True)
    corpus = os.path.join(CACHE, "corpus.txt")
    tok_dir = os.path.join(CACHE, "bpe50k")
    if not os.path.exists(corpus):
        build_corpus(corpus)
    tok_path = os.path.join(tok_dir, "tokenizer.json")
    if not os.path.exists(tok_path):
        t0 = time.perf_counter()
        build_tokenizer(corpus, tok_dir)
        print(f"trained tokenizer in {time.perf_counter() - t0:.1f} s")
    with open(corpus, encoding="utf-8") as f:
        lines = f.read().split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    nbytes = sum(len(l.encode("utf-8")) for l in lines)

    loads = []
    for _ in range(3):
        t0 = time.perf_counter()
        tok = Tokenizer.from_file(tok_path)
        loads.append(time.perf_counter() - t0)
    runs = []
    count = checksum = 0
    for _ in range(3):
        t0 = time.perf_counter()
        encoded = [tok.encode(l, add_special_tokens=False).ids for l in lines]
        runs.append(time.perf_counter() - t0)
    for ids in encoded:
        count += len(ids)
        for i in ids:
            checksum = (checksum * 31 + i) % 1000000007
    merges = len(json.load(open(tok_path, encoding="utf-8"))["model"]["merges"])
    result = dict(tokenizers_version=tokenizers.__version__, corpus=corpus, tokenizer=tok_dir, corpus_bytes=nbytes,
                  lines=len(lines), tokens=count, id_checksum=checksum, merges=merges,
                  vocab_size=tok.get_vocab_size(), encode_mb_per_s=nbytes / 1e6 / statistics.median(runs),
                  encode_seconds=runs, load_ms=statistics.median(loads) * 1000)
    with open(os.path.join(CACHE, "tokenizers_peer.json"), "w") as f:
        json.dump(result, f, indent=1)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
