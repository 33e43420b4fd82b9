#!/usr/bin/env bash
# Builds the Leptos app to dist/ with cargo + wasm-bindgen (no Trunk needed; `trunk serve`
# with Trunk.toml is the developer's live-reload alternative).
source "$(dirname "$0")/lib.sh"
ensure_wasm_target
ensure_wasm_bindgen
cd "$ROOT"
log "building the front end (release, wasm32)"
cargo build --release -p app --target wasm32-unknown-unknown
rm -rf dist.tmp && mkdir -p dist.tmp
wasm-bindgen --target web --no-typescript --out-dir dist.tmp --out-name app \
    "$CARGO_TARGET_DIR/wasm32-unknown-unknown/release/app.wasm"
cp public/* dist.tmp/
"$ROOT/scripts/echarts.sh" dist.tmp
cat > dist.tmp/index.html <<'HTML'
<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>PerPEFT Studio</title>
  <link rel="stylesheet" href="/style.css">
  <script src="/echarts.min.js"></script>
  <script type="module">import init from '/app.js'; init();</script>
</head>
<body></body>
</html>
HTML
rm -rf dist && mv dist.tmp dist
log "front end in $ROOT/dist"
