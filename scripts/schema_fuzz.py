#!/usr/bin/env python3
"""Schema fuzzing of the HTTP API (docs/RELIABILITY.md, "Hostile requests").

Serves the load test's runs root (trained by `scripts/load.py --train-only` if missing) and
runs schemathesis over `GET /api/openapi.json`: N examples per operation (the documented
examples, schema-driven coverage of the boundaries, then random fuzzing), with the bearer
token, checking that no response is a 5xx, that every status, content type, header and body
is the documented one, that invalid input is refused and that operations needing the token
refuse requests without it. Jobs it manages to queue are cancelled at the end.

Needs schemathesis (`python3 -m pip install schemathesis==4.32.5`).

    python3 scripts/schema_fuzz.py [--examples 100] [--seed 1] [--out runs/load]
"""

import argparse
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from serving import ROOT, Server, http

TOKEN = "schema-fuzz"
CHECKS = ["not_a_server_error", "status_code_conformance", "content_type_conformance",
          "response_headers_conformance", "response_schema_conformance", "negative_data_rejection",
          "ignored_auth", "unsupported_method", "missing_required_header"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--examples", type=int, default=100)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", type=Path, default=ROOT / "runs/load")
    a = ap.parse_args()
    st = shutil.which("st") or shutil.which("schemathesis")
    if st is None:
        raise SystemExit("schemathesis is missing: python3 -m pip install schemathesis==4.32.5")
    runs = a.out.resolve()
    subprocess.run([sys.executable, str(ROOT / "scripts/load.py"), "--train-only", "--out", str(runs)], check=True)
    report = runs / "schemathesis"
    with Server(runs, TOKEN, runs / "schema-fuzz-server.log", rust_log="error") as server:
        base = server.base
        # real names and ids half of the time, so generated requests also reach the engine (not
        # only "no such run"); the other half fuzzes them
        users = [u["id"] for u in http("GET", f"{base}/api/runs/perpeft/users?limit=200")[2]["users"]]
        runs_names = ["id-only", "frozen", "global", "perpeft"]
        config = runs / "schemathesis.toml"
        config.write_text("\n".join([
            "[dictionaries.runs]", f"values = {json.dumps(runs_names)}",
            "[dictionaries.users]", f"values = {json.dumps(users)}",
            "[dictionaries.groups]", "values = [0, 1, 2, 3]",
            "[dictionaries.compare]", f"values = {json.dumps([','.join(runs_names), 'perpeft,global'])}",
            "[parameters]",
            '"path.run" = { dictionary = "runs", probability = 0.5 }',
            '"query.user" = { dictionary = "users", probability = 0.5 }',
            '"query.runs" = { dictionary = "compare", probability = 0.5 }',
            '"path.g" = { dictionary = "groups", probability = 0.5 }',
        ]) + "\n")
        cmd = [st, "--config-file", str(config), "run", f"{base}/api/openapi.json", "--checks", ",".join(CHECKS), "-n", str(a.examples),
               "--seed", str(a.seed), "-H", f"Authorization: Bearer {TOKEN}", "--workers", "1",
               "--phases", "examples,coverage,fuzzing", "--generation-database", "none",
               "--request-timeout", "30", "--report", "junit,ndjson", "--report-dir", str(report),
               "--report-ndjson-path", str(report / "events.ndjson"),
               "--no-color", "--suppress-health-check", "too_slow,filter_too_much"]
        print(" ".join(cmd), flush=True)
        clock = time.monotonic()
        rc = subprocess.run(cmd, cwd=ROOT).returncode
        seconds = time.monotonic() - clock
        # every response the server sent, by status class, from the ndjson event log
        statuses = {}
        for line in (report / "events.ndjson").read_text().splitlines() if (report / "events.ndjson").exists() else []:
            for m in re.finditer(r'"status_code":\s*(\d+)', line):
                statuses[m.group(1)] = statuses.get(m.group(1), 0) + 1
        fives = sum(v for k, v in statuses.items() if k.startswith("5"))
        print(f"schemathesis exit {rc} in {seconds:.0f} s; responses by status: {dict(sorted(statuses.items()))}; 5xx: {fives}")
        # cancel what it queued
        live = [j for j in http("GET", f"{base}/api/jobs")[2] if j["status"] in ("queued", "running")]
        for j in live:
            http("DELETE", f"{base}/api/jobs/{j['id']}", token=TOKEN)
        (runs / "schema-fuzz.json").write_text(json.dumps(
            {"exit": rc, "seconds": seconds, "statuses": statuses, "server_errors": fives,
             "examples_per_operation": a.examples, "seed": a.seed, "jobs_cancelled": len(live)}, indent=1))
    sys.exit(0 if rc == 0 and fives == 0 else 1)


if __name__ == "__main__":
    main()
