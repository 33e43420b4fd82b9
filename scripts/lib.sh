# Shared by the scripts: paths, and idempotent installation of the tools they need.
# Source it; it does nothing by itself but set variables.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# One warm target directory outside the clone, reused by every clone on this machine.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/perpeft/target}"
WASM_BINDGEN_VERSION=0.2.130

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

ensure_wasm_target() {
    if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
        log "adding the wasm32-unknown-unknown target"
        rustup target add wasm32-unknown-unknown
    fi
}

ensure_wasm_bindgen() {
    if [ "$(wasm-bindgen --version 2>/dev/null)" != "wasm-bindgen $WASM_BINDGEN_VERSION" ]; then
        log "installing wasm-bindgen-cli $WASM_BINDGEN_VERSION (6-9 min on 2 cores, once)"
        # Without --locked: its lockfile names a crate version the registry here lacks.
        cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION"
    fi
}

# Debian packages, installed only when a command is missing.
ensure_apt() { # pairs: command package
    local missing=()
    while [ $# -gt 0 ]; do
        if ! command -v "$1" >/dev/null 2>&1 && ! [ -e "$1" ]; then missing+=("$2"); fi
        shift 2
    done
    if [ ${#missing[@]} -gt 0 ]; then
        log "installing Debian packages: ${missing[*]}"
        local sudo=""
        [ "$(id -u)" -ne 0 ] && sudo=sudo
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
    fi
}

fetch_data() { # datasets...
    log "fetching data: $* (checksummed, cached in .cache/)"
    python3 "$ROOT/scripts/fetch_data.py" --cache "$ROOT/.cache" "$@"
}
