#!/usr/bin/env bash
# Runs every fuzz target for RUNS executions (default 1,000,000) each, two at a time, seeded from
# the committed fixtures and fuzz/seeds/ (fuzz/make_seeds.py). Needs
# `cargo install --locked cargo-fuzz@0.13.1`; uses RUSTC_BOOTSTRAP=1 so the stable toolchain
# accepts cargo-fuzz's flags, and no sanitizer: the code under test is safe Rust, so the crash
# looked for is a panic (an out-of-bounds index, an unwrap, an allocation too large, a stack
# overflow); built as the server runs, optimised and without overflow checks (`-a` would add
# them, at the price of rebuilding every dependency).
# Prints libFuzzer's final stats per target; logs in fuzz/logs/, crashes in fuzz/artifacts/.
set -euo pipefail
cd "$(dirname "$0")"
RUNS="${1:-1000000}"
FIX=../data/tests/fixtures
export RUSTC_BOOTSTRAP=1
TARGETS=(recbole amazon_final pickle plain run_json groups_json tables bundle grouping)
for t in "${TARGETS[@]}"; do mkdir -p "corpus/$t"; done
mkdir -p logs
printf 'user_id:token\titem_id:token\ttimestamp:float\na\t1\t5\nb\t2\t3\n\0item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n1\tA\t1999\tDrama\n2\tB\t\t\n\0user_id:token\tage:token\na\t3\n' > corpus/recbole/seed
cp "$FIX/amazon/toy_final.txt" corpus/amazon_final/seed
cp "$FIX/amazon/toy_item2id_final.pickle" corpus/pickle/ids
cp "$FIX/amazon/toy_texts_final.pickle" corpus/pickle/texts
{ printf '\0'; cat "$FIX/plain-csv/interactions.csv"; printf '\0'; cat "$FIX/plain-csv/items.csv"; } > corpus/plain/csv
{ printf '\3'; cat "$FIX/plain-jsonl/interactions.jsonl"; printf '\0'; cat "$FIX/plain-jsonl/items.jsonl"; } > corpus/plain/jsonl
for t in run_json groups_json tables bundle grouping; do cp seeds/$t/* "corpus/$t/"; done
cargo fuzz build -O -s none
run() {
    local started=$SECONDS
    local status=0
    cargo fuzz run -O -s none "$1" "corpus/$1" -- -runs="$RUNS" -print_final_stats=1 > "logs/$1.log" 2>&1 || status=$?
    echo "== $1: $(grep -E 'stat::number_of_executed_units' "logs/$1.log" | tail -1) in $((SECONDS - started)) s, exit $status, $(grep -cE '^==[0-9]+== ERROR|panicked at' "logs/$1.log" || true) crashes"
    return "$status"
}
failed=0
for ((i = 0; i < ${#TARGETS[@]}; i += 2)); do
    run "${TARGETS[i]}" & a=$!
    b=""
    if ((i + 1 < ${#TARGETS[@]})); then run "${TARGETS[i + 1]}" & b=$!; fi
    wait "$a" || failed=1
    if [ -n "$b" ]; then wait "$b" || failed=1; fi
done
# a target that crashed (or did not run) fails the whole run
exit "$failed"
