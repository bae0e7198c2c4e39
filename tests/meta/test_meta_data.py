"""Episodes, class splits, Omniglot reading/downloading, glyphs, one-shot runs."""
import hashlib
import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from robustlab.core.data.episodes import EpisodeSampler, FewShotData, check_split, load_split
from robustlab.core.data import omniglot as om
from robustlab.core.errors import ConfigError, DataError

torch.set_num_threads(1)


def _toy(n_classes=12, per_class=6):
    x = torch.arange(n_classes * per_class, dtype=torch.float32).view(-1, 1, 1, 1).expand(-1, 1, 2, 2).clone()
    y = torch.arange(n_classes).repeat_interleave(per_class)
    split = {"train": list(range(0, 6)), "val": [6, 7], "test": list(range(8, 12))}
    names = [f"c{i}" for i in range(n_classes)]
    return FewShotData("toy", x, y, names, ["g"] * n_classes, split, source="toy")


def test_episode_shapes_labels_and_class_membership():
    data = _toy()
    s = data.sampler("test", way=3, shot=2, query=3, tasks=5)
    ep = s.sample(torch.Generator().manual_seed(0))
    assert ep.support_x.shape == (5, 6, 1, 2, 2) and ep.query_x.shape == (5, 9, 1, 2, 2)
    assert torch.equal(ep.support_y[0], torch.tensor([0, 0, 1, 1, 2, 2]))
    # every image's true class (its value // per_class) is the class behind its episode label
    for t in range(5):
        for xs, ys in ((ep.support_x[t], ep.support_y[t]), (ep.query_x[t], ep.query_y[t])):
            true = (xs[:, 0, 0, 0] // 6).long()
            assert torch.equal(true, ep.classes[t][ys])
        # support and query images of a task are distinct
        ids = torch.cat([ep.support_x[t, :, 0, 0, 0], ep.query_x[t, :, 0, 0, 0]])
        assert len(ids.unique()) == len(ids)


def test_episodes_never_mix_meta_train_and_meta_test_classes():
    data = _toy()
    g = torch.Generator().manual_seed(1)
    train_seen = {int(c) for _ in range(50) for c in data.sampler("train", way=4, shot=1, query=2).sample(g).classes.flatten()}
    test_seen = {int(c) for _ in range(50) for c in data.sampler("test", way=4, shot=1, query=2).sample(g).classes.flatten()}
    assert train_seen <= set(data.split["train"]) and test_seen <= set(data.split["test"])
    assert train_seen and test_seen and not train_seen & test_seen


def test_sampler_is_seeded():
    data = _toy()
    a = data.sampler("train", way=3, shot=1, query=2).sample(torch.Generator().manual_seed(7))
    b = data.sampler("train", way=3, shot=1, query=2).sample(torch.Generator().manual_seed(7))
    assert torch.equal(a.query_x, b.query_x) and torch.equal(a.classes, b.classes)


def test_rotations_are_new_classes_turned_by_quarter_turns():
    x = torch.zeros(4, 1, 3, 3)
    x[:, 0, 0, 1] = 1.0                                      # one marked pixel, top middle
    data = FewShotData("r", x, torch.zeros(4, dtype=torch.long), ["a"], ["g"], {"train": [0], "val": [], "test": []},
                       source="r")
    s = data.sampler("train", way=4, shot=1, query=1, rotations=True)
    ep = s.sample(torch.Generator().manual_seed(0))
    assert sorted(ep.classes[0].tolist()) == [0, 1, 2, 3]   # the four rotations of class 0
    for label, gid in enumerate(ep.classes[0].tolist()):
        assert torch.equal(ep.support_x[0, label], torch.rot90(x[0], gid % 4, dims=(-2, -1)))


def test_split_checks_and_errors():
    with pytest.raises(ConfigError, match="both"):
        check_split({"train": [0, 1], "val": [1], "test": []}, 3)
    data = _toy()
    with pytest.raises(ConfigError, match="lower --way"):
        data.sampler("val", way=3, shot=1, query=1)
    with pytest.raises(ConfigError, match="lower --shot"):
        data.sampler("test", way=2, shot=4, query=3)


def test_split_json_round_trip(tmp_path):
    data = _toy()
    data.save_split(tmp_path / "split.json")
    rec = json.loads((tmp_path / "split.json").read_text())
    assert rec["counts"] == {"train": 6, "val": 2, "test": 4} and rec["test"][0] == "c8"
    assert load_split(tmp_path / "split.json", data.class_names) == data.split


# ------------------------------------------------------------------ Omniglot archives
def _png(seed: int) -> bytes:
    from PIL import Image

    a = (np.random.default_rng(seed).random((105, 105)) > 0.1).astype(np.uint8) * 255
    buf = io.BytesIO()
    Image.fromarray(a).convert("1").save(buf, format="PNG")
    return buf.getvalue()


def _official_zip(path: Path, top: str, alphabets: dict[str, int], drawers: int = 3) -> Path:
    """A zip in the official layout: <top>/<Alphabet>/characterNN/<id>_<drawer>.png."""
    with zipfile.ZipFile(path, "w") as z:
        for a, n in alphabets.items():
            for c in range(1, n + 1):
                for d in range(1, drawers + 1):
                    z.writestr(f"{top}/{a}/character{c:02d}/{c:04d}_{d:02d}.png", _png(hash((a, c, d)) % 1000))
    return path


def test_download_verifies_checksum_and_renames_part_atomically(tmp_path, monkeypatch):
    src = _official_zip(tmp_path / "served_bg.zip", "images_background", {"Alpha": 2, "Beta": 1})
    ev = _official_zip(tmp_path / "served_ev.zip", "images_evaluation", {"Gamma": 2})
    md5 = {n: hashlib.md5(p.read_bytes()).hexdigest() for n, p in (("images_background", src), ("images_evaluation", ev))}
    monkeypatch.setattr(om, "ARCHIVES", md5)
    urls = {"images_background": src.as_uri(), "images_evaluation": ev.as_uri()}
    monkeypatch.setattr(om, "URL", "")
    real = om.fetch_verified
    monkeypatch.setattr(om, "fetch_verified", lambda url, path, m, dl: real(urls[url[:-4]], path, m, dl))
    root = tmp_path / "data"
    root.mkdir()
    om._load_cached.cache_clear()
    data = om.omniglot(data_dir=root)
    assert (root / "images_background.zip").exists() and not list(root.glob("*.part"))
    assert len(data.class_names) == 5 and len(data.y) == 15 and data.x.shape[1:] == (1, 28, 28)
    assert [data.class_names[c].split("/")[0] for c in data.split["test"]] == ["Gamma", "Gamma"]


def test_checksum_mismatch_and_offline_errors_are_one_line(tmp_path, monkeypatch):
    bad = tmp_path / "images_background.zip"
    bad.write_bytes(b"not the archive")
    with pytest.raises(DataError, match="MD5") as e:
        om.fetch_verified("https://example.invalid/images_background.zip", bad, om.ARCHIVES["images_background"], False)
    assert "\n" not in str(e.value)
    with pytest.raises(DataError, match="images_evaluation.zip is missing") as e:
        om.fetch_verified("https://example.invalid/images_evaluation.zip", tmp_path / "images_evaluation.zip",
                          None, False)
    assert str(tmp_path) in str(e.value) and "\n" not in str(e.value)


def test_failed_download_leaves_no_part_file(tmp_path):
    target = tmp_path / "images_background.zip"
    with pytest.raises(DataError, match="cannot download"):
        om.fetch_verified((tmp_path / "nowhere.zip").as_uri(), target, None, True)
    assert not target.exists() and not list(tmp_path.glob("*.part"))


def test_local_folder_and_duplicates_across_archives(tmp_path):
    a = _official_zip(tmp_path / "images_background_small1.zip", "images_background_small1", {"Greek": 2, "Alpha": 1})
    b = _official_zip(tmp_path / "images_background_small2.zip", "images_background_small2", {"Greek": 2, "Beta": 1})
    x, y, names, alphabets = om.read_characters([a, b])
    assert names == ["Alpha/character01", "Beta/character01", "Greek/character01", "Greek/character02"]
    assert len(y) == 4 * 3 and x.min() >= 0 and x.max() <= 1


def test_real_omniglot_subset_dedups_to_242_characters(shared_dir):
    data = om.omniglot(data_dir=shared_dir / "data" / "omniglot", download=False)
    assert len(data.class_names) == 242 and len(data.y) == 4840
    assert len(set(data.groups)) == 8
    assert data.x.shape[1:] == (1, 28, 28)
    assert data.x.mean() < 0.2                                        # strokes = 1 on a 0 background
    test_alphabets = {data.groups[c] for c in data.split["test"]}
    train_alphabets = {data.groups[c] for c in data.split["train"]}
    assert test_alphabets == {"Japanese_(katakana)", "Sanskrit", "Tagalog"} and not test_alphabets & train_alphabets


def test_one_shot_runs(shared_dir):
    runs = om.load_one_shot_runs(shared_dir / "data" / "omniglot" / "one_shot_runs.zip")
    assert len(runs) == 20
    for r in runs:
        assert r["support"].shape == (20, 1, 28, 28) and r["query"].shape == (20, 1, 28, 28)
        assert sorted(r["query_y"].tolist()) == list(range(20))    # each class is queried exactly once


def test_glyphs_are_deterministic_and_split_by_alphabet():
    from robustlab.core.data.glyphs import glyphs

    a, b = glyphs(alphabets=4, characters=3, drawers=4), glyphs(alphabets=4, characters=3, drawers=4)
    assert torch.equal(a.x, b.x) and a.x.shape == (48, 1, 28, 28)
    assert 0.02 < a.x.mean() < 0.3
    groups = {s: {a.groups[c] for c in a.split[s]} for s in ("train", "val", "test")}
    assert not groups["train"] & groups["test"] and not groups["val"] & groups["test"]


def test_one_shot_runs_as_an_evaluation_task(shared_dir):
    from robustlab.meta.evaluate import one_shot_runs_accuracy
    from robustlab.meta.heads import ProtoNetHead
    from robustlab.meta.learners import HeadLearner

    class Pixels(torch.nn.Module):   # nearest neighbour on raw pixels: an independent, parameter-light baseline
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(()))

        def forward(self, x):
            return self.w * x.flatten(1)

    runs = om.load_one_shot_runs(shared_dir / "data" / "omniglot" / "one_shot_runs.zip")[:5]
    res = one_shot_runs_accuracy(HeadLearner(Pixels(), ProtoNetHead()), runs, eps=0.05, attacks=[])
    # per-run accuracy must equal a hand-rolled nearest-neighbour on the same pixels
    expected = sum(float((torch.cdist(r["query"].flatten(1), r["support"].flatten(1)).argmin(1) == r["query_y"])
                         .float().mean()) for r in runs) / 5
    assert abs(res["accuracy"]["natural"]["mean"] - expected) < 1e-9
    assert res["accuracy"]["natural"]["mean"] > 1 / 20
