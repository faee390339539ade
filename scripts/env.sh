# Sourced by main.sh and test.sh: installs the project into .venv once, and points the data dir at
# ../shared/data when that folder exists and no data dir is set.
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/bootstrap.sh"
if [ -z "${COMPRESSIONS_DATA_DIR:-}" ] && [ -d "$root/../shared/data" ]; then
    export COMPRESSIONS_DATA_DIR="$(cd "$root/../shared/data" && pwd)"
fi
export PATH="$root/.venv/bin:$PATH"
cd "$root"
