"""CIFAR-FS and mini-ImageNet for few-shot learning (thesis §5.3; Bertinetto et al. 2019; Ravi & Larochelle 2017).

``cifar-fs`` re-uses the core's CIFAR-100 archive reader (train and test images of a class are
pooled: a few-shot split is by class) with the standard 64/16/20 class split of the R2-D2 paper.
``mini-imagenet`` is user-supplied, in either common layout: the three pickles
``mini-imagenet-cache-{train,val,test}.pkl`` (``image_data`` (N, 84, 84, 3) uint8 and ``class_dict``
{class: [indices]}), or folders ``{train,val,test}/<class>/*.jpg|png``. The files themselves carry
the Ravi–Larochelle split (64/16/20 classes, 600 images each).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from .cifar import _SafeUnpickler, default_data_dir, ensure_archive, parse_cifar_archive
from .episodes import SPLITS, FewShotData, register_fewshot_dataset

CIFAR100_CLASSES = (
    "apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus butterfly camel can "
    "castle caterpillar cattle chair chimpanzee clock cloud cockroach couch crab crocodile cup dinosaur dolphin "
    "elephant flatfish forest fox girl hamster house kangaroo keyboard lamp lawn_mower leopard lion lizard lobster "
    "man maple_tree motorcycle mountain mouse mushroom oak_tree orange orchid otter palm_tree pear pickup_truck "
    "pine_tree plain plate poppy porcupine possum rabbit raccoon ray road rocket rose sea seal shark shrew skunk "
    "skyscraper snail snake spider squirrel streetcar sunflower sweet_pepper table tank telephone television tiger "
    "tractor train trout tulip turtle wardrobe whale willow_tree wolf woman worm").split()
#: the R2-D2 paper's CIFAR-FS split (Bertinetto et al. 2019): 16 validation and 20 test classes, the other 64 train
CIFAR_FS_VAL = ("otter motorcycle television lamp crocodile shark butterfly beaver beetle tractor flatfish "
                "maple_tree camel crab sea cattle").split()
CIFAR_FS_TEST = ("baby bed bicycle chimpanzee fox leopard man pickup_truck plain poppy rocket rose snail "
                 "sweet_pepper table telephone wardrobe whale woman worm").split()


@register_fewshot_dataset("cifar-fs")
def cifar_fs(data_dir=None, download=True) -> FewShotData:
    """CIFAR-FS: all 600 images of each CIFAR-100 class, 32×32 RGB, classes split 64/16/20."""
    if data_dir is not None and not Path(data_dir).is_dir():
        raise DataError(f"data directory {data_dir} does not exist; create it and put cifar-100-python.tar.gz there")
    root = Path(data_dir) if data_dir is not None else default_data_dir()
    path = ensure_archive("cifar100", root, download)
    xtr, ytr, xte, yte = parse_cifar_archive(path, "cifar100")
    x = torch.from_numpy(np.concatenate([xtr, xte]).astype(np.float32) / 255.0)
    y = torch.from_numpy(np.concatenate([ytr, yte]))
    idx = {n: i for i, n in enumerate(CIFAR100_CLASSES)}
    split = {"val": [idx[n] for n in CIFAR_FS_VAL], "test": [idx[n] for n in CIFAR_FS_TEST]}
    split["train"] = [i for i in range(100) if i not in set(split["val"]) | set(split["test"])]
    return FewShotData("cifar-fs", x, y, list(CIFAR100_CLASSES), ["cifar100"] * 100, split,
                       source=f"CIFAR-FS from {path.name} (real, from {root}); R2-D2 64/16/20 class split")


def _read_pickle(path: Path) -> tuple[np.ndarray, dict]:
    try:
        with open(path, "rb") as f:
            d = _SafeUnpickler(f, encoding="latin1").load()
        return np.asarray(d["image_data"], dtype=np.uint8), dict(d["class_dict"])
    except Exception as e:  # noqa: BLE001  (a foreign pickle can fail in many ways; all mean "not this file")
        raise DataError(f"{path} is not a mini-ImageNet cache pickle ({type(e).__name__}: {e}); expected a dict "
                        "with image_data and class_dict (a Google-Drive HTML page saved as .pkl is a common cause)") from None


def _read_folder(folder: Path) -> tuple[np.ndarray, dict]:
    from PIL import Image

    images, class_dict = [], {}
    for cls in sorted(p for p in folder.iterdir() if p.is_dir()):
        files = sorted(f for f in cls.iterdir() if f.suffix.lower() in (".jpg", ".jpeg", ".png"))
        start = len(images)
        images += [np.asarray(Image.open(f).convert("RGB").resize((84, 84), Image.BILINEAR)) for f in files]
        class_dict[cls.name] = list(range(start, len(images)))
    if not images:
        raise DataError(f"{folder} holds no <class>/*.jpg images")
    return np.stack(images), class_dict


@register_fewshot_dataset("mini-imagenet")
def mini_imagenet(data_dir=None, download=True) -> FewShotData:
    """mini-ImageNet, 84×84 RGB, Ravi–Larochelle split, from user-supplied pickles or folders (module docstring)."""
    root = Path(data_dir) if data_dir is not None else default_data_dir() / "mini-imagenet"
    parts = {}
    for s in SPLITS:
        pkl, folder = root / f"mini-imagenet-cache-{s}.pkl", root / s
        if pkl.exists():
            parts[s] = _read_pickle(pkl)
        elif folder.is_dir():
            parts[s] = _read_folder(folder)
        else:
            raise DataError(f"mini-ImageNet is not downloadable automatically; put mini-imagenet-cache-{s}.pkl "
                            f"(or a folder {s}/<class>/*.jpg) in {root}, or pass --data-dir")
    xs, ys, names, split = [], [], [], {s: [] for s in SPLITS}
    for s in SPLITS:
        images, class_dict = parts[s]
        for cls, idx in sorted(class_dict.items()):
            split[s].append(len(names))
            xs.append(images[np.asarray(idx)])
            ys.append(np.full(len(idx), len(names)))
            names.append(str(cls))
    x = torch.from_numpy(np.concatenate(xs)).permute(0, 3, 1, 2).float().div_(255.0)
    return FewShotData("mini-imagenet", x, torch.from_numpy(np.concatenate(ys)), names, ["imagenet"] * len(names),
                       split, source=f"mini-ImageNet (user-supplied, from {root}); Ravi-Larochelle split")
