#!/usr/bin/env python3
"""Load test of the server (docs/RELIABILITY.md, "Load").

Serves a runs root of four ml-100k runs (trained here first if missing, with the recommended
recipe on short schedules: ID-only, frozen MiniLM, global IISAN, PerPEFT-IISAN with K = 4),
starts a training job on the same server (PerPEFT-IISAN, recommended recipe), then drives it for DURATION seconds at a fixed total RATE of requests/s with `oha`
(open loop, `-q` with latency correction, one process per endpoint, all at once):

| share | endpoint |
|---|---|
| 50 % | recommendations of random users under random groups of the PerPEFT run |
| 15 % | one user compared across the 4 runs |
| 15 % | a new user's history placed in a group and ranked (POST assign) |
| 2.5 % | a group's scorer bundle, no ETag (the whole body) |
| 12.5 % | the same with its ETag (304) |
| 5 % | the job's status, the run list and health, while the job trains |

Reports p50/p99/max and errors per endpoint (oha's JSON), the server's resident memory every
second, and writes everything to OUT/load.json. Every random choice comes from --seed.
Needs `oha` (`cargo install --locked oha@1.10.0`).

Exits non-zero when the goal (0 unexpected answers, p99 <= --goal-ms on every endpoint) is not
met. `--no-job`: no training; `--job-process`: the same training as a separate `perpeft train`
process at niceness 10 instead of a job in the server.

    python3 scripts/load.py [--rate 2000] [--duration 60] [--seed 1] [--out runs/load]
"""

import argparse
import json
import os
import random
import shutil
import subprocess
import time
from pathlib import Path

from serving import BIN, DATA, ROOT, Server, http as request

TOKEN = "load-test"

# the recommended recipe (window 50, standard padding, every window, full softmax) as the
# product serves it, on short schedules: serving cost depends on the shapes, not on the epochs
RUNS = [
    ("id-only", ["--method", "id-only", "--epochs", "3"]),
    ("frozen", ["--method", "frozen", "--backbone", "minilm", "--epochs", "3"]),
    ("global", ["--method", "global-peft", "--backbone", "minilm", "--peft", "iisan", "--epochs", "2"]),
    ("perpeft", ["--method", "perpeft", "--backbone", "minilm", "--peft", "iisan", "--groups", "4",
                 "--global-epochs", "1", "--epochs", "2"]),
]
# (name, share of the rate)
MIX = [("recommendations", 0.50), ("compare", 0.15), ("assign", 0.15), ("bundle", 0.025),
       ("bundle-etag", 0.125), ("job-status", 0.05)]


def train_runs(runs: Path):
    for name, args in RUNS:
        if (runs / name / "model.safetensors").exists():
            continue
        cmd = [str(BIN), "train", "--dataset", "ml-100k", "--data-dir", DATA, "--device", "flex",
               "--preset", "recommended", "--seed", "1", "--out", str(runs / name), "--overwrite"] + args
        print("training", name, flush=True)
        subprocess.run(cmd, cwd=ROOT, check=True, env=dict(os.environ, RUST_LOG="warn"))


def http(method, url, body=None):
    status, headers, value = request(method, url, body, TOKEN)
    if status >= 400:
        raise SystemExit(f"{method} {url}: {status} {value}")
    return status, headers, value


def quarters(values: list) -> list:
    """The mean of each quarter of a series (a trend shows as rising quarters)."""
    n = len(values) // 4
    return [round(sum(values[i * n:(i + 1) * n]) / max(1, n), 1) for i in range(4)]


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rate", type=int, default=2000)
    ap.add_argument("--duration", type=int, default=60)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", type=Path, default=ROOT / "runs/load")
    ap.add_argument("--no-job", action="store_true", help="no training job during the load")
    ap.add_argument("--job-process", action="store_true",
                    help="train the job as a separate `perpeft train` process (nice 10), not through the API")
    ap.add_argument("--goal-ms", type=float, default=10.0, help="the p99 goal of every endpoint")
    ap.add_argument("--train-only", action="store_true", help="train the four runs if missing, and stop")
    a = ap.parse_args()
    if a.train_only:
        a.out.mkdir(parents=True, exist_ok=True)
        train_runs(a.out.resolve())
        return
    oha = shutil.which("oha")
    if oha is None and not a.train_only:
        raise SystemExit("oha is missing: cargo install --locked oha@1.10.0")
    rng = random.Random(a.seed)
    runs = a.out.resolve()
    runs.mkdir(parents=True, exist_ok=True)
    train_runs(runs)
    with Server(runs, TOKEN, runs / "server.log") as server:
        base = server.base
        names = [n for n, _ in RUNS]
        # warm up: open every run once (the first request of a run loads it)
        user_ids = []
        while True:
            _, _, page = http("GET", f"{base}/api/runs/perpeft/users?limit=500&offset={len(user_ids)}")
            user_ids += [u["id"] for u in page["users"]]
            if not page["users"] or len(user_ids) >= page["total"]:
                break
        _, _, groups = http("GET", f"{base}/api/runs/perpeft/groups")
        k = len(groups["groups"])
        for n in names:
            http("GET", f"{base}/api/runs/{n}/users/{user_ids[0]}/recommendations")
        _, headers, _ = http("GET", f"{base}/api/runs/perpeft/groups/0/scorer")
        etag = headers["ETag"]
        _, _, items = http("GET", f"{base}/api/runs/perpeft/items")
        item_ids = [it["id"] for it in items]
        job = None
        trainer = None
        if a.job_process and not a.no_job:
            out = runs / f"load-process-{int(time.time())}"
            trainer = subprocess.Popen(
                ["nice", "-n", "10", str(BIN), "train", "--dataset", "ml-100k", "--data-dir", DATA, "--device",
                 "flex", "--method", "perpeft", "--backbone", "minilm", "--peft", "iisan", "--groups", "4",
                 "--global-epochs", "50", "--epochs", "50", "--out", str(out)],
                cwd=ROOT, stdout=subprocess.DEVNULL, stderr=open(runs / "trainer.log", "w"))
            time.sleep(8)  # past its start (data, caches), into its epochs
        elif not a.no_job:
            config = {"method": "perpeft", "backbone": "minilm", "peft": {"kind": "iisan"}, "groups": 4,
                      "global_epochs": 50, "epochs": 50}
            _, _, job = http("POST", f"{base}/api/jobs", {"run": f"load-job-{int(time.time())}",
                                                         "dataset": "ml-100k", "config": config})
            while http("GET", f"{base}/api/jobs/{job['id']}")[2]["status"] == "queued":
                time.sleep(0.2)
            time.sleep(5)  # past the job's start (data, caches), into its epochs
        # URL files: random users under random groups, users across runs, status endpoints
        files = {}
        def urls(name, lines):
            f = runs / f"urls-{name}.txt"
            f.write_text("\n".join(lines) + "\n")
            files[name] = f
        urls("recommendations", [f"{base}/api/runs/perpeft/users/{rng.choice(user_ids)}/recommendations?group={rng.randrange(k)}"
                                 for _ in range(5000)])
        urls("compare", [f"{base}/api/compare?user={rng.choice(user_ids)}&runs={','.join(names)}" for _ in range(2000)])
        urls("bundle", [f"{base}/api/runs/perpeft/groups/{g}/scorer" for g in range(k)])
        status_urls = [f"{base}/api/runs", f"{base}/api/health"]
        if job:
            status_urls.append(f"{base}/api/jobs/{job['id']}")
        urls("job-status", status_urls)
        history = rng.sample(item_ids, 20)
        body = runs / "assign.json"
        body.write_text(json.dumps({"history": history}))
        procs = {}
        for name, share in MIX:
            rate = max(1, round(a.rate * share))
            cmd = [oha, "-z", f"{a.duration}s", "-q", str(rate), "--latency-correction", "--no-tui", "-w",
                   "--output-format", "json", "-o", str(runs / f"oha-{name}.json"), "-c", "64", "-t", "10s"]
            if name == "assign":
                cmd += ["-m", "POST", "-T", "application/json", "-D", str(body), f"{base}/api/runs/perpeft/assign"]
            elif name == "bundle-etag":
                cmd += ["-H", f"If-None-Match: {etag}", f"{base}/api/runs/perpeft/groups/0/scorer"]
            else:
                cmd += ["--urls-from-file", str(files[name])]
            procs[name] = (rate, subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
        memory = []
        clock = time.monotonic()
        while any(p.poll() is None for _, p in procs.values()):
            memory.append((round(time.monotonic() - clock, 1), rss_kib(server.pid) // 1024))
            time.sleep(1)
        job_state = http("GET", f"{base}/api/jobs/{job['id']}")[2] if job else None
        if job:
            http("DELETE", f"{base}/api/jobs/{job['id']}")
        if trainer:
            trainer.kill()
            trainer.wait()
        rows = []
        for name, (rate, p) in procs.items():
            if p.returncode != 0:
                raise SystemExit(f"oha {name} failed: {p.stderr.read().decode()[-2000:]}")
            r = json.loads((runs / f"oha-{name}.json").read_text())
            codes = r.get("statusCodeDistribution", {})
            total = sum(codes.values())
            errors = sum(r.get("errorDistribution", {}).values())
            want = "304" if name == "bundle-etag" else "2xx"
            bad = sum(v for c, v in codes.items() if not (c == "304" if want == "304" else c.startswith("2")))
            pct = r["latencyPercentiles"]
            rows.append({"endpoint": name, "rate": rate, "requests": total, "rps": r["summary"]["requestsPerSec"],
                         "p50_ms": pct["p50"] * 1e3, "p99_ms": pct["p99"] * 1e3,
                         "max_ms": r["summary"]["slowest"] * 1e3, "unexpected_status": bad, "errors": errors,
                         "codes": codes, "error_kinds": r.get("errorDistribution", {})})
        mem = [m for _, m in memory]
        result = {"rate": a.rate, "duration_s": a.duration, "seed": a.seed,
                  "training": "none" if a.no_job else "separate process (nice 10)" if a.job_process else "job in the server",
                  "RAYON_NUM_THREADS": os.environ.get("RAYON_NUM_THREADS"), "job": job_state and
                  {"status": job_state["status"], "progress": job_state.get("progress")},
                  "endpoints": rows, "memory_mib": memory,
                  "memory_summary": {"first": mem[0], "last": mem[-1], "max": max(mem), "mid": mem[len(mem) // 2],
                                     "quarter_means": quarters(mem)} if mem else None}
        (runs / "load.json").write_text(json.dumps(result, indent=1))
        print(f"| endpoint | rate/s | requests | achieved/s | p50 ms | p99 ms | max ms | non-2xx | errors |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for r in rows:
            print(f"| {r['endpoint']} | {r['rate']} | {r['requests']} | {r['rps']:.0f} | {r['p50_ms']:.2f} | "
                  f"{r['p99_ms']:.2f} | {r['max_ms']:.1f} | {r['unexpected_status']} | {r['errors']} |")
        if mem:
            print(f"server memory (RSS, MiB, once a second): first {mem[0]}, middle {mem[len(mem)//2]}, last {mem[-1]}, "
                  f"max {max(mem)}; mean of each quarter of the minute {quarters(mem)}")
        if job_state:
            print(f"training job during the load: {job_state['status']}, {job_state.get('progress')}")
        failed = sum(r["unexpected_status"] + r["errors"] for r in rows)
        slow = [r["endpoint"] for r in rows if r["p99_ms"] > a.goal_ms]
        met = not failed and not slow
        print(f"goal (0 unexpected answers, p99 <= {a.goal_ms} ms everywhere): "
              f"{'met' if met else f'NOT met: {failed} unexpected answers, p99 over in {slow}'}")
        result["goal_met"] = met
        (runs / "load.json").write_text(json.dumps(result, indent=1))
    raise SystemExit(0 if met else 1)


if __name__ == "__main__":
    main()
