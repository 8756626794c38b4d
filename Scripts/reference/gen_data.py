"""Golden token ids and labels for the Trainer's data pipeline (Sources/Trainer/Data*.swift).

For each tokenizer in ../../Tokenizers/ used here and each input file written below, computes what the Swift
pipeline must produce, with transformers' tokenizers and chat templates (no TRL):
  text               leading specials (BOS if the post-processor adds one) + text + EOS, all trained
  prompt_completion  leading specials + prompt + completion + EOS, prompt (and BOS) masked with -100
  alpaca             the same with torchtune's Alpaca prompt (with / without input)
  chat, sharegpt     apply_chat_template(tokenize=True) ids (add_special_tokens=False, as transformers does);
                     labels only on assistant turns, located by rendering prefixes of the conversation:
                     messages[:i] + generation prompt -> where turn i starts, messages[:i+1] -> where it ends.
                     None of these templates has {% generation %}, so return_assistant_tokens_mask cannot be
                     used; instead each span is checked here: its ids are a prefix of the whole, and its
                     decoded text is exactly the assistant content followed by the template's end-of-turn text.
Writes ../../Tests/Fixtures/data/: the .jsonl inputs, text.jsonl.gz and text_parts.tar (archive readers),
and expected.json {tokenizer: {file: [{"input_ids", "labels"}]}}.
Run from Scripts/reference/ as `python3 gen_data.py`. Deterministic (no randomness; gzip/tar mtimes fixed).
"""
import gzip
import io
import json
import os
import tarfile
import warnings

warnings.filterwarnings("ignore")

from transformers import AutoTokenizer
from transformers.utils import logging as hf_logging

hf_logging.set_verbosity_error()

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "../..")
OUT = os.path.join(ROOT, "Tests/Fixtures/data")
IGNORE = -100

TEXT = [
    {"text": "The quick brown fox jumps over the lazy dog."},
    {"text": "Packing puts several documents in one row.\nEach keeps its own positions."},
    {"text": "Zürich, Genève and Łódź have non-ASCII names — and that is fine."},
    {"text": "  leading spaces and trailing ones  "},
    {"text": "x"},
]

PROMPT_COMPLETION = [
    {"prompt": "Question: what is 7 times 6?\nAnswer:", "completion": " 42"},
    {"prompt": "Translate to French: cat\n", "completion": "chat"},
    {"prompt": "Finish the sentence: The sky is ", "completion": "blue."},
    {"prompt": "", "completion": "An empty prompt trains everything but the BOS."},
]

ALPACA = [
    {"instruction": "Give three primary colors.", "input": "", "output": "Red, blue and yellow."},
    {"instruction": "Add the numbers.", "input": "12 and 30", "output": "42"},
    {"instruction": "Reverse the word.", "input": "stressed", "output": "desserts"},
    {"instruction": "Say hello.", "output": "Hello!"},
]

CHAT = [
    {"messages": [
        {"role": "user", "content": "What is the capital of France?"},
        {"role": "assistant", "content": "Paris."},
    ]},
    {"messages": [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "What is 2 + 3?"},
        {"role": "assistant", "content": "2 + 3 = 5."},
        {"role": "user", "content": "And 4 + 4?"},
        {"role": "assistant", "content": "8"},
    ]},
    {"messages": [
        {"role": "user", "content": "Count to three."},
        {"role": "assistant", "content": "One, two, three."},
        {"role": "user", "content": "Backwards?"},
        {"role": "assistant", "content": "Three, two, one."},
        {"role": "user", "content": "Thanks — Zürich next?"},
        {"role": "assistant", "content": "Zürich is in Switzerland."},
    ]},
    {"messages": [
        {"role": "user", "content": "Reply with a blank line."},
        {"role": "assistant", "content": "Line one\n\nLine three"},
        {"role": "user", "content": "ok"},
    ]},
]

SPEAKERS = {"user": "human", "assistant": "gpt", "system": "system"}
SHAREGPT = [{"conversations": [{"from": SPEAKERS[m["role"]], "value": m["content"]} for m in c["messages"]]}
            for c in CHAT[:3]]

ALPACA_WITH_INPUT = ("Below is an instruction that describes a task, paired with an input that provides further context. "
                     "Write a response that appropriately completes the request.\n\n"
                     "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n")
ALPACA_NO_INPUT = ("Below is an instruction that describes a task. "
                   "Write a response that appropriately completes the request.\n\n"
                   "### Instruction:\n{instruction}\n\n### Response:\n")

# Tokenizers with chat templates get every format; gpt2 has none.
TOKENIZERS = {
    "qwen2": ["text", "prompt_completion", "alpaca", "chat", "sharegpt"],
    "smollm": ["text", "prompt_completion", "alpaca", "chat", "sharegpt"],
    "llama3": ["text", "prompt_completion", "alpaca", "chat", "sharegpt"],
    "llama2-metaspace": ["text", "prompt_completion", "alpaca"],
    "gpt2": ["text", "prompt_completion", "alpaca"],
}
# What a template writes after an assistant's content, up to where messages[:i+1] ends.
END_OF_TURN = {"<|im_end|>\n", "<|eot_id|>"}


def leading_specials(tok):
    plain = tok("a", add_special_tokens=False)["input_ids"]
    full = tok("a", add_special_tokens=True)["input_ids"]
    for start in range(len(full) - len(plain) + 1):
        if full[start:start + len(plain)] == plain:
            return full[:start]
    return []


def encode(tok, text):
    return tok(text, add_special_tokens=False)["input_ids"]


def prompt_completion(tok, prompt, completion):
    prompt_ids = leading_specials(tok) + encode(tok, prompt)
    completion_ids = encode(tok, completion) + [tok.eos_token_id]
    return prompt_ids + completion_ids, [IGNORE] * len(prompt_ids) + completion_ids


def alpaca_prompt(example):
    if example.get("input"):
        return ALPACA_WITH_INPUT.format(instruction=example["instruction"], input=example["input"])
    return ALPACA_NO_INPUT.format(instruction=example["instruction"])


def chat(tok, messages):
    ids = tok.apply_chat_template(messages, tokenize=True, return_dict=True)["input_ids"]
    full_text = tok.apply_chat_template(messages, tokenize=False)
    assert ids == encode(tok, full_text)
    labels = [IGNORE] * len(ids)
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        start_text = tok.apply_chat_template(messages[:i], tokenize=False, add_generation_prompt=True)
        end_text = tok.apply_chat_template(messages[:i + 1], tokenize=False)
        start_ids, end_ids = encode(tok, start_text), encode(tok, end_text)
        assert ids[:len(start_ids)] == start_ids and ids[:len(end_ids)] == end_ids, (i, messages)
        span = ids[len(start_ids):len(end_ids)]
        decoded = tok.decode(span)
        assert decoded == end_text[len(start_text):], (decoded, end_text[len(start_text):])
        content = m["content"].strip()  # llama3's template trims content
        assert decoded.startswith(content), (decoded, content)
        rest = decoded[len(content):]
        assert rest in END_OF_TURN or (i == len(messages) - 1 and rest.rstrip("\n") in END_OF_TURN), rest
        labels[len(start_ids):len(end_ids)] = span
    return ids, labels


def expected_for(tok, fmt, rows):
    out = []
    for r in rows:
        if fmt == "text":
            ids = leading_specials(tok) + encode(tok, r["text"]) + [tok.eos_token_id]
            labels = list(ids)
        elif fmt == "prompt_completion":
            ids, labels = prompt_completion(tok, r["prompt"], r["completion"])
        elif fmt == "alpaca":
            ids, labels = prompt_completion(tok, alpaca_prompt(r), r["output"])
        elif fmt == "chat":
            ids, labels = chat(tok, r["messages"])
        else:
            roles = {v: k for k, v in SPEAKERS.items()}
            ids, labels = chat(tok, [{"role": roles[m["from"]], "content": m["value"]} for m in r["conversations"]])
        assert len(ids) == len(labels)
        out.append({"input_ids": ids, "labels": labels})
    return out


def jsonl(rows):
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8")


def write(name, data):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)


def tar_bytes(members):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode, info.uid, info.gid = len(data), 0, 0o644, 0, 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def main():
    os.makedirs(OUT, exist_ok=True)
    inputs = {"text": TEXT, "prompt_completion": PROMPT_COMPLETION, "alpaca": ALPACA, "chat": CHAT, "sharegpt": SHAREGPT}
    for fmt, rows in inputs.items():
        write(fmt + ".jsonl", jsonl(rows))
    gz = io.BytesIO()
    with gzip.GzipFile(fileobj=gz, mode="wb", mtime=0, filename="") as f:
        f.write(jsonl(TEXT))
    write("text.jsonl.gz", gz.getvalue())
    write("text_parts.tar", tar_bytes([("part1.jsonl", jsonl(TEXT[:3])), ("README.txt", b"not data\n"),
                                       ("part2.jsonl", jsonl(TEXT[3:]))]))
    expected = {}
    for name, formats in TOKENIZERS.items():
        tok = AutoTokenizer.from_pretrained(os.path.join(ROOT, "Tokenizers", name))
        expected[name] = {fmt: expected_for(tok, fmt, inputs[fmt]) for fmt in formats}
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
