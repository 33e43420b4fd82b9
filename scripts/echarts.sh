#!/usr/bin/env bash
# Copies Apache ECharts (the charts' renderer) to DIR/echarts.min.js: the copy that ships inside
# the charming crate (the version charming is written for), from cargo's registry cache; nothing
# is downloaded. Used by build-frontend.sh, and by Trunk as a pre-build hook (Trunk.toml).
set -euo pipefail
dest="${1:?usage: echarts.sh DIR}"
cd "$(dirname "$0")/.."
charming_dir="$(cargo metadata --format-version 1 --filter-platform wasm32-unknown-unknown |
    python3 -c 'import json, os, sys
m = json.load(sys.stdin)
print(next(os.path.dirname(p["manifest_path"]) for p in m["packages"] if p["name"] == "charming"))')"
echarts="$(ls "$charming_dir"/src/asset/echarts-*.min.js | head -n 1)"
mkdir -p "$dest"
cp "$echarts" "$dest/echarts.min.js"
