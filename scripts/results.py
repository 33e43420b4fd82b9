#!/usr/bin/env python3
"""Regenerates docs/RESULTS.md: trains every method × dataset × seed with the release binary,
then tabulates mean ± std (sample) of the test metrics at the best validation NDCG@20, and the
wall time per epoch, from each run's run.json.

    python3 scripts/results.py --jobs 2        # train what is not finished, then tabulate
    python3 scripts/results.py --reuse         # re-tabulate existing runs without training
    python3 scripts/results.py --only frozen   # train only the rows whose label contains this

Runs go to runs/results/<label>-<dataset>-s<seed>/ (registry: runs/results/registry.sqlite).
"""
import argparse
import datetime
import json
import math
import os
import pathlib
import sqlite3
import statistics
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
TARGET = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", pathlib.Path.home() / ".cache/perpeft/target"))
BIN = TARGET / "release" / "perpeft"
DATASETS = ["ml-100k", "ml-1m"]
SEEDS = [1, 2, 3]
REF = ["--preset", "reference"]
# Rows: label -> (run-directory stem, recipe, {dataset: `perpeft train` flags}). "{stem}" in a flag
# stands for that row's run directory of the same dataset and seed, and makes this row wait for it.
# Recommended recipe (`perpeft train`'s defaults: all windows of 50, full softmax, lr 2e-3, batch
# 128, early stopping): ml-1m's full softmax over 3,706 items costs ~2 min an epoch on one core
# here, so its id-only row samples 256 shared negatives per batch instead (`--negatives 256`).
ROWS = {
    "id-only": ("id-only", "recommended", {
        "ml-100k": ["--method", "id-only", "--epochs", "100", "--patience", "10"],
        "ml-1m": ["--method", "id-only", "--negatives", "256", "--epochs", "50", "--patience", "8"],
    }),
    # ablations of the recipe (seed 1 only, for time): BCE or BPR with one negative, the rest
    # recommended
    "id-only+bce": ("id-only-bce", "recommended", {
        "ml-100k": ["--method", "id-only", "--loss", "bce", "--negatives", "1", "--epochs", "100", "--patience", "10"],
    }),
    "id-only+bpr": ("id-only-bpr", "recommended", {
        "ml-100k": ["--method", "id-only", "--loss", "bpr", "--negatives", "1", "--epochs", "100", "--patience", "10"],
    }),
    "global-peft-iisan": ("global-peft-iisan", "recommended", {
        "ml-100k": ["--method", "global-peft", "--peft", "iisan", "--epochs", "100", "--patience", "10"],
    }),
    # the per-group stage starts from the same seed's global run at its best validation epoch
    "perpeft-iisan+freeze-shared+group-select": ("perpeft-iisan-gs", "recommended", {
        "ml-100k": ["--method", "perpeft", "--peft", "iisan", "--global-from", "{global-peft-iisan}",
                    "--global-from-best", "--freeze-shared", "--group-select", "--epochs", "30", "--patience", "5"],
    }),
    "perpeft-iisan": ("perpeft-iisan", "recommended", {
        "ml-100k": ["--method", "perpeft", "--peft", "iisan", "--global-from", "{global-peft-iisan}",
                    "--global-from-best", "--epochs", "30", "--patience", "5"],
    }),
}
# Reference recipe (`--preset reference`: the PerPEFT code's last window of 10, BCE with one
# negative, batch 16, lr 1e-3, no early stopping): the paper's schedules. The paired PerPEFT rows
# take their global stage from the same seed's global run (its last epoch, as PerPEFT's own stage 1
# would train it), so each pair differs only in the per-group stage.
GLOBAL_EPOCHS = {"ml-100k": "30", "ml-1m": "20"}
PER_GROUP = {"ml-100k": "20", "ml-1m": "10"}
REFERENCE = {
    "id-only": ["--method", "id-only"],
    "frozen": ["--method", "frozen", "--backbone", "minilm"],
    "global-peft-iisan": ["--method", "global-peft", "--peft", "iisan"],
}
for label, args in REFERENCE.items():
    ROWS[f"ref:{label}"] = (f"ref-{label}", "reference", {
        "ml-100k": [*REF, *args, "--epochs", "30" if label != "global-peft-iisan" else GLOBAL_EPOCHS["ml-100k"]],
        "ml-1m": [*REF, *args, "--epochs", "50" if label != "global-peft-iisan" else GLOBAL_EPOCHS["ml-1m"]],
    })
# the control: the same global run trained on for as many epochs as the per-group stage adds
# (its first epochs are the global run's, draw for draw), so a PerPEFT gain is not just more epochs
ROWS["ref:global-peft-iisan+long"] = ("ref-global-peft-iisan-long", "reference", {
    d: [*REF, *REFERENCE["global-peft-iisan"], "--epochs", str(int(GLOBAL_EPOCHS[d]) + int(PER_GROUP[d]))]
    for d in DATASETS})
for label, extra in [("perpeft-iisan", []), ("perpeft-iisan+freeze-shared+group-select", ["--freeze-shared", "--group-select"])]:
    ROWS[f"ref:{label}"] = (f"ref-{label.replace('+freeze-shared+group-select', '-gs')}", "reference", {
        d: [*REF, "--method", "perpeft", "--peft", "iisan", "--global-from", "{ref-global-peft-iisan}",
            "--global-epochs", GLOBAL_EPOCHS[d], "--epochs", PER_GROUP[d], *extra] for d in DATASETS})
# LoRA and (IA)3 (reference recipe) run MiniLM forward and backward for every batch: a short
# schedule, stated in the table. perpeft reuses the same seed's global-peft run after GLOBAL epochs
# as its global stage, trains PER_GROUP_LORA epochs, then the global-peft run is resumed to the
# same total (EXTEND).
GLOBAL, PER_GROUP_LORA = 1, 1
for kind in ("lora", "ia3"):
    ROWS[f"ref:global-peft-{kind}"] = (f"global-peft-{kind}", "reference", {"ml-100k": [
        *REF, "--method", "global-peft", "--peft", kind, "--epochs", str(GLOBAL)]})
    ROWS[f"ref:perpeft-{kind}"] = (f"perpeft-{kind}", "reference", {"ml-100k": [
        *REF, "--method", "perpeft", "--peft", kind, "--global-from", f"{{global-peft-{kind}}}",
        "--global-epochs", str(GLOBAL), "--epochs", str(PER_GROUP_LORA)]})
ROWS["ref:global-peft-lora+large"] = ("global-peft-lora+large", "reference", {"ml-100k": [
    *REF, "--method", "global-peft", "--peft", "lora", "--large-global", "--epochs", str(GLOBAL + PER_GROUP_LORA)]})
# rows trained on fewer seeds (time: ~10 min an epoch here), and only when --only names them (the
# table carries their earlier row otherwise)
ROW_SEEDS = {"ref:global-peft-lora+large": [1], "id-only+bce": [1], "id-only+bpr": [1]}
ON_REQUEST = ["ref:global-peft-lora+large"]
# after training the key row's seed, resume (row, to epochs) of the same seed
EXTEND = {f"ref:perpeft-{kind}": (f"ref:global-peft-{kind}", GLOBAL + PER_GROUP_LORA) for kind in ("lora", "ia3")}
# paired comparisons (same seed): (dataset, recipe, better-hoped row, baseline row)
PAIRS = [
    ("ml-100k", "recommended", "perpeft-iisan+freeze-shared+group-select", "global-peft-iisan"),
    ("ml-100k", "recommended", "perpeft-iisan", "global-peft-iisan"),
    ("ml-100k", "recommended", "global-peft-iisan", "id-only"),
    ("ml-100k", "recommended", "id-only", "id-only+bce"),
    ("ml-100k", "recommended", "id-only", "id-only+bpr"),
    *[(d, "reference", "ref:perpeft-iisan+freeze-shared+group-select", "ref:global-peft-iisan") for d in DATASETS],
    *[(d, "reference", "ref:perpeft-iisan", "ref:global-peft-iisan") for d in DATASETS],
    *[(d, "reference", "ref:perpeft-iisan+freeze-shared+group-select", "ref:global-peft-iisan+long") for d in DATASETS],
    *[(d, "reference", "ref:perpeft-iisan", "ref:global-peft-iisan+long") for d in DATASETS],
    *[(d, "reference", "ref:global-peft-iisan", "ref:frozen") for d in DATASETS],
    *[(d, "reference", "ref:frozen", "ref:id-only") for d in DATASETS],
    ("ml-100k", "reference", "ref:perpeft-lora", "ref:global-peft-lora"),
    ("ml-100k", "reference", "ref:perpeft-ia3", "ref:global-peft-ia3"),
]
OBSERVATIONS = "## What we learned"
METRICS = [("hr10", "HR@10"), ("ndcg10", "NDCG@10"), ("hr20", "HR@20"), ("ndcg20", "NDCG@20")]


def run_dir(label, dataset, seed):
    return ROOT / "runs" / "results" / f"{ROWS[label][0]}-{dataset}-s{seed}"


def stem_label(stem):
    return next(label for label, (s, _, _) in ROWS.items() if s == stem)


def deps(label, dataset):
    """The rows this row's runs start from (its "{stem}" flags)."""
    return [stem_label(a[1:-1]) for a in ROWS[label][2][dataset] if a.startswith("{")]


def registry_status(label, dataset, seed):
    db = ROOT / "runs" / "results" / "registry.sqlite"
    if not db.exists():
        return None
    with sqlite3.connect(db) as c:
        row = c.execute("SELECT status FROM runs WHERE name = ?", (run_dir(label, dataset, seed).name,)).fetchone()
    return row[0] if row else None


def record(label, dataset, seed):
    """The run's record, if the registry has it finished."""
    p = run_dir(label, dataset, seed) / "run.json"
    if not p.exists() or registry_status(label, dataset, seed) != "finished":
        return None
    r = json.loads(p.read_text())
    return r if r["epochs"] else None


def finished(label, dataset, seed, epochs=None):
    r = record(label, dataset, seed)
    return r is not None and (epochs is None or len(r["epochs"]) >= epochs)


def command(label, dataset, seed, resume_to=None):
    extra = [str(run_dir(stem_label(a[1:-1]), dataset, seed)) if a.startswith("{") else a
             for a in ROWS[label][2][dataset]]
    start = "--overwrite"
    if resume_to:
        # the same flags with more epochs
        extra = [str(resume_to) if i > 0 and extra[i - 1] == "--epochs" else a for i, a in enumerate(extra)]
        start = "--resume"
    return [str(BIN), "train", "--dataset", dataset, "--data-dir", str(ROOT / ".cache/data"),
            "--device", "flex", "--seed", str(seed), *extra, "--out", str(run_dir(label, dataset, seed)), start]


def schedule(jobs, parallel):
    """Runs `jobs` ((label, dataset, seed, resume_to) in order), `parallel` at a time (one thread
    each when more than one). A job starts once the runs it starts from are finished and none of
    them is still to be (re)trained here, and never beside another job of the same run; a job
    that resumes a run to more epochs waits for every job before it of the same dataset and
    seed that reads that run."""
    env = {**os.environ}
    if parallel > 1:
        env["RAYON_NUM_THREADS"] = "1"
    running, pending = [], list(jobs)

    def blocked(job):
        label, dataset, seed, resume_to = job
        earlier = pending[:pending.index(job)] + [r[0] for r in running]
        if any(j[:3] == job[:3] for j in earlier):
            return True
        for dep in deps(label, dataset):
            if not finished(dep, dataset, seed) or any(j[:3] == (dep, dataset, seed) for j in earlier):
                return True
        if resume_to:
            if any(label in deps(j[0], j[1]) and j[1:3] == (dataset, seed) for j in earlier):
                return True
        return False

    try:
        while pending or running:
            for r in [r for r in running if r[1].poll() is not None]:
                running.remove(r)
                r[3].close()
                if r[1].returncode != 0:
                    raise SystemExit(f"failed: {' '.join(r[2])} (log: {r[3].name})")
            started = False
            for job in list(pending):
                if len(running) >= parallel:
                    break
                if blocked(job):
                    continue
                pending.remove(job)
                cmd = command(*job)
                print("+", " ".join(cmd), flush=True)
                log = open(ROOT / "runs" / "results" / f"{run_dir(*job[:3]).name}.log", "a")
                running.append((job, subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT), cmd, log))
                started = True
            if not running and pending and not started:
                raise SystemExit(f"cannot start {pending[0][:3]}: it starts from a run that is not finished")
            time.sleep(1)
    finally:
        for r in running:
            r[1].terminate()


def short_version(v):
    """`0.1.0+ecbd87175b1d-dirty` -> `ecbd871-dirty`."""
    commit = v.split("+", 1)[-1]
    return commit[:7] + ("-dirty" if commit.endswith("-dirty") else "")


def fmt(values):
    if len(values) == 1:
        return f"{100 * values[0]:.2f}"
    return f"{100 * statistics.mean(values):.2f} ± {100 * statistics.stdev(values):.2f}"


# two-sided 95% Student t quantiles by degrees of freedom
T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}


def interval(diffs):
    m = statistics.mean(diffs)
    if len(diffs) < 2:
        return m, None
    return m, T95[len(diffs) - 1] * statistics.stdev(diffs) / math.sqrt(len(diffs))


def previous_rows():
    """The rows of the current docs/RESULTS.md by (dataset, label, number of cells), so a row
    whose runs are not on this machine is carried over as it was (with its code column) instead
    of disappearing when other rows are retrained."""
    out = ROOT / "docs" / "RESULTS.md"
    rows = {}
    section = "reference"  # a file from before the recipes had names held reference rows only
    if out.exists():
        for line in out.read_text().splitlines():
            if line.startswith("## "):
                section = "recommended" if line.startswith("## Recommended") else "reference"
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if line.startswith("| ml-") and len(cells) > 2:
                rows[(section, cells[0], cells[1], len(cells))] = line
    return rows


# rows whose protocol is the same as before the recipes had names: their earlier rows may be
# carried when their runs are not on this machine
CARRY = {"id-only", "frozen", "global-peft-lora", "perpeft-lora", "global-peft-ia3", "perpeft-ia3",
         "global-peft-lora+large"}


def records_of(label, dataset):
    return [r for s in SEEDS if (r := record(label, dataset, s)) is not None]


def table(recipe):
    rows = []
    previous = previous_rows()
    for dataset in DATASETS:
        popular = None
        for label, (_, rec, per) in ROWS.items():
            if rec != recipe or dataset not in per:
                continue
            name = label.removeprefix("ref:")
            records = records_of(label, dataset)
            if not records:
                if name in CARRY and (old := previous.get((recipe, dataset, name, len(METRICS) + 8))):
                    rows.append(old)
                continue
            popular = popular or next((r["popularity"] for r in records if r.get("popularity")), None)
            cells = [fmt([r["test"][key] for r in records]) for key, _ in METRICS]
            train_s = statistics.mean(e["train_seconds"] for r in records for e in r["epochs"])
            eval_s = statistics.mean(e["eval_seconds"] for r in records for e in r["epochs"])
            best = ", ".join(f"{r['best_epoch']}/{len(r['epochs'])}" for r in records)
            users = records[0]["test"]["users"]
            stages = statistics.mean(sum(t for _, t in r.get("stages", [])) for r in records)
            stage = f"{stages:.0f}" if stages else "-"
            code = ", ".join(sorted({short_version(r["code_version"]) for r in records}))
            rows.append(f"| {dataset} | {name} | " + " | ".join(cells)
                        + f" | {train_s:.2f} | {eval_s:.2f} | {stage} | {best} | {users} | {code} |")
        if popular and recipe == "recommended":
            _, test = popular
            rows.insert(len(rows) - sum(1 for r in rows if r.startswith(f"| {dataset} |")),
                        f"| {dataset} | popularity | " + " | ".join(f"{100 * test[k]:.2f}" for k, _ in METRICS)
                        + f" | - | - | - | - | {test['users']} | (every run) |")
    return rows


def paired():
    """Paired differences (row minus baseline, same seed) of test NDCG@20 and NDCG@10, ×100:
    mean and 95% t interval over the seeds both rows have."""
    rows = []
    for dataset, recipe, a, b in PAIRS:
        seeds = [s for s in SEEDS if record(a, dataset, s) and record(b, dataset, s)]
        if not seeds:
            continue
        cells = []
        for key in ("ndcg20", "ndcg10"):
            diffs = [100 * (record(a, dataset, s)["test"][key] - record(b, dataset, s)["test"][key]) for s in seeds]
            m, h = interval(diffs)
            cells.append(f"{m:+.2f}" + (f" [{m - h:+.2f}, {m + h:+.2f}]" if h is not None else ""))
            if key == "ndcg20":
                per_seed = ", ".join(f"{d:+.2f}" for d in diffs)
        valid = [100 * (best_valid(record(a, dataset, s)) - best_valid(record(b, dataset, s))) for s in seeds]
        rows.append(f"| {dataset} | {recipe} | {a.removeprefix('ref:')} − {b.removeprefix('ref:')} | "
                    + " | ".join(cells) + f" | {statistics.mean(valid):+.2f} | {per_seed} | {len(seeds)} |")
    return rows


def best_valid(r):
    return next(e["valid"]["ndcg20"] for e in r["epochs"] if e["epoch"] == r["best_epoch"])


def budget_table(dataset="ml-100k", budget=GLOBAL + PER_GROUP_LORA):
    """Every reference-recipe run of `dataset` cut to its first `budget` epochs (a perpeft run's
    global epochs count): test metrics at the best validation NDCG@20 among them, so the short
    LoRA/(IA)3 schedule has the other methods beside it at the same budget."""
    rows = []
    previous = previous_rows()
    for label, (_, recipe, per) in ROWS.items():
        if recipe != "reference" or dataset not in per or label.endswith("+long"):
            continue
        cells = {key: [] for key, _ in METRICS}
        for r in records_of(label, dataset):
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
        name = label.removeprefix("ref:")
        if not cells["ndcg20"]:
            if name in CARRY and (old := previous.get(("reference", dataset, name, len(METRICS) + 3))):
                rows.append(old)
        else:
            rows.append(f"| {dataset} | {name} | " + " | ".join(fmt(cells[k]) for k, _ in METRICS)
                        + f" | {len(cells['ndcg20'])} |")
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reuse", action="store_true", help="only tabulate existing runs")
    ap.add_argument("--only", help="train only the row labels containing this")
    ap.add_argument("--bin", type=pathlib.Path, help="use this perpeft binary instead of building one")
    ap.add_argument("--datasets", nargs="*", default=DATASETS, help="train only these datasets")
    ap.add_argument("--seeds", nargs="*", type=int, default=SEEDS, help="train only these seeds")
    ap.add_argument("--exclude", help="skip the row labels containing this")
    ap.add_argument("--retrain", action="store_true", help="retrain finished runs too")
    ap.add_argument("--jobs", type=int, default=1, help="runs at a time (one thread each when more than one)")
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
        (ROOT / "runs" / "results").mkdir(parents=True, exist_ok=True)
        jobs = []
        for dataset in DATASETS:
            for label, (_, _, per) in ROWS.items():
                if label in ON_REQUEST and not (args.only and args.only in label):
                    continue
                if dataset not in per or dataset not in args.datasets or (args.only and args.only not in label) \
                        or (args.exclude and args.exclude in label):
                    continue
                for seed in [s for s in args.seeds if s in ROW_SEEDS.get(label, SEEDS)]:
                    if args.retrain or not finished(label, dataset, seed):
                        jobs.append((label, dataset, seed, None))
                    else:
                        print(f"= {label} {dataset} seed {seed}: finished", flush=True)
                    if label in EXTEND:
                        other, to = EXTEND[label]
                        if not finished(other, dataset, seed, to):
                            jobs.append((other, dataset, seed, to))
        schedule(jobs, args.jobs)
    rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    header = ["| dataset | method | HR@10 | NDCG@10 | HR@20 | NDCG@20 | train s/epoch | eval s/epoch | earlier stages s | best epoch / epochs run | users | code |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    lines = [
        "# Results",
        "",
        f"Regenerated by `python3 scripts/results.py --jobs 2` on {datetime.date.today()} at commit {rev},",
        "on a 2-core CPU machine (burn's flex backend; with `--jobs 2` two runs train at once, one",
        "thread each; for this table up to six runs shared the two cores, so seconds are upper",
        "bounds). Leave-one-out, full ranking over all items minus the user's history, every user",
        "with at least 3 interactions; test metrics (×100) at the epoch with the best validation",
        f"NDCG@20; mean ± sample std over seeds {', '.join(map(str, SEEDS))}. Seconds are per epoch:",
        "training, and the evaluation of validation and test. \"code\" is the commit the binary was",
        "built from (`-dirty`: built from uncommitted changes). `popularity` ranks items by their",
        "training count (same protocol; every run records it, `perpeft train` compares against it).",
        "",
        "## Recommended recipe (`perpeft train`'s defaults)",
        "",
        "SASRec d=32, 2 blocks, 4 heads, dropout 0.3, padding masked (`standard`), window 50, every",
        "(input → next) pair of every user's training sequence a target once per epoch (windows of 50",
        "cut from the end), softmax cross-entropy over every item + 1e-6·‖E_id‖, AdamW lr 2e-3 (PEFT",
        "lr 1e-4), weight decay 1e-4, batch 128 windows, early stopping on validation NDCG@20",
        "(`--patience`; the table's runs: 10 and at most 100 epochs on ml-100k, per-group stages 5 and",
        "at most 30). ml-1m id-only samples 256 shared negatives per batch (`--negatives 256`) instead of",
        "the full softmax, at most 50 epochs, patience 8, for time.",
        "",
        *header,
        *table("recommended"),
        "",
        "- `perpeft-iisan`: the same seed's `global-peft-iisan` run at its best validation epoch",
        "  (`--global-from RUN --global-from-best`), k-means K = 8 over the users' states, then per-group",
        "  epochs of 8 IISAN modules + 8 projectors warm-started from the global ones, the softmax over",
        "  the group's pool of training items. `+freeze-shared`: SASRec (ID and position embeddings",
        "  included) kept as the global run left it; `+group-select`: after each epoch a group whose",
        "  own users' validation NDCG@20 did not improve goes back to its adapter and projector from",
        "  before the epoch (so a group that never improves keeps the global model's).",
        "",
        "## Reference recipe (`--preset reference`)",
        "",
        "The PerPEFT code's: window 10, only the last 10 (input → next) pairs of each user per epoch,",
        "BCE with one sampled negative, batch 16, no padding mask, fixed epochs; lr 1e-3 (the",
        "reference's 1e-4 is tuned for ~1,500 steps an epoch; docs/method.md §6).",
        "",
        *header,
        *table("reference"),
        "",
        "- `frozen`: item features from the frozen all-MiniLM-L6-v2 text tower (MovieLens has no",
        "  images: title, year, genres), cached, through the projector (384→64→LN→ReLU→32→LN);",
        "  item = 0.5·proj(feature) + E_id.",
        "- `global-peft-iisan`: one IISAN side network (text-only: 7 mean-pooled MiniLM hidden states,",
        "  cached) + projector + SASRec trained jointly; PEFT parameters in a second AdamW (lr 1e-4).",
        f"- `perpeft-iisan` (+ variants): the same seed's `global-peft-iisan` run after its last epoch",
        f"  ({GLOBAL_EPOCHS['ml-100k']} on ml-100k, {GLOBAL_EPOCHS['ml-1m']} on ml-1m: `--global-from`; draw for draw what",
        f"  `--global-epochs` of that many would train itself), K = 8, then {PER_GROUP['ml-100k']} (ml-1m: {PER_GROUP['ml-1m']}) per-group epochs, negatives",
        "  from the group's training items. Best epochs count the per-group stage.",
        "- `global-peft-iisan+long`: the control, the global run trained on for as many epochs as the",
        "  per-group stage adds (its first epochs are the global run's, draw for draw).",
        f"- `global-peft-lora`, `global-peft-ia3`, `perpeft-lora`, `perpeft-ia3`, `global-peft-lora+large`",
        "  (ml-100k): MiniLM in the loop with LoRA (r = 4, alpha = 8, q and v: 36,864 parameters) or",
        f"  (IA)3 (6,912); {GLOBAL + PER_GROUP_LORA} epochs in all (perpeft: the global run after epoch {GLOBAL}, then",
        f"  {PER_GROUP_LORA} per-group epoch); far from converged. Trained at 1f27be4/ecbd871 before this",
        "  recipe had a name (identical settings).",
        "",
        f"The reference runs cut to their first {GLOBAL + PER_GROUP_LORA} epochs (a perpeft run's global epochs count),",
        "test at the best validation NDCG@20 among them:",
        "",
        "| dataset | method | HR@10 | NDCG@10 | HR@20 | NDCG@20 | seeds |",
        "|---|---|---|---|---|---|---|",
        *budget_table(),
        "",
        "## Paired differences",
        "",
        "Row minus baseline on the same seed (×100, test at each run's best validation epoch): mean",
        "and 95% Student-t interval over the seeds; the validation column is the same difference",
        "of validation NDCG@20 at the selected epochs (what selection saw).",
        "",
        "| dataset | recipe | difference | ΔNDCG@20 [95% CI] | ΔNDCG@10 [95% CI] | Δvalid NDCG@20 | ΔNDCG@20 per seed | seeds |",
        "|---|---|---|---|---|---|---|---|",
        *paired(),
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
