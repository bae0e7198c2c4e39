"""Omniglot [Lake et al. 2015] for few-shot learning (thesis §5.2.1): archives, 28×28 images, splits.

Sources, looked for in ``data_dir`` in this order (each as ``NAME.zip`` or an extracted ``NAME/``):

* the standard ``images_background`` + ``images_evaluation`` archives (964 + 659 characters). Missing
  ones are downloaded from Lake's repository and MD5-checked when downloads are allowed (written to
  ``NAME.zip.part`` and renamed only when complete); offline, the error names the file and the folder;
* the two "minimal" archives ``images_background_small1`` / ``images_background_small2``.

Greek and Latin appear in both small archives byte for byte, so characters are de-duplicated by
``alphabet/character`` (the small pair then holds 8 alphabets, 242 characters, 4,840 images).
Images are resized 105 → 28 (Lanczos), inverted so strokes are 1, in [0, 1], not normalised, so
ε is in pixel units. Classes are split by alphabet, never by image.
"""
from __future__ import annotations

import io
import re
import zipfile
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from .cifar import _download, default_data_dir, md5sum
from .episodes import FewShotData, register_fewshot_dataset, split_by_group

URL = "https://github.com/brendenlake/omniglot/raw/master/python/"
ARCHIVES = {  # MD5s as published with torchvision's Omniglot and other loaders
    "images_background": "68d2efa1b9178cc56df9314c21c6e718",
    "images_evaluation": "6b91aef0f799c5bb55b94e3f2daec811",
}
SMALL = {"images_background_small1": "e704a628b5459e08445c13499850abc4",
         "images_background_small2": "b75a71a51d3b13f821f212756fe481fd"}
RUNS = {"one_shot_runs": "e8996daecdf12afeeb4a53a179f06b19"}
RUNS_URL = URL + "one-shot-classification/all_runs.zip"
IMAGE_SIZE = 28

#: alphabet split of the minimal pair: train on four of small1's alphabets, validate on its fifth,
#: test on the three alphabets found only in small2 (no character of a test alphabet is seen in training)
SMALL_VAL = ["Latin"]
SMALL_TEST = ["Japanese_(katakana)", "Sanskrit", "Tagalog"]
#: the standard split: background alphabets train (the last 5 in sorted order validate), evaluation tests
FULL_VAL_COUNT = 5


def fetch_verified(url: str, path: Path, md5: str | None, download: bool) -> Path:
    """``path`` after an MD5 check, downloaded atomically (``.part`` then rename) when missing and allowed."""
    if not path.exists():
        if not download:
            raise DataError(f"{path.name} is missing; download {url} and place it in {path.parent} "
                            "(or allow downloads)")
        _download(url, path)
    if md5 is not None:
        got = md5sum(path)
        if got != md5:
            raise DataError(f"{path} has MD5 {got}, expected {md5} (corrupt or partial download); "
                            f"delete it and download {url} again")
    return path


def _find(data_dir: Path, name: str) -> Path | None:
    for cand in (data_dir / f"{name}.zip", data_dir / name):
        if cand.exists():
            return cand
    return None


def locate_archives(data_dir: Path, download: bool) -> list[Path]:
    """The archives to read from ``data_dir``: the standard pair, else the minimal pair, else download."""
    full = [_find(data_dir, n) for n in ARCHIVES]
    if all(full):
        return full  # type: ignore[return-value]
    small = [_find(data_dir, n) for n in SMALL]
    if all(small) and not any(full):
        return small  # type: ignore[return-value]
    return [p or fetch_verified(URL + f"{n}.zip", data_dir / f"{n}.zip", md5, download)
            for p, (n, md5) in zip(full, ARCHIVES.items())]


_PNG = re.compile(r"(?:^|/)([^/]+)/(character\d+)/([^/]+\.png)$")


def _entries(src: Path) -> list[tuple[str, str, str, bytes]]:
    """(alphabet, character, file name, PNG bytes) for every image of an archive or folder."""
    if src.is_dir():
        files = [(str(p.relative_to(src)).replace("\\", "/"), p.read_bytes) for p in sorted(src.rglob("*.png"))]
    else:
        try:
            zf = zipfile.ZipFile(src)
        except (zipfile.BadZipFile, OSError) as e:
            raise DataError(f"{src} is not a readable zip ({e}); delete it and download again") from None
        files = [(n, (lambda n=n: zf.read(n))) for n in sorted(zf.namelist()) if n.endswith(".png")]
    out = []
    for rel, read in files:
        m = _PNG.search(rel)
        if m:
            out.append((m.group(1), m.group(2), m.group(3), read()))
    if not out:
        raise DataError(f"{src} holds no Omniglot images (expected <alphabet>/characterNN/*.png)")
    return out


def _alphabet_names(src: Path) -> set[str]:
    names = ([str(p.relative_to(src)) for p in src.rglob("*.png")] if src.is_dir()
             else zipfile.ZipFile(src).namelist())
    return {m.group(1) for n in names if (m := _PNG.search(n.replace("\\", "/")))}


def decode(png: bytes, size: int = IMAGE_SIZE) -> np.ndarray:
    """One Omniglot PNG → (size, size) float32 in [0, 1] with strokes = 1 (Lanczos resize)."""
    from PIL import Image

    img = Image.open(io.BytesIO(png)).convert("L")
    if img.size != (size, size):
        img = img.resize((size, size), Image.LANCZOS)
    return 1.0 - np.asarray(img, dtype=np.float32) / 255.0


def read_characters(sources: list[Path], size: int = IMAGE_SIZE) -> tuple[torch.Tensor, torch.Tensor, list[str], list[str]]:
    """Images, class ids, class names ``alphabet/character`` and alphabets, de-duplicated by name."""
    images: dict[str, list[tuple[str, bytes]]] = {}
    for src in sources:
        seen_here: dict[str, list[tuple[str, bytes]]] = {}
        for alphabet, char, fname, data in _entries(src):
            seen_here.setdefault(f"{alphabet}/{char}", []).append((fname, data))
        for key, files in seen_here.items():
            images.setdefault(key, files)  # a character already read from an earlier archive is a duplicate
    names = sorted(images)
    xs, ys = [], []
    for c, key in enumerate(names):
        for _, data in sorted(images[key]):
            xs.append(decode(data, size))
            ys.append(c)
    x = torch.from_numpy(np.stack(xs)).unsqueeze(1)
    return x, torch.tensor(ys), names, [n.split("/")[0] for n in names]


@lru_cache(maxsize=4)
def _load_cached(sources: tuple[Path, ...], size: int):
    return read_characters(list(sources), size)


def omniglot_split(alphabets: list[str], full: bool, background: set[str]) -> dict[str, list[int]]:
    if not full:
        return split_by_group(alphabets, SMALL_VAL, SMALL_TEST)
    bg = sorted(a for a in set(alphabets) if a in background)
    test = sorted(set(alphabets) - set(bg))
    return split_by_group(alphabets, bg[-FULL_VAL_COUNT:], test)


@register_fewshot_dataset("omniglot")
def omniglot(data_dir=None, download=True, image_size: int = IMAGE_SIZE) -> FewShotData:
    """Omniglot, 28×28, strokes = 1, split by alphabet (module docstring)."""
    if data_dir is not None and not Path(data_dir).is_dir():
        raise DataError(f"data directory {data_dir} does not exist; create it and put images_background.zip and "
                        "images_evaluation.zip (or images_background_small1/2.zip) there")
    root = Path(data_dir) if data_dir is not None else default_data_dir() / "omniglot"
    sources = locate_archives(root, download)
    x, y, names, alphabets = _load_cached(tuple(sources), int(image_size))
    full = any(p.name.startswith("images_evaluation") for p in sources)
    background = _alphabet_names(sources[0]) if full else set()
    split = omniglot_split(alphabets, full, background)
    return FewShotData("omniglot", x, y, names, alphabets, split,
                       source=f"Omniglot ({', '.join(p.name for p in sources)}, real, from {root})",
                       info={"image_size": image_size, "alphabets": sorted(set(alphabets)),
                             "characters": len(names), "images": len(y), "polarity": "strokes = 1"})


# ------------------------------------------------------------------ the 20 one-shot runs
def load_one_shot_runs(path: str | Path, size: int = IMAGE_SIZE) -> list[dict]:
    """The classic 20-way within-alphabet one-shot runs [Lake et al. 2015] from ``all_runs.zip``.

    Each run: ``support`` (20, 1, size, size) — one image per class, labels 0..19 in file order —
    ``query`` (20, 1, size, size) and ``query_y``, the index of each query's correct class.
    """
    path = Path(path)
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        raise DataError(f"{path} is not a readable zip of the one-shot runs ({e}); expected all_runs.zip "
                        f"from {RUNS_URL}") from None
    names = set(zf.namelist())
    runs = sorted({n.split("/")[0] for n in names if re.match(r"run\d+/class_labels\.txt$", n)})
    if not runs:
        raise DataError(f"{path} holds no runNN/class_labels.txt; expected all_runs.zip from {RUNS_URL}")
    return [_one_run(zf, r, size) for r in runs]


def _one_run(zf: zipfile.ZipFile, run: str, size: int) -> dict:
    pairs = [line.split() for line in zf.read(f"{run}/class_labels.txt").decode().splitlines() if line.strip()]
    train_files = sorted({t for _, t in pairs})
    index = {f: i for i, f in enumerate(train_files)}
    img = lambda n: torch.from_numpy(decode(zf.read(n), size)).unsqueeze(0)  # noqa: E731
    return {"run": run, "support": torch.stack([img(f) for f in train_files]),
            "query": torch.stack([img(q) for q, _ in pairs]),
            "query_y": torch.tensor([index[t] for _, t in pairs])}
