#!/usr/bin/env python3
"""Export the datasets of benchmarks/real_data/datasets.toml from git mirrors of their public
repositories (brought in with the search tool's fetch) to ``$TEXTCLF_REAL_DATA/<name>/{train,test}/
<class>/``, by the rules written there. Deterministic: files sorted by name. Writes
``export_stats.json`` beside the data with counts, skipped files and image-size statistics.

    TEXTCLF_MIRRORS=DIR TEXTCLF_REAL_DATA=DIR python benchmarks/real_data_export.py [name ...]
"""

import hashlib
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

from PIL import Image

from textclf.files.ownership import is_owned

M = os.environ.get("TEXTCLF_MIRRORS", "/work/.mirror")
OUT = os.environ.get("TEXTCLF_REAL_DATA", "/work/data")
MARKER, MARKER_FORMAT = ".real-data-export.json", "textclf-real-data-export"
IMG_EXT = (".jpg", ".jpeg", ".png")


def git(gitdir, *args):
    return subprocess.run(
        ["git", "--git-dir", gitdir, *args], check=True, capture_output=True
    ).stdout


def head(gitdir):
    return git(gitdir, "rev-parse", "HEAD").decode().strip()


def ls(gitdir, prefix):
    """{path: (blob, size)} for files under prefix at HEAD."""
    out = git(gitdir, "ls-tree", "-r", "-l", "-z", "HEAD", "--", prefix or ".")
    res = {}
    for rec in out.split(b"\0"):
        if not rec:
            continue
        meta, path = rec.split(b"\t", 1)
        _, _kind, blob, size = meta.split()
        res[path.decode()] = (blob.decode(), size.decode())
    return res


def show(gitdir, path):
    return git(gitdir, "show", f"HEAD:{path}").decode()


class Blobs:
    def __init__(self, gitdir):
        self.p = subprocess.Popen(
            ["git", "--git-dir", gitdir, "cat-file", "--batch"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )

    def get(self, blob):
        self.p.stdin.write((blob + "\n").encode())
        self.p.stdin.flush()
        hdr = self.p.stdout.readline().split()
        if len(hdr) < 3 or hdr[1] == b"missing":
            return None
        n = int(hdr[2])
        data = self.p.stdout.read(n)
        self.p.stdout.read(1)
        return data

    def close(self):
        self.p.stdin.close()
        self.p.wait()


def is_img(p):
    return p.lower().endswith(IMG_EXT)


def by_class(files, prefix):
    """files under prefix/<class>/<file> -> {class: [paths sorted]}"""
    d = defaultdict(list)
    pre = prefix.rstrip("/") + "/" if prefix else ""
    for p in files:
        if not p.startswith(pre):
            continue
        rest = p[len(pre) :]
        parts = rest.split("/")
        if len(parts) == 2 and is_img(parts[1]):
            d[parts[0]].append(p)
    return {k: sorted(v) for k, v in d.items()}


# ---------------------------------------------------------------- specs
def spec_flowers12():
    g = f"{M}/daniele-gilio+Machine-Learning-Class/repo"
    pre = "lab3/flowers"
    f = ls(g, pre)
    sel = {"train": by_class(f, pre + "/train"), "test": by_class(f, pre + "/test")}
    return g, f, sel


def spec_cub30():
    g = f"{M}/serizba+vision/repo"
    pre = "ex03/task2/bird_dataset"
    f = ls(g, pre)
    classes = {}
    for line in show(g, pre + "/classes.txt").splitlines():
        if line.strip():
            i, name = line.split(",", 1)
            classes[int(i)] = name.strip()
    keep = [classes[i] for i in range(30)]
    imgs = {}
    for line in show(g, pre + "/images.txt").splitlines():
        if line.strip():
            i, p = line.split(",", 1)
            imgs[int(i)] = p.strip()
    istrain = {}
    for line in show(g, pre + "/train_test_split.txt").splitlines():
        if line.strip():
            i, t = line.split(",", 1)
            istrain[int(i)] = t.strip() == "1"
    sel = {"train": defaultdict(list), "test": defaultdict(list)}
    for i, p in imgs.items():
        c = p.split("/")[0]
        if c in keep:
            sel["train" if istrain[i] else "test"][c].append(f"{pre}/images/{p}")
    sel = {s: {c: sorted(v) for c, v in d.items()} for s, d in sel.items()}
    return g, f, sel


def spec_food10(cap_train=200, cap_test=75):
    g = f"{M}/srohit0+food_mnist/repo"
    f = ls(g, "images")
    sel = {}
    for s, cap in (("train", cap_train), ("test", cap_test)):
        d = defaultdict(list)
        for line in show(g, f"meta/{s}.txt").splitlines():
            if line.strip():
                c = line.split("/")[0]
                d[c].append(f"images/{line.strip()}.jpg")
        sel[s] = {c: sorted(v)[:cap] for c, v in d.items()}
    return g, f, sel


def spec_intel6(cap_train=200, cap_test=100):
    g = f"{M}/luangtatipsy+intel-image-classification/repo"
    f = ls(g, "datasets")
    tr = by_class(f, "datasets/seg_train")
    te = by_class(f, "datasets/seg_test")
    sel = {
        "train": {c: v[:cap_train] for c, v in tr.items()},
        "test": {c: v[:cap_test] for c, v in te.items()},
    }
    return g, f, sel


def spec_clothing10(cap_train=200):
    g = f"{M}/alexeygrigorev+clothing-dataset-small/repo/.git"
    f = ls(g, "")
    tr = by_class(f, "train")
    te = by_class(f, "test")
    va = by_class(f, "validation")
    sel = {
        "train": {c: v[:cap_train] for c, v in tr.items()},
        "test": {
            c: sorted(te.get(c, []) + va.get(c, []), key=lambda p: p.split("/")[-1]) for c in tr
        },
    }
    return g, f, sel


def spec_tfflowers5(cap_train=200, cap_test=80):
    g = f"{M}/Oldpel+flower_photos/repo"
    f = ls(g, "dataset")
    tr = by_class(f, "dataset/train")
    te = by_class(f, "dataset/val")
    sel = {
        "train": {c: v[:cap_train] for c, v in tr.items()},
        "test": {c: v[:cap_test] for c, v in te.items()},
    }
    return g, f, sel


def spec_weather4():
    g = f"{M}/Potassium-chromate+CNN-for-recognizer-weather/repo"
    pre = "weather_image(dataset)"
    f = ls(g, pre)
    sel = {"train": by_class(f, pre + "/train"), "test": by_class(f, pre + "/test")}
    return g, f, sel


SPECS = {
    "flowers12": spec_flowers12,
    "cub30": spec_cub30,
    "food10": spec_food10,
    "intel6": spec_intel6,
    "clothing10": spec_clothing10,
    "tfflowers5": spec_tfflowers5,
    "weather4": spec_weather4,
}


def export(name):
    gitdir, files, sel = SPECS[name]()
    dest = os.path.join(OUT, name)
    if os.path.exists(dest):
        # Only a folder this script made is replaced (its marker says so); anything else stays
        if not is_owned(Path(dest), MARKER, MARKER_FORMAT):
            sys.exit(f"error: '{dest}' exists and was not written by this script; move it away")
        shutil.rmtree(dest)
    os.makedirs(dest)
    with open(os.path.join(dest, MARKER), "w") as fh:
        json.dump({"format": MARKER_FORMAT}, fh)
    blobs = Blobs(gitdir)
    stats = {"commit": head(gitdir), "skipped": [], "counts": {}}
    sizes = []
    hashes = defaultdict(set)
    for split in ("test", "train"):  # test first so train copies of test files can be dropped
        for c in sorted(sel[split]):
            n = 0
            for p in sel[split][c]:
                if p not in files:
                    stats["skipped"].append([p, "absent from tree"])
                    continue
                data = blobs.get(files[p][0])
                if data is None or len(data) == 0:
                    stats["skipped"].append([p, "blob missing (>=4MiB or absent)"])
                    continue
                if data.startswith(b"version https://git-lfs"):
                    stats["skipped"].append([p, "LFS pointer"])
                    continue
                md5 = hashlib.md5(data).hexdigest()
                if md5 in hashes:
                    stats["skipped"].append(
                        [
                            p,
                            "byte-identical duplicate of an already exported "
                            + "/".join(sorted(hashes[md5]))
                            + " file",
                        ]
                    )
                    continue
                try:
                    im = Image.open(io.BytesIO(data))
                    im.load()
                    im.convert("RGB")
                    w, h = im.size
                except Exception as e:
                    stats["skipped"].append([p, f"unreadable: {e}"])
                    continue
                od = os.path.join(dest, split, c)
                os.makedirs(od, exist_ok=True)
                fn = os.path.basename(p)
                with open(os.path.join(od, fn), "wb") as fh:
                    fh.write(data)
                sizes.append((w, h))
                hashes[md5].add(split)
                n += 1
            stats["counts"].setdefault(split, {})[c] = n
    stats["counts"] = {k: stats["counts"][k] for k in ("train", "test")}
    blobs.close()
    stats["n_train"] = sum(stats["counts"]["train"].values())
    stats["n_test"] = sum(stats["counts"]["test"].values())
    stats["classes"] = sorted(stats["counts"]["train"])
    assert stats["classes"] == sorted(stats["counts"]["test"]), name
    stats["median_w"] = statistics.median(w for w, _ in sizes)
    stats["median_h"] = statistics.median(h for _, h in sizes)
    stats["min_short_side"] = min(min(s) for s in sizes)
    stats["max_long_side"] = max(max(s) for s in sizes)
    return stats


if __name__ == "__main__":
    names = sys.argv[1:] or list(SPECS)
    path = os.path.join(OUT, "export_stats.json")
    allstats = {}
    if os.path.exists(path):
        with open(path) as fh:
            allstats = json.load(fh)
    for n in names:
        s = export(n)
        allstats[n] = s
        print(
            n,
            s["n_train"],
            s["n_test"],
            len(s["classes"]),
            s["median_w"],
            s["median_h"],
            s["min_short_side"],
            "skipped",
            len(s["skipped"]),
            [x[1][:20] for x in s["skipped"]],
        )
    with open(path, "w") as fh:
        json.dump(allstats, fh, indent=1)
