#!/usr/bin/env python3
"""Writes the committed seeds of the run-directory and browser-decoder fuzz targets
(fuzz/seeds/TARGET/*), small so that libFuzzer mutates them quickly:

- run_json, groups_json: a real PerPEFT run's run.json (two epochs kept) and groups.json (the
  first 24 users kept), from RUN_DIR (default runs/crash/straight, which
  `python3 scripts/crash.py` trains);
- tables: safetensors files as `store::tables` writes them (one table, and three), built here;
- bundle, grouping: a scorer bundle (f16 and f32) and a grouping of a 4-wide, 2-head, 1-block
  SASRec over 6 items, built here with the layouts of shared/src/{sasrec,bundle,groups}.rs.

    python3 fuzz/make_seeds.py [RUN_DIR]
"""

import base64
import json
import random
import struct
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SEEDS = HERE / "seeds"
rng = random.Random(1)


def put(target: str, name: str, data: bytes):
    d = SEEDS / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data)


def f32(values) -> str:
    return base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode()


def f16(values) -> str:
    return base64.b64encode(struct.pack(f"<{len(values)}e", *values)).decode()


def vec(n):
    return [round(rng.uniform(-1, 1), 3) for _ in range(n)]


def dense(d_in, d_out):
    return {"d_in": d_in, "d_out": d_out, "weight": f32(vec(d_in * d_out)), "bias": f32(vec(d_out))}


def norm(d):
    return {"gamma": f32([1.0] * d), "beta": f32([0.0] * d), "eps": 1e-8}


def sasrec(d=4, heads=2, max_len=3, mode="reference"):
    block = {"attn_norm": norm(d), "query": dense(d, d), "key": dense(d, d), "value": dense(d, d),
             "out": dense(d, d), "ffn_norm": norm(d), "fc1": dense(d, d), "fc2": dense(d, d)}
    return {"mode": mode, "hidden": d, "heads": heads, "max_len": max_len,
            "pos_emb": f32([0.0] * d + vec(max_len * d)), "blocks": [block], "last_norm": norm(d)}


def safetensors(tables) -> bytes:
    header, data = {}, b""
    for name, rows, cols in tables:
        values = struct.pack(f"<{rows * cols}f", *vec(rows * cols))
        header[name] = {"dtype": "F32", "shape": [rows, cols], "data_offsets": [len(data), len(data) + len(values)]}
        data += values
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + data


def main():
    run = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE.parent / "runs/crash/straight"
    record = json.loads((run / "run.json").read_text())
    record["epochs"] = record["epochs"][:2]
    record["best_epoch"] = min(record["best_epoch"], 2)
    put("run_json", "perpeft", json.dumps(record, indent=1).encode())
    groups = json.loads((run / "groups.json").read_text())
    groups["assignment"] = groups["assignment"][:24]
    put("groups_json", "perpeft", json.dumps(groups).encode())
    put("tables", "one", safetensors([("table", 3, 4)]))
    put("tables", "three", safetensors([("table", 3, 4), ("group_1", 3, 4), ("group_2", 3, 4)]))
    d, rows = 4, 6
    table = [0.0] * d + vec((rows - 1) * d)
    for enc, code in [("f16", f16), ("f32", f32)]:
        bundle = {"run": "r", "group": 1, "groups": 2, "scorer": sasrec(d), "rows": rows, "encoding": enc,
                  "table": code(table), "centroids": f32(vec(2 * d))}
        put("bundle", enc, json.dumps(bundle).encode())
    for mode in ["reference", "standard"]:
        grouping = {"scorer": sasrec(d, mode=mode), "table": f32(table), "centroids": f32(vec(3 * d))}
        put("grouping", mode, json.dumps(grouping).encode())


if __name__ == "__main__":
    main()
