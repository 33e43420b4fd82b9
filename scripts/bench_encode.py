#!/usr/bin/env python3
"""Side-by-side CPU benchmark of the adapter-training hot path: `perpeft bench encode` (burn,
flex backend) and the PyTorch reference (`reference_cpu.py`: the same MiniLM shapes, batch,
tokens, threads and LoRA dropout), run alternately in one process tree, several rounds, so both
see the same machine state. Prints a Markdown table: items/s of each (median over rounds), the
ratio, and the useful GFLOP/s as a share of the CPU's fp32 peak.

    python3 scripts/bench_encode.py                      # batches 8 and 32, 2 threads, 2 rounds
    python3 scripts/bench_encode.py --batch 32 --rounds 3
    python3 scripts/bench_encode.py --reference ../shared/bench/reference_cpu.py

Needs the release binary (`cargo build --release --all-targets`) and, for the reference, torch,
transformers and peft (pip; their versions are printed). Useful FLOPs: MiniLM's forward at T tokens
is 6 layers x (24 T d^2 + 4 T^2 d) with d = 384 (0.69 GFLOP an item at T = 32); a training step
counts twice that (the backward pass computes the input gradients of every layer; the frozen
weights get none). Peak: cores x clock x FLOP per cycle (32 for two 256-bit FMA pipes, the
default; pass --flops-per-cycle for another CPU).
"""
import argparse
import importlib.metadata
import json
import os
import platform
import re
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CASES = {
    # ours (bench case) -> (reference "what" of forward, reference "what" of the training step)
    "minilm text +lora(q,v)": ("minilm forward", "minilm +lora(q,v) forward+backward+step"),
    "minilm text +ia3(k,v,fc1)": ("minilm forward", "minilm +ia3(k,v,fc1) forward+backward+step"),
}


def minilm_gflop(tokens, d=384, layers=6):
    return layers * (24 * tokens * d * d + 4 * tokens * tokens * d) / 1e9


def cpu_ghz():
    try:
        mhz = [float(l.split(":")[1]) for l in open("/proc/cpuinfo") if l.startswith("cpu MHz")]
        return max(mhz) / 1000
    except (OSError, ValueError):
        return None


def run(cmd, env=None):
    p = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stderr[-3000:]}")
    return p.stdout


def ours(binary, batch, tokens, threads, reps, dropout):
    env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
    out = run([binary, "bench", "encode", "--device", "flex", "--only", "minilm text",
               "--batch", str(batch), "--tokens", str(tokens), "--reps", str(reps),
               "--lora-dropout", str(dropout)], env)
    rows = {}
    for line in out.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 6 and cells[1] in CASES:
            rows[cells[1]] = (float(cells[4]), float(cells[5]))
    missing = set(CASES) - set(rows)
    if missing:
        sys.exit(f"perpeft bench encode printed no row for {sorted(missing)}:\n{out}")
    return rows


def reference(script, batch, tokens, threads, reps, dropout):
    out = run([sys.executable, script, "--batch", str(batch), "--tokens", str(tokens),
               "--threads", str(threads), "--lora-dropout", str(dropout), "--reps", str(reps)])
    rows, meta = {}, {}
    for line in out.splitlines():
        if line.startswith("{"):
            j = json.loads(line)
            if "what" in j:
                rows[j["what"]] = j["items_s"]
            else:
                meta = j
    return rows, meta


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch", type=int, nargs="+", default=[8, 32])
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--reps", type=int, default=5, help="timed repetitions per run (median)")
    ap.add_argument("--lora-dropout", type=float, default=0.1)
    ap.add_argument("--binary", default=os.environ.get(
        "PERPEFT_BIN",
        str(Path(os.environ.get("CARGO_TARGET_DIR", Path.home() / ".cache/perpeft/target"))
            / "release/perpeft")))
    ap.add_argument("--reference", default=str(ROOT.parent / "shared/bench/reference_cpu.py"))
    ap.add_argument("--flops-per-cycle", type=float, default=32.0)
    args = ap.parse_args()
    if not Path(args.binary).exists():
        sys.exit(f"no binary at {args.binary}: cargo build --release --all-targets first")
    if not Path(args.reference).exists():
        sys.exit(f"no reference script at {args.reference} (--reference PATH)")

    ghz = cpu_ghz()
    peak = args.threads * ghz * args.flops_per_cycle if ghz else None
    results = []  # (batch, case, kind, ours items/s list, reference items/s list)
    meta = {}
    for batch in args.batch:
        acc = {(c, k): ([], []) for c in CASES for k in ("forward", "train")}
        for r in range(args.rounds):
            # alternate which goes first, so neither always runs on a cooler machine
            order = ["ours", "ref"] if r % 2 == 0 else ["ref", "ours"]
            for who in order:
                if who == "ours":
                    got = ours(args.binary, batch, args.tokens, args.threads, args.reps,
                               args.lora_dropout)
                    for c, (fwd, train) in got.items():
                        acc[(c, "forward")][0].append(fwd)
                        acc[(c, "train")][0].append(train)
                else:
                    got, meta = reference(args.reference, batch, args.tokens, args.threads,
                                          args.reps, args.lora_dropout)
                    missing = {w for pair in CASES.values() for w in pair} - set(got)
                    if missing:
                        sys.exit(f"the reference printed no result for {sorted(missing)}")
                    for c, (fwd, train) in CASES.items():
                        acc[(c, "forward")][1].append(got[fwd])
                        acc[(c, "train")][1].append(got[train])
            print(f"batch {batch}: round {r + 1} of {args.rounds} done", file=sys.stderr)
        for (c, k), (a, b) in acc.items():
            results.append((batch, c, k, a, b))

    gf = minilm_gflop(args.tokens)
    print(f"MiniLM-L6 (d 384, 6 layers), {args.tokens} tokens, {args.threads} threads, "
          f"LoRA dropout {args.lora_dropout}; median of {args.rounds} rounds x "
          f"{args.reps} reps each")
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, "
          f"{ghz:.2f} GHz" if ghz else "machine: clock unknown", end="")
    print(f"; fp32 peak of {args.threads} cores = {peak:.0f} GFLOP/s "
          f"({args.flops_per_cycle:g} FLOP/cycle)" if peak else "")
    versions = {}
    for pkg in ("torch", "transformers", "peft"):
        try:
            versions[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            versions[pkg] = "?"
    print(f"reference: {meta}; packages: {versions}")
    print("forward: the frozen encoder without an adapter (both sides); training: forward + "
          "backward + AdamW step through the adapter")
    print()
    print("| batch | adapter | pass | ours items/s | PyTorch items/s | ours / PyTorch "
          "| ours GFLOP/s (% peak) | PyTorch GFLOP/s (% peak) |")
    print("|---:|---|---|---:|---:|---:|---:|---:|")
    seen_forward = set()
    for batch, c, k, a, b in results:
        if k == "forward":
            if batch in seen_forward:
                continue  # the same frozen forward for every adapter
            seen_forward.add(batch)
        ma, mb = statistics.median(a), statistics.median(b)
        flop = gf * (1 if k == "forward" else 2)
        share = lambda x: (f"{x * flop:.0f} ({100 * x * flop / peak:.0f}%)" if peak
                           else f"{x * flop:.0f}")
        adapter = "-" if k == "forward" else c.split("+")[1]
        what = "forward" if k == "forward" else "fwd+bwd+step"
        print(f"| {batch} | {adapter} | {what} | {ma:.1f} | {mb:.1f} | {ma / mb:.2f} "
              f"| {share(ma)} | {share(mb)} |")


if __name__ == "__main__":
    main()
