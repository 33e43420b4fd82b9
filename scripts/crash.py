#!/usr/bin/env python3
"""Crash test of training (docs/RELIABILITY.md, "Crashes during training").

1. Trains a PerPEFT-IISAN run on ml-100k (MiniLM, K groups) straight through: the reference.
2. Trains the same run again, killing it with SIGKILL at KILLS moments spread over every stage
   (inside global-stage epochs, during grouping, inside per-group epochs, and inside the writes
   between epochs: PERPEFT_KILL_IN_WRITE=N makes the process's N-th atomic write stop half-way
   and SIGKILL itself), resuming it with `--resume` each time; a resumed process must go on
   from the last marked global-stage checkpoint. After every kill it checks that every file
   under its final name is whole (JSON parses; safetensors and burn-pack headers parse and their
   sizes agree), that the registry does not call the run finished, and that the registry and
   run.json agree to within the epoch being recorded; at the end, that no temporary file is
   left and that the run equals the straight one: per-epoch losses and metrics, best epoch,
   groups, and every tensor of the best-epoch and global-model files.
3. The server: starts `perpeft serve`, submits the same run as a job, SIGKILLs the server while
   the job trains, starts it again, checks that the job shows `interrupted` (and the run too),
   resumes it with a new job, and checks the finished run equals the straight one.

Every random choice comes from --seed. Needs cbor2 (`python3 -m pip install cbor2==5.6.5`) to
read burn's .bpk files. Prints a table of the kills and a summary, and writes
them as JSON to OUT/crash.json.

    python3 scripts/crash.py [--kills 20] [--seed 7] [--out runs/crash]
"""

import argparse
import json
import os
import random
import re
import signal
import sqlite3
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

from serving import BIN, DATA, ROOT, Server, free_port, http as request

DATASET = "ml-100k"
GLOBAL_EPOCHS = 10
EPOCHS = 12
CONFIG = {
    "method": "perpeft",
    "backbone": "minilm",
    "peft": {"kind": "iisan"},
    "groups": 4,
    "global_epochs": GLOBAL_EPOCHS,
    "epochs": EPOCHS,
    "seed": 3,
}


def train_args(out: Path, resume: bool) -> list:
    args = [str(BIN), "train", "--out", str(out), "--device", "flex", "--data-dir", DATA]
    if resume:
        return args + ["--resume"]
    return args + ["--dataset", DATASET, "--preset", "reference", "--config", str(out.parent / "crash.toml")]


def write_config(root: Path):
    lines = []
    for k, v in CONFIG.items():
        if isinstance(v, dict):
            continue
        lines.append(f"{k} = {json.dumps(v)}")
    lines.append("[peft]")
    lines.append(f'kind = "{CONFIG["peft"]["kind"]}"')
    (root / "crash.toml").write_text("\n".join(lines) + "\n")


class Proc:
    """A training process whose log lines are timestamped as they come."""

    def __init__(self, args, env=None):
        self.lines = []
        self.lock = threading.Lock()
        e = dict(os.environ, RUST_LOG="info", NO_COLOR="1")
        e.update(env or {})
        self.p = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                  env=e, text=True, errors="replace")
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self):
        for line in self.p.stderr:
            line = re.sub(r"\x1b\[[0-9;]*m", "", line.rstrip())
            with self.lock:
                self.lines.append((time.monotonic(), line))

    def wait_line(self, pattern, count=1, timeout=600):
        """Waits for the count-th log line matching pattern; None if the process ended first."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                hits = [l for l in self.lines if rx.search(l[1])]
            if len(hits) >= count:
                return hits[count - 1]
            if self.p.poll() is not None:
                self.t.join(timeout=5)
                return None
            time.sleep(0.005)
        raise SystemExit(f"timed out waiting for {pattern!r}")

    def kill(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGKILL)
        return self.p.wait()

    def text(self):
        with self.lock:
            return "\n".join(l[1] for l in self.lines)


def registry(runs: Path, name: str):
    db = runs / "registry.sqlite"
    if not db.exists():
        return None, 0
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        row = con.execute("SELECT id, status FROM runs WHERE name = ?", (name,)).fetchone()
        if row is None:
            return None, 0
        n = con.execute("SELECT COUNT(*) FROM epochs WHERE run_id = ?", (row[0],)).fetchone()[0]
        return row[1], n
    finally:
        con.close()


def safetensors_whole(path: Path) -> bool:
    data = path.read_bytes()
    if len(data) < 8:
        return False
    n = struct.unpack("<Q", data[:8])[0]
    if 8 + n > len(data):
        return False
    header = json.loads(data[8:8 + n])
    end = max([v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"] + [0])
    return 8 + n + end == len(data)


def check_files(run: Path) -> tuple:
    """Every file under its final name is whole; returns (files checked, temporaries seen)."""
    checked, temporaries = 0, []
    for f in sorted(run.rglob("*")):
        if not f.is_file():
            continue
        if re.search(r"\.tmp-\d+", f.name):
            temporaries.append(str(f.relative_to(run)))
            continue
        checked += 1
        if f.suffix == ".json":
            json.loads(f.read_text())
        elif f.suffix == ".safetensors":
            assert safetensors_whole(f), f"{f} is not a whole safetensors file"
        elif f.suffix == ".bpk":
            burnpack_values(f)  # the header parses and every tensor's bytes are there
        else:
            assert f.stat().st_size > 0, f"{f} is empty"
    return checked, temporaries


def last_event(p: "Proc") -> str:
    """What the process last said it did before it died."""
    with p.lock:
        lines = [l for _, l in p.lines]
    for l in reversed(lines):
        if m := re.search(r"PERPEFT_KILL_IN_WRITE: killed in write \d+: (.*)", l):
            path = Path(m.group(1))
            return f"writing {path.parent.name}/{path.name.split('.tmp-')[0]}"
        if m := re.search(r"global stage resumed.*epoch=(\d+)", l):
            return f"resumed after global epoch {m.group(1)}"
        if m := re.search(r"global stage epoch=(\d+)", l):
            return f"global epoch {m.group(1)} done"
        if "user groups" in l:
            return "users grouped"
        if m := re.search(r"\bepoch=(\d+) loss=.*valid_ndcg20", l):
            return f"per-group epoch {m.group(1)} evaluated"
        if "resuming" in l:
            return "resumed"
    return "started"


def marked_global_epoch(run: Path) -> int:
    """The last global-stage epoch whose checkpoint is marked complete (0: none)."""
    d = run / "checkpoint"
    marks = [int(m.group(1)) for f in d.glob("global-*.json") if (m := re.match(r"global-(\d+)\.json", f.name))] \
        if d.exists() else []
    return max(marks, default=0)


def check_resumed_where_it_should(p: "Proc", marked: int, i: int):
    """A resumed process that goes on with the global stage says so, from the last marked epoch."""
    with p.lock:
        lines = [l for _, l in p.lines]
    for l in lines:
        if m := re.search(r"global stage resumed.*epoch=(\d+)", l):
            assert int(m.group(1)) == marked, f"kill {i}: resumed after global epoch {m.group(1)}, marked {marked}"
            return
        if m := re.search(r"global stage epoch=(\d+)", l):
            assert int(m.group(1)) == marked + 1, f"kill {i}: the global stage went on with epoch {m.group(1)}, marked {marked}"
            return


def stage_of(run: Path, runs: Path) -> str:
    status, done = registry(runs, run.name)
    if done > 0:
        return f"per-group ({done}/{EPOCHS} epochs)"
    if (run / "groups.json").exists():
        return "grouped, no per-group epoch"
    marks = sorted(int(m.group(1)) for f in (run / "checkpoint").glob("global-*.json")
                   if (m := re.match(r"global-(\d+)\.json", f.name))) if (run / "checkpoint").exists() else []
    return f"global ({marks[-1] if marks else 0}/{GLOBAL_EPOCHS} epochs)"


def safetensors_values(path: Path) -> dict:
    """name -> (dtype, shape, bytes) of a safetensors file (its header's order and metadata
    aside: burn writes them in a hash map's order)."""
    data = path.read_bytes()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    body = data[8 + n:]
    return {k: (v["dtype"], v["shape"], body[v["data_offsets"][0]:v["data_offsets"][1]])
            for k, v in header.items() if k != "__metadata__"}


def burnpack_values(path: Path) -> dict:
    """name -> (dtype, shape, bytes) of a burn pack (.bpk: magic, version, CBOR header, data),
    parameter ids aside (a module's ids are its own, not its values)."""
    import cbor2
    data = path.read_bytes()
    assert data[:4] == b"NRUB", f"{path} is not a burn pack"
    n = struct.unpack("<I", data[6:10])[0]
    tensors = cbor2.loads(data[10:10 + n])["tensors"]
    end = max(v["data_offsets"][1] for v in tensors.values())
    assert len(data) >= 10 + n + end, f"{path} is cut short"
    body = data[len(data) - end:]
    return {k: (v["dtype"], v["shape"], body[v["data_offsets"][0]:v["data_offsets"][1]])
            for k, v in tensors.items()}


def compare(a: Path, b: Path) -> list:
    """Differences between two finished runs (empty when equal): per-epoch losses and metrics,
    the best epoch, groups, and every tensor of the best-epoch and global-model files."""
    ra, rb = json.loads((a / "run.json").read_text()), json.loads((b / "run.json").read_text())
    diffs = []
    strip = lambda r: [(e["epoch"], e["loss"], e["valid"], e["test"]) for e in r["epochs"]]
    for key, get in [("epochs", strip), ("best_epoch", lambda r: r["best_epoch"]), ("test", lambda r: r["test"]),
                     ("groups", lambda r: r["groups"]), ("best_groups", lambda r: r["best_groups"])]:
        if get(ra) != get(rb):
            diffs.append(key)
    if json.loads((a / "groups.json").read_text()) != json.loads((b / "groups.json").read_text()):
        diffs.append("groups.json")
    for f in ["model.safetensors", "item_table.safetensors", "recommender.bpk", "adapters.bpk",
              "global/model.safetensors", "global/item_table.safetensors", "global/recommender.bpk"]:
        fa, fb = a / f, b / f
        values = safetensors_values if f.endswith(".safetensors") else burnpack_values
        if not fa.exists() or not fb.exists() or values(fa) != values(fb):
            diffs.append(f)
    return diffs


def plan(kills: int, rng: random.Random) -> list:
    """Kill moments spread over the stages, in training order; a fifth are inside a write, half
    of those in the global stage (its checkpoints) and half in the per-group stage (best-epoch
    files, checkpoints, run.json)."""
    n_write = max(2, kills // 5)
    rest = kills - n_write
    n_global = rest * 2 // 5
    n_group = max(1, rest // 8)
    n_epoch = rest - n_global - n_group
    global_part = [("global", rng.random()) for _ in range(n_global)]
    epoch_part = [("per-group", rng.random()) for _ in range(n_epoch)]
    for part, n in [(global_part, n_write // 2), (epoch_part, n_write - n_write // 2)]:
        for _ in range(n):
            part.insert(rng.randrange(1, len(part) + 1), ("write", rng.randint(1, 9)))
    return global_part + [("grouping", rng.random()) for _ in range(n_group)] + epoch_part


def straight(runs: Path) -> tuple:
    out = runs / "straight"
    p = Proc(train_args(out, False))
    rc = p.p.wait()
    p.t.join(timeout=5)
    if rc != 0:
        raise SystemExit(f"the straight run failed:\n{p.text()[-3000:]}")
    times = [t for t, l in p.lines if "global stage" in l and "epoch=" in l]
    epochs = [t for t, l in p.lines if re.search(r"\bepoch=\d+ loss=.*valid_ndcg20", l)]
    grouped = [t for t, l in p.lines if "user groups" in l]
    g = (times[-1] - times[0]) / max(1, len(times) - 1)
    e = (epochs[-1] - epochs[0]) / max(1, len(epochs) - 1)
    grouping = grouped[0] - times[-1]
    return out, {"global_epoch_s": g, "grouping_s": grouping, "epoch_s": e,
                 "total_s": p.lines[-1][0] - p.lines[0][0]}


def crashed(runs: Path, timing: dict, kills: int, rng: random.Random) -> tuple:
    out = runs / "crashed"
    rows = []
    resume = False
    for i, (kind, x) in enumerate(plan(kills, rng), 1):
        env = {"PERPEFT_KILL_IN_WRITE": str(x)} if kind == "write" else {}
        marked = marked_global_epoch(out) if out.exists() else 0
        p = Proc(train_args(out, resume), env)
        resume = True
        if kind == "write":
            p.p.wait()
            p.t.join(timeout=5)
        else:
            # the moment: a random point of the stage's next epoch (or of the grouping) after
            # this process has shown it is in that stage
            if kind == "global":
                line = p.wait_line(r"global stage epoch=|user groups|valid_ndcg20")
                delay = x * timing["global_epoch_s"]
            elif kind == "grouping":
                line = p.wait_line(rf"global stage.*epoch={GLOBAL_EPOCHS}\b|global stage resumed.*epoch={GLOBAL_EPOCHS}\b|user groups|valid_ndcg20")
                delay = x * max(timing["grouping_s"], 0.05)
            else:
                line = p.wait_line(r"valid_ndcg20")
                delay = x * timing["epoch_s"]
            if line is not None:
                time.sleep(delay)
            p.kill()
        rc = p.p.returncode
        killed = rc == -signal.SIGKILL
        stage = stage_of(out, runs) if out.exists() else "not started"
        status, done = registry(runs, "crashed")
        files, temporaries = check_files(out) if out.exists() else (0, [])
        record = json.loads((out / "run.json").read_text()) if (out / "run.json").exists() else {"epochs": []}
        if killed:
            assert status != "finished", f"kill {i}: the registry says finished"
        assert len(record["epochs"]) in (done, done - 1), f"kill {i}: run.json {len(record['epochs'])}, registry {done}"
        check_resumed_where_it_should(p, marked, i)
        event = last_event(p)
        rows.append({"kill": i, "how": kind if kind != "write" else f"write {x}", "killed": killed,
                     "after": event, "stage": stage, "registry": status, "files_whole": files,
                     "temporaries": temporaries})
        print(f"{i:>3} {rows[-1]['how']:<10} {'SIGKILL' if killed else 'exit ' + str(rc):<8} {event:<40} "
              f"{stage:<28} {status or '-':<8} {files:>3} files whole, {len(temporaries)} temporary", flush=True)
        if not killed and rc != 0:
            raise SystemExit(f"kill {i}: the run failed (rc {rc}):\n{p.text()[-3000:]}")
        if not killed:
            break
    # finish it
    p = Proc(train_args(out, True))
    rc = p.p.wait()
    p.t.join(timeout=5)
    if rc != 0:
        raise SystemExit(f"the last resume failed:\n{p.text()[-3000:]}")
    return out, rows


def http(method, url, body=None, token=None):
    status, _, value = request(method, url, body, token)
    return status, value


def server_kill(runs: Path, timing: dict, rng: random.Random) -> dict:
    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    log = runs / "server.log"
    p = Server(runs, "crash-test", log, rust_log="info", port=port)
    config = dict(CONFIG, preset="reference")
    status, job = http("POST", f"{url}/jobs", {"run": "served", "dataset": DATASET, "config": config}, "crash-test")
    assert status == 201, (status, job)
    # kill the server in the job's global stage, inside an epoch after the first
    delay = rng.random() * timing["global_epoch_s"]
    while True:
        _, j = http("GET", f"{url}/jobs/{job['id']}")
        progress = j.get("progress") or {}
        if j["status"] == "running" and progress.get("stage") == "global stage" and progress.get("epoch", 0) >= 3:
            break
        assert j["status"] in ("queued", "running"), j
        time.sleep(0.05)
    time.sleep(delay)
    p.kill()
    stage = stage_of(runs / "served", runs)
    p = Server(runs, "crash-test", log, rust_log="info", port=port)
    _, j = http("GET", f"{url}/jobs/{job['id']}")
    _, listed = http("GET", f"{url}/runs")
    run_status = next(r["status"] for r in listed if r["name"] == "served")
    assert j["status"] == "interrupted", j
    assert run_status == "interrupted", run_status
    status, job2 = http("POST", f"{url}/jobs", {"run": "served", "dataset": DATASET, "resume": True}, "crash-test")
    assert status == 201, (status, job2)
    while True:
        _, j2 = http("GET", f"{url}/jobs/{job2['id']}")
        if j2["status"] not in ("queued", "running"):
            break
        time.sleep(0.2)
    p.stop()
    assert j2["status"] == "finished", j2
    return {"killed_in": stage, "job_after_restart": j["status"], "run_after_restart": run_status,
            "resumed_job": j2["status"]}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", type=Path, default=ROOT / "runs/crash")
    a = ap.parse_args()
    if not BIN.exists():
        raise SystemExit(f"{BIN} is missing: cargo build --release --all-targets")
    rng = random.Random(a.seed)
    runs = a.out.resolve()
    if runs.exists():
        subprocess.run(["rm", "-rf", str(runs)], check=True)
    runs.mkdir(parents=True)
    write_config(runs)
    clock = time.monotonic()
    want, timing = straight(runs)
    print(f"straight run: {timing['total_s']:.1f} s (global epoch {timing['global_epoch_s']:.2f} s, grouping "
          f"{timing['grouping_s']:.2f} s, per-group epoch {timing['epoch_s']:.2f} s)", flush=True)
    got, rows = crashed(runs, timing, a.kills, rng)
    _, leftover = check_files(got)
    diffs = compare(want, got)
    status, done = registry(runs, "crashed")
    print(f"after {sum(r['killed'] for r in rows)} kills and resumes: registry {status} {done}/{EPOCHS}; "
          f"temporaries left {len(leftover)}; differences from the straight run: {diffs or 'none'}", flush=True)
    server = server_kill(runs, timing, rng)
    server_diffs = compare(want, runs / "served")
    print(f"server killed in {server['killed_in']}: job {server['job_after_restart']}, run "
          f"{server['run_after_restart']} after the restart; resumed job {server['resumed_job']}; "
          f"differences from the straight run: {server_diffs or 'none'}", flush=True)
    def moment(r):
        after = r["after"]
        if after.startswith("writing checkpoint/global-"):
            return "inside a global-stage checkpoint write"
        if after.startswith("writing"):
            return "inside a per-group-stage write"
        m = re.search(r"global epoch (\d+)", after)
        if after in ("started", "resumed") or (m and int(m.group(1)) < GLOBAL_EPOCHS):
            return "inside a global-stage epoch"
        if r["stage"].startswith("global"):
            return "during grouping"
        if r["stage"].startswith("grouped"):
            return "between grouping and the first per-group epoch"
        return "inside a per-group epoch"
    counts = {}
    for r in rows:
        if r["killed"]:
            r["moment"] = moment(r)
            counts[r["moment"]] = counts.get(r["moment"], 0) + 1
    stages = [f"{k}: {v}" for k, v in counts.items()]
    result = {"seed": a.seed, "timing": timing, "kills": rows, "stages": stages, "leftover_temporaries": leftover,
              "differences": diffs, "server": server, "server_differences": server_diffs,
              "seconds": time.monotonic() - clock}
    (runs / "crash.json").write_text(json.dumps(result, indent=1))
    ok = (sum(r["killed"] for r in rows) == a.kills and not leftover and not diffs and not server_diffs
          and status == "finished")
    print(f"{'PASS' if ok else 'FAIL'} in {result['seconds']:.0f} s; kills by moment: {'; '.join(stages)}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
