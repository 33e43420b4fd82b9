#!/usr/bin/env bash
# Runs every test: formatting and lints, unit and API tests, wgpu tests on Mesa's software
# Vulkan (lavapipe) when no GPU is present, the shared scorer in WASM (node), and the browser
# test in headless Chromium. Installs what is missing first. Nothing is skipped.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
ensure_apt chromium chromium chromedriver chromium-driver \
    /usr/share/vulkan/icd.d/lvp_icd.x86_64.json mesa-vulkan-drivers \
    /usr/lib/x86_64-linux-gnu/libvulkan.so.1 libvulkan1 node nodejs
ensure_wasm_target
ensure_wasm_bindgen
fetch_data ml-100k ml-1m minilm efficientnet-lite0
"$ROOT/scripts/build-frontend.sh"

export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}"
export PERPEFT_DATA_DIR="$ROOT/.cache/data"
export PERPEFT_DIST="$ROOT/dist"
export CHROMEDRIVER="${CHROMEDRIVER:-/usr/bin/chromedriver}"
# the browser tests' full-page screenshots
# screenshots of this run only: the default folder is emptied, one given is only added to
if [ -z "${PERPEFT_ARTIFACTS:-}" ]; then
    export PERPEFT_ARTIFACTS="$ROOT/artifacts/browser"
    rm -rf "$PERPEFT_ARTIFACTS"
fi

log "cargo fmt --check"
cargo fmt --all -- --check
log "cargo clippy -D warnings"
cargo clippy --release --all-targets -- -D warnings
cargo clippy --release -p app --target wasm32-unknown-unknown -- -D warnings

results="$(mktemp)"
log "shared scorer in WASM (node)"
CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner \
    cargo test --release -p shared --target wasm32-unknown-unknown --test wasm 2>&1 | tee -a "$results"

log "native tests (unit, API over HTTP, wgpu + flex, browser)"
cargo test --release 2>&1 | tee -a "$results"

log "browser screenshots: $PERPEFT_ARTIFACTS ($(ls "$PERPEFT_ARTIFACTS" 2>/dev/null | wc -l) files)"
# One closing line over every test binary above.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "total: %d passed, %d failed\n", p, f; exit (f > 0 || p == 0) }' "$results"
