#!/usr/bin/env bash
# The whole test suite: the fast core (tiny random model, synthetic data) and the slow tests on the
# embedded SmolLM2. Tests that need ../shared/data skip when it is absent. Extra arguments go to pytest
# (e.g. -m "not slow" for the core alone).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
python -m pytest -q "$@"
