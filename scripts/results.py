#!/usr/bin/env python3
"""Regenerates docs/RESULTS.md: trains every method × dataset × seed with the release binary,
then tabulates mean ± std (sample) of the test metrics at the best validation NDCG@20, and the
wall time per epoch, from each run's run.json.

    python3 scripts/results.py                 # all rows (fetches data and weights first)
    python3 scripts/results.py --reuse         # re-tabulate existing runs without training
    python3 scripts/results.py --only frozen   # (re)train only the rows whose label contains this

Runs go to runs/results/<label>-<dataset>-s<seed>/ (registry: runs/results/registry.sqlite).
"""
import argparse
import datetime
import json
import os
import pathlib
import statistics
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
TARGET = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", pathlib.Path.home() / ".cache/perpeft/target"))
BIN = TARGET / "release" / "perpeft"
DATASETS = ["ml-100k", "ml-1m"]
SEEDS = [1, 2, 3]
# ml-1m has 6x the steps per epoch but its id-only validation curve still rises at epoch 30
EPOCHS = {"ml-100k": 30, "ml-1m": 50}
# label -> (extra `perpeft train` arguments, datasets). perpeft runs the schedule of docs/method.md §7–§9:
# 10 global epochs, then 20 per-group epochs (--epochs counts the per-group stage).
PERPEFT = ["--global-epochs", "10", "--epochs", "20"]
METHODS = {
    "id-only": (["--method", "id-only"], DATASETS),
    "frozen": (["--method", "frozen", "--backbone", "minilm"], DATASETS),
    "global-peft-iisan": (["--method", "global-peft", "--peft", "iisan"], DATASETS),
    "perpeft-iisan": (["--method", "perpeft", "--peft", "iisan", *PERPEFT], DATASETS),
    "perpeft-iisan+random-groups": (["--method", "perpeft", "--peft", "iisan", "--random-groups", *PERPEFT], ["ml-100k"]),
    "perpeft-iisan+uniform-negatives": (["--method", "perpeft", "--peft", "iisan", "--uniform-negatives", *PERPEFT], ["ml-100k"]),
}
# LoRA and (IA)3 run MiniLM forward and backward for every batch (~200 items per step), which
# this 2-core CPU did in ~7 min per ml-100k epoch when these rows were made (~3 min now,
# docs/PERFORMANCE.md): a short schedule, stated in the
# table. perpeft reuses the same seed's global-peft run after GLOBAL epochs as its global stage
# (--global-from: that run's last epoch, trained exactly as perpeft's own stage 1 would be), and
# trains PER_GROUP epochs; then the global-peft run is resumed to GLOBAL + PER_GROUP epochs, so
# both rows train for the same number of epochs.
GLOBAL, PER_GROUP = 1, 1
for kind in ("lora", "ia3"):
    METHODS[f"global-peft-{kind}"] = (["--method", "global-peft", "--peft", kind, "--epochs", str(GLOBAL)], ["ml-100k"])
    METHODS[f"perpeft-{kind}"] = (["--method", "perpeft", "--peft", kind, "--global-from", f"{{global-peft-{kind}}}",
                                   "--global-epochs", str(GLOBAL), "--epochs", str(PER_GROUP)], ["ml-100k"])
# the large-global ablation (one LoRA of rank K·r = 32) on the same schedule as global-peft-lora
METHODS["global-peft-lora+large"] = (["--method", "global-peft", "--peft", "lora", "--large-global",
                                      "--epochs", str(GLOBAL + PER_GROUP)], ["ml-100k"])
# after training the key label's seed, resume (label, to epochs) of the same seed
EXTEND = {f"perpeft-{kind}": (f"global-peft-{kind}", GLOBAL + PER_GROUP) for kind in ("lora", "ia3")}
# On ml-1m an IISAN epoch takes ~13 s here (vs ~2 s on ml-100k): shorter schedules there, stated
# in the table's "best epochs" column.
OVERRIDES = {
    ("global-peft-iisan", "ml-1m"): ["--epochs", "20"],
    ("perpeft-iisan", "ml-1m"): ["--global-epochs", "5", "--epochs", "10"],
}
OBSERVATIONS = "## Observations"
METRICS = [("hr10", "HR@10"), ("ndcg10", "NDCG@10"), ("hr20", "HR@20"), ("ndcg20", "NDCG@20")]


def run_dir(label, dataset, seed):
    return ROOT / "runs" / "results" / f"{label}-{dataset}-s{seed}"


def done_epochs(label, dataset, seed):
    """Completed epochs of a finished run (0 when there is none)."""
    record = run_dir(label, dataset, seed) / "run.json"
    if not record.exists():
        return 0
    r = json.loads(record.read_text())
    return len(r["epochs"]) if len(r["epochs"]) == r["train"]["epochs"] else 0


def flags(label, dataset):
    """The row's `perpeft train` flags with the dataset's overrides applied and --epochs always set."""
    extra = list(METHODS[label][0])
    override = OVERRIDES.get((label, dataset))
    if override:
        for flag in override[::2]:
            if flag in extra:
                i = extra.index(flag)
                del extra[i:i + 2]
        extra += override
    if "--epochs" not in extra:
        extra += ["--epochs", str(EPOCHS[dataset])]
    return extra


def wanted_epochs(label, dataset):
    extra = flags(label, dataset)
    return int(extra[extra.index("--epochs") + 1])


def train(label, dataset, seed, resume_to=None):
    out = run_dir(label, dataset, seed)
    extra = flags(label, dataset)
    # "{label}" stands for that label's run directory of the same dataset and seed
    extra = [str(run_dir(a[1:-1], dataset, seed)) if a.startswith("{") else a for a in extra]
    start = "--overwrite"
    if resume_to:
        # the same flags with more epochs
        extra = [str(resume_to) if i > 0 and extra[i - 1] == "--epochs" else a for i, a in enumerate(extra)]
        start = "--resume"
    cmd = [str(BIN), "train", "--dataset", dataset, "--data-dir", str(ROOT / ".cache/data"),
           "--device", "flex", "--seed", str(seed), *extra, "--out", str(out), start]
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT)


def short_version(v):
    """`0.1.0+ecbd87175b1d-dirty` -> `ecbd871-dirty`."""
    commit = v.split("+", 1)[-1]
    return commit[:7] + ("-dirty" if commit.endswith("-dirty") else "")


def fmt(values):
    if len(values) == 1:
        return f"{100 * values[0]:.2f}"
    return f"{100 * statistics.mean(values):.2f} ± {100 * statistics.stdev(values):.2f}"


def previous_rows():
    """The rows of the current docs/RESULTS.md by (dataset, label, number of cells), so a row
    whose runs are not on this machine is carried over as it was (with its code column) instead
    of disappearing when other rows are retrained."""
    out = ROOT / "docs" / "RESULTS.md"
    rows = {}
    if out.exists():
        for line in out.read_text().splitlines():
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if line.startswith("| ml-") and len(cells) > 2:
                rows[(cells[0], cells[1], len(cells))] = line
    return rows


def table():
    rows = []
    previous = previous_rows()
    for dataset in DATASETS:
        for label, (_, datasets) in METHODS.items():
            if dataset not in datasets:
                continue
            # a row shows the seeds that have a finished run (the "best epochs" column lists one
            # per seed); rows with a single seed have no std
            records = [json.loads(p.read_text()) for s in SEEDS
                       if (p := run_dir(label, dataset, s) / "run.json").exists()
                       and json.loads(p.read_text())["epochs"]]
            if not records:
                if (old := previous.get((dataset, label, len(METRICS) + 8))):
                    rows.append(old)
                continue
            cells = [fmt([r["test"][key] for r in records]) for key, _ in METRICS]
            train_s = statistics.mean(e["train_seconds"] for r in records for e in r["epochs"])
            eval_s = statistics.mean(e["eval_seconds"] for r in records for e in r["epochs"])
            best = ", ".join(str(r["best_epoch"]) for r in records)
            users = records[0]["test"]["users"]
            stages = statistics.mean(sum(t for _, t in r.get("stages", [])) for r in records)
            stage = f"{stages:.0f}" if stages else "-"
            epochs = records[0]["train"]["epochs"]
            code = ", ".join(sorted({short_version(r["code_version"]) for r in records}))
            rows.append(f"| {dataset} | {label} | " + " | ".join(cells)
                        + f" | {train_s:.2f} | {eval_s:.2f} | {stage} | {best} / {epochs} | {users} | {code} |")
    return rows


def budget_table(dataset="ml-100k", budget=GLOBAL + PER_GROUP):
    """Every run of `dataset` cut to its first `budget` epochs (a perpeft run's global epochs count):
    test metrics at the best validation NDCG@20 among them, so the short LoRA/(IA)3 schedule has
    every other method beside it at the same budget."""
    rows = []
    previous = previous_rows()
    for label, (_, datasets) in METHODS.items():
        if dataset not in datasets:
            continue
        cells = {key: [] for key, _ in METRICS}
        for seed in SEEDS:
            p = run_dir(label, dataset, seed) / "run.json"
            if not p.exists():
                continue
            r = json.loads(p.read_text())
            before = r["train"]["global_epochs"] if r["train"]["method"] == "perpeft" else 0
            epochs = [e for e in r["epochs"] if before + e["epoch"] <= budget]
            if not epochs:
                continue
            best = epochs[0]
            for e in epochs[1:]:
                if e["valid"]["ndcg20"] > best["valid"]["ndcg20"]:
                    best = e
            for key, _ in METRICS:
                cells[key].append(best["test"][key])
        if not cells["ndcg20"]:
            if (old := previous.get((dataset, label, len(METRICS) + 3))):
                rows.append(old)
        else:
            rows.append(f"| {dataset} | {label} | " + " | ".join(fmt(cells[k]) for k, _ in METRICS)
                        + f" | {len(cells['ndcg20'])} |")
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reuse", action="store_true", help="only tabulate existing runs")
    ap.add_argument("--only", help="train only the method labels containing this")
    ap.add_argument("--bin", type=pathlib.Path, help="use this perpeft binary instead of building one")
    ap.add_argument("--datasets", nargs="*", default=DATASETS, help="train only these datasets")
    ap.add_argument("--seeds", nargs="*", type=int, default=SEEDS, help="train only these seeds")
    ap.add_argument("--exclude", help="skip the method labels containing this")
    ap.add_argument("--skip-done", action="store_true", help="keep finished runs of the configured epochs")
    args = ap.parse_args()
    global BIN
    if args.bin:
        BIN = args.bin
    if not args.reuse:
        subprocess.run([sys.executable, str(ROOT / "scripts/fetch_data.py"), "--cache", str(ROOT / ".cache"),
                        *DATASETS, "minilm", "efficientnet-lite0"], check=True)
        if not args.bin:
            env = {**os.environ, "CARGO_TARGET_DIR": str(TARGET)}
            subprocess.run(["cargo", "build", "--release", "--all-targets"], cwd=ROOT, env=env, check=True)
        for dataset in DATASETS:
            for label, (_, datasets) in METHODS.items():
                if dataset not in datasets or dataset not in args.datasets or (args.only and args.only not in label) \
                        or (args.exclude and args.exclude in label):
                    continue
                for seed in args.seeds:
                    extended = {o: to for o, to in EXTEND.values()}.get(label)
                    if args.skip_done and done_epochs(label, dataset, seed) in (wanted_epochs(label, dataset), extended):
                        print(f"= {label} {dataset} seed {seed}: done", flush=True)
                    else:
                        train(label, dataset, seed)
                    if label in EXTEND:
                        other, to = EXTEND[label]
                        if done_epochs(other, dataset, seed) < to:
                            train(other, dataset, seed, resume_to=to)
    rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    lines = [
        "# Results",
        "",
        f"Regenerated by `python3 scripts/results.py` on {datetime.date.today()} at commit {rev},",
        "on a 2-core CPU machine (burn's flex backend). Leave-one-out, full ranking over all items",
        "minus the user's history, every user with at least 3 interactions; test metrics (×100) at",
        "the epoch with the best validation NDCG@20 (out of the epochs in the \"best epochs\" column);",
        f"mean ± sample std over seeds {', '.join(map(str, SEEDS))}. Seconds are per epoch: training, and",
        "the evaluation of validation and test (full ranking on the device). \"code\" is the commit the",
        "binary was built from (each run.json's `code_version`; `-dirty`: built from uncommitted changes).",
        "",
        "| dataset | method | HR@10 | NDCG@10 | HR@20 | NDCG@20 | train s/epoch | eval s/epoch | earlier stages s | best epochs | users | code |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
        *table(),
        "",
        f"The same runs at the LoRA/(IA)3 rows' budget: each cut to its first {GLOBAL + PER_GROUP} epochs (a perpeft run's",
        "global epochs count), test at the best validation NDCG@20 among them; rows whose global stage",
        "alone is longer are left out.",
        "",
        "| dataset | method | HR@10 | NDCG@10 | HR@20 | NDCG@20 | seeds |",
        "|---|---|---|---|---|---|---|",
        *budget_table(),
        "",
        "Methods (every row: SASRec d=32, 2 blocks, 4 heads, window 10, dropout 0.3, BCE with one",
        "sampled negative + 1e-6·‖E_id‖, AdamW lr 1e-3, weight decay 1e-4, batch 16, reference mode):",
        "- `id-only`: ID embeddings only (the paper's \"w/o MM\").",
        "- `frozen`: item features from the frozen all-MiniLM-L6-v2 text tower (MovieLens has no",
        "  images, so the feature is the 384-d text half only: title, year, genres), computed once",
        "  and cached, through the projector (384→64→LN→ReLU→32→LN); item = 0.5·proj(feature) + E_id.",
        "- `global-peft-iisan`: one IISAN side network (text-only: 7 mean-pooled MiniLM hidden states,",
        "  cached) + projector + SASRec trained jointly (ml-1m: 20 epochs), selected by validation;",
        "  PEFT parameters in a second AdamW (lr 1e-4, weight decay 1e-4).",
        "- `perpeft-iisan`: 10 global epochs (ml-1m: 5) (no evaluation, as the reference), k-means (K = 8,",
        "  k-means++, 10 restarts, seeded) over each user's global SASRec state (last 9 training items",
        "  + validation item), then 20 epochs (ml-1m: 10) of 8 IISAN modules + 8 projectors warm-started from the",
        "  global ones, shared SASRec, group batches interleaved, negatives from the group's training",
        "  items; each user scored with their group's item table. \"earlier stages s\" is the global",
        "  stage plus grouping; best epochs count the per-group stage.",
        "- `+random-groups`, `+uniform-negatives`: the ablations (random user groups; uniform",
        "  negatives over all items in the per-group stage).",
        f"- `global-peft-lora`, `global-peft-ia3` (ml-100k): all-MiniLM-L6-v2 in the loop with LoRA (r = 4,",
        "  alpha = 8, dropout 0.1, on q and v of its 6 layers: 36,864 parameters) or (IA)3 (k, v and the",
        "  fc1 input: 6,912), trained through the encoder for every batch's unique items; PEFT AdamW as",
        "  above. An epoch is 59 steps of ~200 items forward and backward through MiniLM (texts sorted by",
        "  length and encoded in buckets of 32), so the schedule is short: " + f"{GLOBAL + PER_GROUP} epochs.",
        f"- `perpeft-lora`, `perpeft-ia3` (ml-100k): the global stage is the same seed's global-peft run",
        f"  after its epoch {GLOBAL} (`--global-from`; the global stage is seeded as a global-peft run is, so this",
        f"  is what perpeft's own stage 1 trains), then K = 8 groups and {PER_GROUP} per-group epoch(s) of 8",
        "  adapters + 8 projectors; each evaluation encodes all 1,682 items once per group. Both rows",
        f"  train {GLOBAL + PER_GROUP} epochs in all. \"earlier stages s\" is the reused epochs' training time plus",
        "  grouping. These runs ran two at a time, one thread each (`RAYON_NUM_THREADS=1`), partly",
        "  beside test builds: their seconds are with half of the machine or less. The schedule is far",
        "  from converged (the IISAN rows' best epochs are 6–30), so these rows say what a short",
        "  schedule gives, not how the adapters compare at convergence. Their binary was built from the",
        "  tree committed as 81f9e69 (formatting and a clippy fix apart), before the commit: hence",
        "  `ecbd871-dirty`.",
        "- `global-peft-lora+large`: the large-global ablation, one LoRA adapter of rank 8 · 4 = 32 (alpha",
        f"  8 · 8, the same scaling; 294,912 parameters), {GLOBAL + PER_GROUP} epochs like global-peft-lora; seed 1 only",
        "  (time).",
        "",
    ]
    out = ROOT / "docs" / "RESULTS.md"
    # the hand-written "## Observations" section at the end survives regeneration
    old = out.read_text() if out.exists() else ""
    kept = old[old.index(OBSERVATIONS):] if OBSERVATIONS in old else ""
    tmp = out.with_suffix(".md.tmp")
    tmp.write_text("\n".join(lines) + ("\n" + kept if kept else ""))
    tmp.replace(out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
