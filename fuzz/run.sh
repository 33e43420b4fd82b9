#!/usr/bin/env bash
# Runs every fuzz target for SECONDS (default 120) each, two at a time, seeded from the
# committed fixtures. Needs `cargo install cargo-fuzz --locked`; uses RUSTC_BOOTSTRAP=1 so the
# stable toolchain accepts cargo-fuzz's sanitizer flags. Prints libFuzzer's final stats.
set -euo pipefail
cd "$(dirname "$0")"
SECONDS_EACH="${1:-120}"
FIX=../data/tests/fixtures
export RUSTC_BOOTSTRAP=1
mkdir -p corpus/recbole corpus/amazon_final corpus/pickle corpus/plain logs
printf 'user_id:token\titem_id:token\ttimestamp:float\na\t1\t5\nb\t2\t3\n\0item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n1\tA\t1999\tDrama\n2\tB\t\t\n\0user_id:token\tage:token\na\t3\n' > corpus/recbole/seed
cp "$FIX/amazon/toy_final.txt" corpus/amazon_final/seed
cp "$FIX/amazon/toy_item2id_final.pickle" corpus/pickle/ids
cp "$FIX/amazon/toy_texts_final.pickle" corpus/pickle/texts
{ printf '\0'; cat "$FIX/plain-csv/interactions.csv"; printf '\0'; cat "$FIX/plain-csv/items.csv"; } > corpus/plain/csv
{ printf '\3'; cat "$FIX/plain-jsonl/interactions.jsonl"; printf '\0'; cat "$FIX/plain-jsonl/items.jsonl"; } > corpus/plain/jsonl
cargo fuzz build -O
run() {
    cargo fuzz run -O "$1" "corpus/$1" -- -max_total_time="$SECONDS_EACH" -print_final_stats=1 > "logs/$1.log" 2>&1
    echo "== $1: $(grep -E 'stat::number_of_executed_units' "logs/$1.log") $(grep -cE 'ERROR|panicked' "logs/$1.log") crashes"
}
run recbole & run amazon_final & wait
run pickle & run plain & wait
