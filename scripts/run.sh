#!/usr/bin/env bash
# Runs PerPEFT Studio: installs what is missing, fetches the data and the MiniLM weights, builds
# the front end and the server (release), and serves every run under runs/ at once. The demo
# runs on ml-100k (id-only, frozen MiniLM, global IISAN, PerPEFT-IISAN with 8 groups) are
# trained in the background as jobs, each served when it finishes; a later start reuses them.
#   PORT=8080 scripts/run.sh        (DEVICE=auto|wgpu|flex picks the backend)
source "$(dirname "$0")/lib.sh"
PORT="${PORT:-8080}"
DEVICE="${DEVICE:-auto}"
cd "$ROOT"
fetch_data ml-100k minilm
"$ROOT/scripts/build-frontend.sh"
log "building the server (release)"
cargo build --release --all-targets
exec "$CARGO_TARGET_DIR/release/perpeft" serve --runs runs --demo ml-100k --device "$DEVICE" \
    --data-dir .cache/data --weights-dir .cache/weights --cache-dir .cache --dist dist \
    --port "$PORT"
