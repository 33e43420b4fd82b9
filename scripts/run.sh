#!/usr/bin/env bash
# Runs PerPEFT Studio: installs what is missing, fetches the data, builds the front end and the
# server (release), trains the default model if none is saved, and serves it.
#   PORT=8080 scripts/run.sh        (DEVICE=auto|wgpu|flex picks the training backend)
source "$(dirname "$0")/lib.sh"
PORT="${PORT:-8080}"
DEVICE="${DEVICE:-auto}"
cd "$ROOT"
fetch_data ml-100k
"$ROOT/scripts/build-frontend.sh"
log "building the server (release)"
cargo build --release --all-targets
exec "$CARGO_TARGET_DIR/release/perpeft" serve --train-if-missing --device "$DEVICE" \
    --model runs/default --data-dir .cache/data --dist dist --port "$PORT"
