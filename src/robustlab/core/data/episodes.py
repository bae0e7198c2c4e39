"""Few-shot data: labelled image sets split by *class*, and N-way K-shot Q-query episodes (thesis §5.2.1).

A :class:`FewShotData` holds every image in memory with its class and each class's group (an
Omniglot alphabet, a CIFAR-100 class, ...), plus a fixed class-level split into meta-train,
meta-val and meta-test. An :class:`EpisodeSampler` draws episodes from one split; it is a batch
source for the core training loop (``len()`` episodes-batches per epoch, ``batches(epoch, gen)``).
Images are never split: every image of a class belongs to the split of its class.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import torch

from ..errors import ConfigError
from ..registry import Registry

SPLITS = ("train", "val", "test")


@dataclass
class Episode:
    """A batch of ``tasks`` few-shot tasks; labels are 0..way-1 within each task.

    Shapes: ``support_x`` (T, way·shot, C, H, W), ``support_y`` (T, way·shot), ``query_x``
    (T, way·query, C, H, W), ``query_y`` (T, way·query). ``classes`` (T, way) holds the global
    class ids behind labels 0..way-1 (with rotations: ``base·4 + quarter_turns``).
    """

    support_x: torch.Tensor
    support_y: torch.Tensor
    query_x: torch.Tensor
    query_y: torch.Tensor
    classes: torch.Tensor
    way: int

    def to(self, device, non_blocking: bool = False) -> "Episode":
        mv = lambda t: t.to(device, non_blocking=non_blocking)  # noqa: E731
        return Episode(mv(self.support_x), mv(self.support_y), mv(self.query_x), mv(self.query_y),
                       self.classes, self.way)

    @property
    def tasks(self) -> int:
        return self.support_x.shape[0]

    @property
    def shot(self) -> int:
        return self.support_x.shape[1] // self.way


@dataclass
class FewShotData:
    """Images (N, C, H, W) in [0, 1], their class ids, class names/groups and the class split."""

    name: str
    x: torch.Tensor
    y: torch.Tensor
    class_names: list[str]
    groups: list[str]                          # per class: alphabet (Omniglot), source split, ...
    split: dict[str, list[int]]                # "train"/"val"/"test" -> class ids
    source: str
    info: dict = field(default_factory=dict)

    def __post_init__(self):
        check_split(self.split, len(self.class_names))

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x.shape[1:])

    def split_record(self) -> dict:
        """The class split as saved with a run: names per split, plus counts."""
        return {"dataset": self.name, "source": self.source,
                **{s: [self.class_names[c] for c in self.split[s]] for s in SPLITS},
                "counts": {s: len(self.split[s]) for s in SPLITS}}

    def save_split(self, path: str | Path) -> None:
        from ..io import write_json

        write_json(path, self.split_record())

    def sampler(self, split: str, **kwargs) -> "EpisodeSampler":
        if split not in SPLITS:
            raise ConfigError(f"unknown split {split!r}; choose one of: {', '.join(SPLITS)}")
        return EpisodeSampler(self.x, self.y, self.split[split], **kwargs)


def check_split(split: dict[str, list[int]], n_classes: int) -> None:
    """Every split present, class ids in range, and no class in two splits."""
    missing = [s for s in SPLITS if s not in split]
    if missing:
        raise ConfigError(f"class split lacks {', '.join(missing)}")
    seen: dict[int, str] = {}
    for s in SPLITS:
        for c in split[s]:
            if not 0 <= c < n_classes:
                raise ConfigError(f"class id {c} in split {s} is outside 0..{n_classes - 1}")
            if c in seen:
                raise ConfigError(f"class {c} is in both {seen[c]} and {s}; classes, not images, are split")
            seen[c] = s


def split_by_group(groups: list[str], val_groups: list[str], test_groups: list[str]) -> dict[str, list[int]]:
    """Class split by group (alphabet): listed groups go to val/test, the rest to train."""
    out: dict[str, list[int]] = {s: [] for s in SPLITS}
    for c, g in enumerate(groups):
        out["test" if g in test_groups else "val" if g in val_groups else "train"].append(c)
    return out


def load_split(path: str | Path, class_names: list[str]) -> dict[str, list[int]]:
    """A split saved by :meth:`FewShotData.save_split`, mapped back to class ids."""
    from ..errors import DataError

    try:
        rec = json.loads(Path(path).read_text())
        index = {n: i for i, n in enumerate(class_names)}
        return {s: [index[n] for n in rec[s]] for s in SPLITS}
    except (OSError, ValueError, KeyError) as e:
        raise DataError(f"{path} is not a class split of this dataset ({e}); pass a split.json written "
                        "by `robustlab meta train`") from None


class EpisodeSampler:
    """Seeded N-way K-shot Q-query episodes over the classes ``classes`` of (x, y).

    With ``rotations=True`` each class also appears turned by 90/180/270° as a new class (the
    Omniglot convention), so the class pool is 4× larger. ``tasks`` episodes form one batch, and
    ``episodes_per_epoch`` batches one epoch of the training loop.
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, classes: list[int], *, way: int = 5, shot: int = 1,
                 query: int = 15, tasks: int = 1, episodes_per_epoch: int = 100, rotations: bool = False):
        self.x = x
        self.way, self.shot, self.query, self.tasks = int(way), int(shot), int(query), int(tasks)
        self.episodes_per_epoch, self.rotations = int(episodes_per_epoch), bool(rotations)
        self.classes = sorted(int(c) for c in classes)
        y = y.long()
        self.index = [torch.nonzero(y == c).flatten() for c in self.classes]
        self._check()

    def _check(self) -> None:
        pool = len(self.classes) * (4 if self.rotations else 1)
        for name, v in (("way", self.way), ("shot", self.shot), ("query", self.query), ("tasks", self.tasks),
                        ("episodes_per_epoch", self.episodes_per_epoch)):
            if v < 1:
                raise ConfigError(f"{name} must be >= 1, got {v}")
        if self.way > pool:
            raise ConfigError(f"{self.way}-way episodes need {self.way} classes but this split has {pool}; "
                              "lower --way")
        fewest = min(len(i) for i in self.index)
        if self.shot + self.query > fewest:
            raise ConfigError(f"shot + query = {self.shot + self.query} but a class here has only {fewest} images; "
                              "lower --shot or --query")

    def __len__(self) -> int:
        return self.episodes_per_epoch

    def batches(self, epoch: int, generator: torch.Generator) -> Iterator[Episode]:
        for _ in range(len(self)):
            yield self.sample(generator)

    def sample(self, generator: torch.Generator) -> Episode:
        parts = [self._task(generator) for _ in range(self.tasks)]
        return Episode(*(torch.stack([p[i] for p in parts]) for i in range(5)), way=self.way)

    def _task(self, gen: torch.Generator):
        k = self.shot + self.query
        pool = len(self.classes) * (4 if self.rotations else 1)
        picked = torch.randperm(pool, generator=gen)[: self.way]
        sx, qx, gids = [], [], []
        for label in picked.tolist():
            base, turns = (label // 4, label % 4) if self.rotations else (label, 0)
            idx = self.index[base]
            chosen = idx[torch.randperm(len(idx), generator=gen)[:k]]
            imgs = self.x[chosen]
            if turns:
                imgs = torch.rot90(imgs, turns, dims=(-2, -1))
            sx.append(imgs[: self.shot])
            qx.append(imgs[self.shot:])
            gids.append(self.classes[base] * 4 + turns if self.rotations else self.classes[base])
        labels = torch.arange(self.way)
        return (torch.cat(sx), labels.repeat_interleave(self.shot), torch.cat(qx),
                labels.repeat_interleave(self.query), torch.tensor(gids))


# ------------------------------------------------------------------ registry of few-shot datasets
_FEWSHOT: Registry[Callable[..., FewShotData]] = Registry("few-shot dataset")


def register_fewshot_dataset(name: str):
    return _FEWSHOT.register(name)


def get_fewshot_dataset(name: str, data_dir: str | Path | None = None, download: bool = True,
                        **options) -> FewShotData:
    """Load few-shot dataset ``name`` (``glyphs``, ``omniglot``, ``cifar-fs``, ``mini-imagenet``)."""
    return _FEWSHOT.get(name)(data_dir=data_dir, download=download, **options)


def list_fewshot_datasets() -> list[str]:
    return _FEWSHOT.names()


def check_fewshot_name(name: str) -> None:
    _FEWSHOT.get(name)


from . import glyphs, omniglot, fewshot_images  # noqa: E402,F401  (register the datasets)
