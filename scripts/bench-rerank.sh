#!/usr/bin/env bash
# Benchmark: the browser's rerank of ml-1m's catalogue (3,883 items, 3,706 of them rated) in
# headless Chromium, beside the same code natively (tests/examples/rerank_bench.rs). Prints a
# table of p50/p95/max milliseconds.
# Trains a one-epoch ID-only model on ml-1m the first time (cached in .cache/bench/rerank).
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
ensure_apt chromium chromium chromedriver chromium-driver
ensure_wasm_target
ensure_wasm_bindgen
fetch_data ml-1m
"$ROOT/scripts/build-frontend.sh"
log "building (release, all targets)"
cargo build --release --all-targets
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}"
export PERPEFT_DATA_DIR="$ROOT/.cache/data" PERPEFT_DIST="$ROOT/dist"
export PERPEFT_ARTIFACTS="${PERPEFT_ARTIFACTS:-$ROOT/artifacts/bench}"
exec "$CARGO_TARGET_DIR/release/examples/rerank_bench"
