#!/usr/bin/env python3
"""Builds small trained tokenizers that reproduce each model family's tokenizer.json pipeline, ships them in
../../Tokenizers/<family>/ (tokenizer.json + tokenizer_config.json written by transformers' save_pretrained),
and writes golden encodings/decodings of an edge-case corpus to ../../Tests/Fixtures/tokenizers/.

Deterministic: training runs on one thread over a generated corpus with a fixed seed.
Run from Scripts/reference/: python3 gen_tokenizers.py
"""
import json
import math
import os
import random
import shutil
import sys

os.environ["RAYON_NUM_THREADS"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"

from tokenizers import (AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers,
                        processors, trainers)
from transformers import AutoTokenizer, PreTrainedTokenizerFast
from transformers.utils import logging as hf_logging

hf_logging.set_verbosity_error()

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
SHIP = os.path.join(ROOT, "Tokenizers")
FIX = os.path.join(ROOT, "Tests", "Fixtures", "tokenizers")

GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
LLAMA3_PATTERN = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
QWEN2_PATTERN = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""

WORDS = """the of and to in is was for on that with as by at from it his an were are which this be or has had not
but first one their its new after who they have her she two been other when there all during into school time may
years more most only over city some world would where later up such used many can state about national out known
university united then made however during game music river album company between under team series government
people against number year film called through because system area american during while including music while
Don't it's I'm we'll they're you've he'd THEY'RE IT'S WE'LL hello HELLO Hello walked running quickly über naïve café
résumé façade coöperate""".split()
SNIPPETS = [
    "Москва — столица России, и это большой город.", "Привет, мир! Как дела?",
    "مرحبا بالعالم، كيف حالك اليوم؟", "القاهرة مدينة كبيرة",
    "नमस्ते दुनिया, आप कैसे हैं?", "हिन्दी भाषा", "สวัสดีชาวโลก ภาษาไทย", "กรุงเทพมหานคร",
    "你好，世界！今天天气很好。", "東京は日本の首都です。", "한국어 문장입니다.",
    "Emoji 😀😃 👍🏽 👨‍👩‍👧‍👦 🏳️‍🌈 ❤️", "def f(x):\n    return x * 2  # double\n",
    "for (int i = 0; i < 10; i++) { sum += a[i]; }", "if x == 1 and y != 2:\n\tprint('ok')\n",
    "Numbers 1234567890 3.14159 1,000,000 and 2024-01-01.", "e\u0301 a\u0308 n\u0303 combining",
    "Ελληνικά γράμματα", "עברית טקסט",
]


def training_corpus(n_lines=3000, seed=1234):
    rng = random.Random(seed)
    lines = []
    for i in range(n_lines):
        if i % 4 == 3:
            lines.append(rng.choice(SNIPPETS))
        else:
            k = rng.randint(4, 18)
            words = [rng.choice(WORDS) for _ in range(k)]
            if rng.random() < 0.3:
                words.insert(rng.randint(0, k), str(rng.randint(0, 99999)))
            s = " ".join(words)
            s = s[0].upper() + s[1:] + rng.choice([".", "!", "?", ",", ";", "..."])
            if rng.random() < 0.2:
                s = "  " + s + "\n"
            lines.append(s)
    return lines


def edge_cases(special):
    """The edge-case corpus; `special` are the family's special tokens to inline."""
    sp0 = special[0]
    sp1 = special[-1]
    return [
        "", " ", "  ", "\n", "\t", "Hello world", " Hello world", "Hello world ", "  leading and trailing  ",
        "Hello, world! How are you?", "The quick brown fox jumps over the lazy dog.",
        "I'm he's she'll we've they'd don't CAN'T HE'S SHE'LL WE'VE THEY'D I'M",
        "It'S What'Ll 'S 'LL 's 'll", "multiple   spaces    here", "tabs\tand\t\ttabs", "line1\nline2\n\nline4\r\nline5",
        "trailing newlines\n\n\n", "   \n   \n", "numbers 1 12 123 1234 12345 123456789012345678901234567890",
        "3.14159 -42 +7 1e10 0x1F 1,000,000", "Москва — столица России.", "مرحبا بالعالم", "नमस्ते दुनिया",
        "สวัสดีชาวโลก", "你好，世界！", "日本語のテキスト", "한국어", "Ελληνικά", "עברית",
        "😀", "👍🏽 thumbs", "👨‍👩‍👧‍👦 family", "🏳️‍🌈", "e\u0301 a\u0308 combining marks \u0301\u0301",
        "Zalgo t\u0336e\u0337x\u0338t", "café naïve résumé", "ÅÄÖ åäö ß ẞ ﬁ ① ²",
        "def f(x):\n    return x * 2  # comment\n", "for (i = 0; i < n; i++) {\n\tsum += a[i];\n}",
        "<html><body class=\"x\">Hi</body></html>", "https://example.com/path?q=1&r=2#frag",
        "email@example.com", "a" * 120, "ab" * 60 + " " + "z" * 30, "rare ǂ ʬ ꙮ 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 characters",
        "replacement \ufffd char and \ufffd\ufffd", "bytes-looking \\xff\\xfe <0x41> <0xZZ> Ġ Ċ ▁ ##",
        f"{sp0}Hello{sp1}", f"{sp0} spaced {sp1} tokens {sp0}", f"text {sp1}", f"{sp1}{sp1}", sp0,
        "mixed English and русский and 中文 and العربية", "\u200b zero width \u200d joiner \ufeff bom",
        "UPPER lower MiXeD", "punctuation!!! ??? ... --- ;;; :::", "'quoted' \"double\" `back`",
        "x" + " " * 17 + "y", "supercalifragilistic" * 12, "1234567890" * 20, "Москва" * 30 + "ок" * 50, "\u00a0nbsp\u00a0here\u3000ideographic space", "\u0000 null and \u001f unit sep",
    ]


def bpe_trainer(vocab_size, special, **kw):
    return trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2, show_progress=False,
                               special_tokens=special, **kw)


def train(tok, trainer, lines):
    tok.train_from_iterator(lines, trainer=trainer)
    return tok


def build_gpt2(lines):
    special = ["<|endoftext|>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    train(tok, bpe_trainer(1000, special, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()), lines)
    cfg = dict(bos_token="<|endoftext|>", eos_token="<|endoftext|>", unk_token="<|endoftext|>",
               model_max_length=1024, clean_up_tokenization_spaces=False)
    return tok, cfg, None, special


def with_byte_fallback_vocab(tok, specials):
    """SentencePiece-converted BPEs carry the 256 `<0xNN>` tokens in the model vocab right after the
    specials; the trainer cannot make them, so the trained vocab is shifted up to make room."""
    d = json.loads(tok.to_str())
    vocab = d["model"]["vocab"]
    new = {}
    for s in specials:
        new[s] = len(new)
    for b in range(256):
        new["<0x%02X>" % b] = len(new)
    for piece, _ in sorted(vocab.items(), key=lambda kv: kv[1]):
        if piece not in new:
            new[piece] = len(new)
    d["model"]["vocab"] = new
    for t in d["added_tokens"]:
        t["id"] = new[t["content"]]
    return Tokenizer.from_str(json.dumps(d))


def build_llama2(lines, metaspace):
    special = ["<unk>", "<s>", "</s>"]
    tok = Tokenizer(models.BPE(unk_token="<unk>", fuse_unk=True, byte_fallback=True))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=True)
    train(tok, bpe_trainer(800, special), lines)
    tok = with_byte_fallback_vocab(tok, special)
    if metaspace:
        tok.normalizer = None
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=False)
        tok.decoder = decoders.Sequence([decoders.Metaspace(replacement="▁", prepend_scheme="first"),
                                         decoders.ByteFallback(), decoders.Fuse()])
    else:
        tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
        tok.pre_tokenizer = None
        tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                         decoders.Strip(" ", 1, 0)])
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", 1)])
    cfg = dict(bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token=None, add_bos_token=True,
               add_eos_token=False, model_max_length=4096, clean_up_tokenization_spaces=False,
               chat_template=LLAMA2_TEMPLATE)
    if metaspace:
        cfg.pop("add_bos_token"); cfg.pop("add_eos_token")
    return tok, cfg, None, special


LLAMA2_TEMPLATE = ("{% for message in messages %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + "
                   "message['content'] + ' [/INST]' }}{% else %}{{ message['content'] + eos_token }}{% endif %}"
                   "{% endfor %}")
CHATML_TEMPLATE = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + "
                   "'<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}"
                   "{% endif %}")
LLAMA3_TEMPLATE = ("{{ bos_token }}{% for message in messages %}{{ '<|start_header_id|>' + message['role'] + "
                   "'<|end_header_id|>\n\n' + message['content'] | trim + '<|eot_id|>' }}{% endfor %}"
                   "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}")


def byte_level_bpe(lines, pattern, special, vocab_size, normalizer=None, ignore_merges=False):
    tok = Tokenizer(models.BPE(ignore_merges=ignore_merges))
    if normalizer is not None:
        tok.normalizer = normalizer
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(pattern), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    train(tok, bpe_trainer(vocab_size, special, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()), lines)
    return tok


def build_llama3(lines):
    special = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]
    tok = byte_level_bpe(lines, LLAMA3_PATTERN, special, 1200, ignore_merges=True)
    bos = tok.token_to_id("<|begin_of_text|>")
    tok.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A <|begin_of_text|> $B:1",
                                      special_tokens=[("<|begin_of_text|>", bos)])])
    cfg = dict(bos_token="<|begin_of_text|>", eos_token="<|eot_id|>", model_max_length=131072,
               clean_up_tokenization_spaces=True, chat_template=LLAMA3_TEMPLATE)
    return tok, cfg, None, special


def build_qwen2(lines):
    special = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tok = byte_level_bpe(lines, QWEN2_PATTERN, special, 1100, normalizer=normalizers.NFC())
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    cfg = dict(eos_token="<|im_end|>", pad_token="<|endoftext|>", bos_token=None, model_max_length=32768,
               clean_up_tokenization_spaces=False, errors="replace")
    return tok, cfg, CHATML_TEMPLATE, special


def build_smollm(lines):
    special = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True)])
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    train(tok, bpe_trainer(900, special, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()), lines)
    cfg = dict(bos_token="<|im_start|>", eos_token="<|im_end|>", pad_token="<|im_end|>", unk_token="<|endoftext|>",
               model_max_length=8192, clean_up_tokenization_spaces=False, chat_template=CHATML_TEMPLATE)
    return tok, cfg, None, special


def build_bert(lines):
    """WordPieceTrainer (and BpeTrainer with a continuing-subword prefix) assign ids in hash order, which is not
    reproducible, so the pieces come from a plain BpeTrainer: every piece is kept both as a word start and as a
    `##` continuation."""
    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    norm = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=True)
    bpe = Tokenizer(models.BPE())
    bpe.normalizer = norm
    bpe.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    train(bpe, bpe_trainer(600, special), lines)
    vocab = {}
    for piece, _ in sorted(bpe.get_vocab().items(), key=lambda kv: kv[1]):
        for p in ([piece] if piece in special else [piece, "##" + piece]):
            vocab[p] = len(vocab)
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]", max_input_chars_per_word=100))
    tok.add_special_tokens(special)
    tok.normalizer = norm
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece(prefix="##", cleanup=True)
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", tok.token_to_id("[CLS]")), ("[SEP]", tok.token_to_id("[SEP]"))])
    cfg = dict(unk_token="[UNK]", sep_token="[SEP]", pad_token="[PAD]", cls_token="[CLS]", mask_token="[MASK]",
               do_lower_case=True, model_max_length=512, clean_up_tokenization_spaces=True)
    return tok, cfg, None, special


def build_unigram(lines):
    """Unigram training in `tokenizers` is not deterministic across runs, so the pieces come from a BPE trained
    on the same Metaspace pre-tokenization and their scores are the log relative frequencies of the pieces in
    the BPE-tokenized corpus (what a Unigram EM step would start from)."""
    special = ["<pad>", "</s>", "<unk>"]
    bpe = Tokenizer(models.BPE())
    bpe.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Replace(Regex(" {2,}"), " ")])
    bpe.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    train(bpe, bpe_trainer(700, []), lines)
    counts = {}
    for line in lines:
        for t in bpe.encode(line).tokens:
            counts[t] = counts.get(t, 0) + 1
    total = sum(counts.values()) + len(bpe.get_vocab())
    pieces = sorted(bpe.get_vocab().items(), key=lambda kv: kv[1])
    vocab = [(s, 0.0) for s in special] + [("<0x%02X>" % b, 0.0) for b in range(256)]
    vocab += [(p, math.log((counts.get(p, 0) + 1) / total)) for p, _ in pieces if len(p) > 0]
    tok = Tokenizer(models.Unigram(vocab, unk_id=2, byte_fallback=True))
    tok.add_special_tokens(special)
    tok.normalizer = bpe.normalizer
    tok.pre_tokenizer = bpe.pre_tokenizer
    tok.decoder = decoders.Sequence([decoders.ByteFallback(),
                                     decoders.Metaspace(replacement="▁", prepend_scheme="always", split=True)])
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", pair="$A </s> $B </s>",
                                                       special_tokens=[("</s>", tok.token_to_id("</s>"))])
    cfg = dict(eos_token="</s>", unk_token="<unk>", pad_token="<pad>", model_max_length=512,
               clean_up_tokenization_spaces=True)
    return tok, cfg, None, special


def save_family(name, tok, cfg, jinja):
    out = os.path.join(SHIP, name)
    if os.path.isdir(out):
        shutil.rmtree(out)
    os.makedirs(out)
    kwargs = {k: v for k, v in cfg.items() if v is not None and k != "chat_template"}
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, **kwargs)
    fast.chat_template = jinja or cfg.get("chat_template")
    fast.save_pretrained(out)
    restyle_config(name, out, cfg)
    return out


def restyle_config(name, out, cfg):
    """transformers 5 always writes chat_template.jinja and plain-string special tokens. Real checkpoints on the
    Hub also carry the transformers-4 forms, so some families are rewritten into them: special tokens as
    AddedToken objects with added_tokens_decoder and add_bos_token/add_eos_token (llama2), an inline template
    string (smollm), a list of named templates (llama2-metaspace), and a stale inline template that the sibling
    chat_template.jinja must override (llama3)."""
    path = os.path.join(out, "tokenizer_config.json")
    with open(path, encoding="utf-8") as f:
        config = json.load(f)
    jinja_path = os.path.join(out, "chat_template.jinja")
    template = open(jinja_path, encoding="utf-8").read() if os.path.exists(jinja_path) else None
    if name == "llama2":
        def added(content):
            return {"__type": "AddedToken", "content": content, "lstrip": False, "normalized": False,
                    "rstrip": False, "single_word": False, "special": True}
        tok = json.load(open(os.path.join(out, "tokenizer.json"), encoding="utf-8"))
        config["added_tokens_decoder"] = {
            str(t["id"]): {k: t[k] for k in ["content", "lstrip", "normalized", "rstrip", "single_word", "special"]}
            for t in tok["added_tokens"]}
        for key in ["bos_token", "eos_token", "unk_token"]:
            config[key] = added(config[key])
        config.update(add_bos_token=True, add_eos_token=False, legacy=True, pad_token=None,
                      tokenizer_class="LlamaTokenizer", chat_template=template, sp_model_kwargs={})
        os.remove(jinja_path)
    elif name == "llama2-metaspace":
        config["chat_template"] = [{"name": "default", "template": template},
                                   {"name": "tool_use", "template": "{{ bos_token }}TOOLS{{ messages | length }}"}]
        os.remove(jinja_path)
    elif name == "smollm":
        config["chat_template"] = template
        os.remove(jinja_path)
    elif name == "llama3":
        config["chat_template"] = "STALE inline template: chat_template.jinja must win"
    with open(path, "w", encoding="utf-8") as f:
        json.dump(config, f, ensure_ascii=False, indent=2, sort_keys=True)
        f.write("\n")


def goldens(name, out, special):
    hf = PreTrainedTokenizerFast.from_pretrained(out)
    raw = Tokenizer.from_file(os.path.join(out, "tokenizer.json"))
    cases = []
    for text in edge_cases(special):
        ids = hf(text, add_special_tokens=True)["input_ids"]
        ids_plain = hf(text, add_special_tokens=False)["input_ids"]
        assert ids == raw.encode(text, add_special_tokens=True).ids or name == "llama2", (name, text)
        cases.append(dict(text=text, ids=ids, ids_no_special=ids_plain,
                          decoded=hf.decode(ids), decoded_skip_special=hf.decode(ids, skip_special_tokens=True)))
    texts = edge_cases(special)
    pairs = [dict(a=texts[i], b=texts[i + 7], ids=hf(texts[i], texts[i + 7])["input_ids"]) for i in range(0, 50, 4)]
    # transformers 5 rebuilds some classes' pipelines (LlamaTokenizer): AutoTokenizer's ids can differ. Only
    # what differs from the tokenizer.json pipeline is stored, index-aligned with `cases`.
    auto = AutoTokenizer.from_pretrained(out)
    auto_cases = []
    for c in cases:
        ids = auto(c["text"])["input_ids"]
        entry = {}
        if ids != c["ids"]:
            entry["ids"] = ids
        if auto.decode(ids) != hf.decode(ids):
            entry["decoded"] = auto.decode(ids)
        auto_cases.append(entry)
    info = dict(family=name, pairs=pairs, auto_tokenizer_class=type(auto).__name__, auto_cases=auto_cases, bos_token_id=hf.bos_token_id, eos_token_id=hf.eos_token_id,
                pad_token_id=hf.pad_token_id, vocab_size=len(hf), model_vocab_size=raw.get_vocab_size(False),
                add_bos_token=hf.add_bos_token, add_eos_token=hf.add_eos_token, model_max_length=hf.model_max_length,
                bos_token=hf.bos_token, eos_token=hf.eos_token, chat_template=hf.chat_template, cases=cases)
    with open(os.path.join(FIX, f"{name}.json"), "w", encoding="utf-8") as f:
        json.dump(info, f, ensure_ascii=True, indent=1, sort_keys=True)
        f.write("\n")
    return len(cases)


def prefix_suffix_bpe():
    """The BPE trainer assigns ids in hash order when a continuing-subword prefix or end-of-word suffix is set,
    so this model is written by hand: letters in their four forms plus merges chained from frequent English."""
    vocab = {"[UNK]": 0}
    letters = "abcdefghijklmnopqrstuvwxyz"
    for c in letters:
        for form in [c, "##" + c, c + "</w>", "##" + c + "</w>"]:
            vocab[form] = len(vocab)
    merges = []
    for a, b in [("t", "##h"), ("th", "##e</w>"), ("##e", "##r"), ("##er", "##s</w>"), ("i", "##n"), ("in", "##g</w>"),
                 ("##i", "##n"), ("##in", "##g</w>"), ("a", "##n"), ("an", "##d</w>"), ("##o", "##u"), ("y", "##ou"),
                 ("t", "##o</w>"), ("w", "##h"), ("##e", "##n</w>")]:
        merged = a + b[2:]
        vocab.setdefault(merged, len(vocab))
        merges.append((a, b))
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="[UNK]", continuing_subword_prefix="##",
                               end_of_word_suffix="</w>", fuse_unk=True))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.decoder = decoders.WordPiece(prefix="##", cleanup=False)
    return tok


def component_pipelines(lines):
    """Small pipelines exercising stages the families do not use; each is a WordLevel/BPE tokenizer.json whose
    goldens are encoded ids over the edge-case corpus."""
    out = {}

    def wordlevel(pre, norm=None, vocab_size=600):
        tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
        if norm is not None:
            tok.normalizer = norm
        tok.pre_tokenizer = pre
        tok.train_from_iterator(lines, trainers.WordLevelTrainer(vocab_size=vocab_size, show_progress=False,
                                                                 special_tokens=["[UNK]", "[CLS]", "[SEP]"]))
        return tok

    out["whitespace_lowercase_stripaccents"] = wordlevel(
        pre_tokenizers.Whitespace(), normalizers.Sequence([normalizers.NFD(), normalizers.Lowercase(),
                                                           normalizers.StripAccents()]))
    out["whitespacesplit_strip_nfkd"] = wordlevel(
        pre_tokenizers.WhitespaceSplit(), normalizers.Sequence([normalizers.Strip(), normalizers.NFKD()]))
    for behavior in ["removed", "isolated", "merged_with_previous", "merged_with_next", "contiguous"]:
        out[f"punctuation_{behavior}"] = wordlevel(pre_tokenizers.Sequence([
            pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation(behavior=behavior)]))
        out[f"split_regex_{behavior}"] = wordlevel(pre_tokenizers.Split(Regex(r"\s+|\d"), behavior=behavior))
        out[f"split_string_{behavior}_invert"] = wordlevel(pre_tokenizers.Split(" ", behavior=behavior, invert=True))
    # A user regex no built-in scanner covers, in Oniguruma's own syntax (run by OnigurumaMatcher): a
    # case-insensitive group, Unicode properties, \h as a hex digit (Oniguruma, not horizontal space),
    # a possessive and an atomic group, \d on non-ASCII digits, and a lookahead.
    out["split_regex_oniguruma_syntax"] = wordlevel(pre_tokenizers.Split(
        Regex(r"(?i:'s|'t)|\p{Lu}\p{Ll}*+|\h{2,}|\d|\s+(?!\S)|(?>[^\s\p{L}\d]+)"), behavior="isolated"))
    out["digits_grouped_bert_roberta"] = wordlevel(pre_tokenizers.Sequence([
        pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Digits(individual_digits=False)]))
    out["digits_grouped_bert_roberta"].post_processor = processors.BertProcessing(("[SEP]", 2), ("[CLS]", 1))
    out["metaspace_never_nosplit"] = wordlevel(pre_tokenizers.Metaspace(prepend_scheme="never", split=False))
    out["metaspace_always_split_nfkc"] = wordlevel(pre_tokenizers.Metaspace(prepend_scheme="always", split=True),
                                                   normalizers.NFKC())
    gpt2 = Tokenizer(models.BPE(unk_token="[UNK]"))
    gpt2.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True, use_regex=True)
    gpt2.decoder = decoders.ByteLevel()
    gpt2.train_from_iterator(lines, bpe_trainer(700, ["[UNK]", "<s>", "</s>"],
                                                 initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    gpt2.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 1), trim_offsets=True,
                                                       add_prefix_space=True)
    out["prefix_suffix_wordpiece_decoder"] = prefix_suffix_bpe()
    out["bytelevel_prefix_roberta"] = gpt2
    rep = wordlevel(pre_tokenizers.WhitespaceSplit(),
                    normalizers.Sequence([normalizers.Replace(Regex(r"[0-9]+"), "<num>"), normalizers.Replace("a", "A"),
                                          normalizers.Strip(left=True, right=False)]))
    out["replace_regex_string"] = rep
    added = wordlevel(pre_tokenizers.WhitespaceSplit(), normalizers.Lowercase())
    added.add_tokens([AddedToken("<mask>", lstrip=True, special=False, normalized=False),
                      AddedToken("[r]", rstrip=True, normalized=True),
                      AddedToken("hello", single_word=True, normalized=True),
                      AddedToken("Wor", normalized=False),
                      AddedToken("ld", normalized=True, single_word=False)])
    added.add_special_tokens([AddedToken("<sep>", lstrip=True, rstrip=True)])
    out["added_tokens_options"] = added
    return out


PRECOMPILED_RULES = {
    "ﬁ": "fi", "①": "1", "²": "2", "\u3000": " ", "\u00a0": " ", "\u200b": "", "ẞ": "ß", "e\u0301": "é",
    "a\u0308": "ä", "t": "t", "n": "n", "Ω": "Ω", "™": "TM", "…": "...", "\ufb03": "ffi",
    **{chr(0xFF21 + i): chr(0x41 + i) for i in range(26)},
}


def build_charsmap(rules):
    """A SentencePiece `precompiled_charsmap` (darts-clone double array + NUL-terminated replacement pool)
    for `rules`, so the Precompiled normalizer can be tested without the sentencepiece package. Identity rules
    for "t" and "n" make graphemes such as "t\u0336" hit HF's shortest-prefix quirk (the mark is dropped)."""
    pool = b""
    value = {}
    for key in sorted(rules):
        value[key] = len(pool)
        pool += rules[key].encode("utf-8") + b"\0"
    root = {}
    for key in rules:
        node = root
        for b in key.encode("utf-8"):
            node = node.setdefault(b, {})
        node[None] = key
    units = {0: 0}
    queue = [(0, root)]
    base_hint = 256
    while queue:
        pos, node = queue.pop(0)
        labels = sorted(k for k in node if k is not None)
        slots_needed = lambda b: [b ^ c for c in labels] + ([b] if None in node else [])
        base = base_hint
        while any(s in units for s in slots_needed(base)):
            base += 1
        units[pos] |= (pos ^ base) << 10
        if None in node:
            units[base] = value[node[None]] | (1 << 31)
        for c in labels:
            child = node[c]
            units[base ^ c] = c | ((1 << 8) if None in child else 0)
            queue.append((base ^ c, child))
    size = ((max(units) >> 8) + 2) * 256
    array = [units.get(i, 0) for i in range(size)]
    trie = b"".join(u.to_bytes(4, "little") for u in array)
    return len(trie).to_bytes(4, "little") + trie + pool


ADDED_TOKEN_TEXTS = ["a <mask> b", "a   <mask>b", "<mask>", "x [R]   y", "[r]z", "hello world", "helloworld", "say hello",
                     "HELLO there", "_hello_", "World wOrLd Wor", "old gold", "a <sep> b", "a<sep>b", "  <sep>  ",
                     "<mask><mask>  <mask>", "hello<mask>hello"]


def legacy_pipelines(gpt2_dir, metaspace_json):
    """tokenizer.json forms older tokenizers versions wrote: merges as "a b" strings, Metaspace with
    add_prefix_space instead of prepend_scheme."""
    d = json.load(open(os.path.join(gpt2_dir, "tokenizer.json"), encoding="utf-8"))
    d["model"]["merges"] = [" ".join(m) for m in d["model"]["merges"]]
    m = json.loads(metaspace_json)
    m["pre_tokenizer"] = {"type": "Metaspace", "replacement": "\u2581", "add_prefix_space": True}
    m["decoder"] = {"type": "Metaspace", "replacement": "\u2581", "add_prefix_space": True}
    return {"legacy_merges_gpt2": json.dumps(d, ensure_ascii=False), "legacy_metaspace_add_prefix_space": json.dumps(m, ensure_ascii=False)}


def main():
    os.makedirs(FIX, exist_ok=True)
    lines = training_corpus()
    families = {
        "gpt2": build_gpt2, "llama2": lambda l: build_llama2(l, False), "llama2-metaspace": lambda l: build_llama2(l, True),
        "llama3": build_llama3, "qwen2": build_qwen2, "smollm": build_smollm, "bert": build_bert,
        "unigram": build_unigram,
    }
    total = 0
    for name, build in families.items():
        tok, cfg, jinja, special = build(lines)
        out = save_family(name, tok, cfg, jinja)
        n = goldens(name, out, special)
        total += n
        print(f"{name}: vocab {tok.get_vocab_size()}, {n} cases")
    comp_dir = os.path.join(FIX, "components")
    if os.path.isdir(comp_dir):
        shutil.rmtree(comp_dir)
    os.makedirs(comp_dir)
    specials = ["[CLS]", "[SEP]"]
    pipelines = component_pipelines(lines)
    pipelines.update(legacy_pipelines(os.path.join(SHIP, "gpt2"), pipelines["metaspace_never_nosplit"].to_str()))
    precompiled = Tokenizer.from_file(os.path.join(SHIP, "unigram", "tokenizer.json"))
    precompiled.normalizer = normalizers.Sequence([normalizers.Precompiled(build_charsmap(PRECOMPILED_RULES)),
                                                   normalizers.Replace(Regex(" {2,}"), " ")])
    pipelines["precompiled_unigram"] = precompiled
    for name, tok in pipelines.items():
        path = os.path.join(comp_dir, f"{name}.tokenizer.json")
        if isinstance(tok, str):
            with open(path, "w", encoding="utf-8") as f:
                f.write(tok)
            tok = Tokenizer.from_file(path)
        else:
            tok.save(path)
        cases = []
        texts = edge_cases(specials) + (ADDED_TOKEN_TEXTS if name == "added_tokens_options" else [])
        if name == "precompiled_unigram":
            texts += ["ﬁne ① ² Ｈｅｌｌｏ\u3000world", "t\u0336e\u0337 n\u0303o", "e\u0301 a\u0308 e\u0301\u0301", "™…\ufb03",
                      "Ω\u200bx", "n\u0303\u0303\u0303\u0303"]
        for text in texts:
            cases.append(dict(text=text, ids=tok.encode(text).ids,
                              ids_no_special=tok.encode(text, add_special_tokens=False).ids,
                              decoded=tok.decode(tok.encode(text).ids, skip_special_tokens=False)))
        with open(os.path.join(comp_dir, f"{name}.goldens.json"), "w", encoding="utf-8") as f:
            json.dump(dict(cases=cases), f, ensure_ascii=True, indent=1, sort_keys=True)
            f.write("\n")
        total += len(cases)
    print("total cases", total)


if __name__ == "__main__":
    sys.exit(main())
