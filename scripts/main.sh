#!/usr/bin/env bash
# The main job on the embedded default model: SQuAD validation (dev-A articles 21-24) with the full
# context and with none, as a table. Extra arguments go to `compressions baselines squad` (e.g. --limit 50).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
compressions baselines squad --methods full none --out runs/main "$@"
