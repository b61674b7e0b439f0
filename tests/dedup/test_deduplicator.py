"""Deduplicator on the synthetic data (planted duplicates) and on bad input."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from conftest import write_image
from PIL import Image

from hamkit import DataError, Deduplicator, HamkitError
from hamkit.data.metadata import read_metadata
from hamkit.data.splits import split_dataset
from hamkit.dedup import embeddings as embeddings_module
from hamkit.dedup.methods import CnnMethod, VerifiedMethod

FAST = dict(num_workers=0, progress=False)


def small_cnn(**settings) -> CnnMethod:
    """The cnn method on a small random-weight network (fast, offline)."""
    return CnnMethod(backbone="mobilenet_v3_small", pretrained=False, **settings)


def planted(data) -> dict[str, set[frozenset[str]]]:
    kinds: dict[str, set[frozenset[str]]] = {}
    for row in csv.DictReader(open(data.duplicates_csv)):
        kinds.setdefault(row["kind"], set()).add(frozenset((row["image_id"], row["duplicate_of"])))
    return kinds


def found(result) -> set[frozenset[str]]:
    return {frozenset((result.paths[i].stem, result.paths[j].stem)) for i, j in zip(result.pairs.i, result.pairs.j)}


def test_exact_finds_exactly_the_planted_copies(synthetic, tmp_path):
    result = Deduplicator("exact", **FAST).find(synthetic.root)
    assert found(result) == planted(synthetic)["exact"]
    assert result.counts["removed"] == len(planted(synthetic)["exact"])
    out = result.save(tmp_path / "out")
    names = sorted(p.name for p in out.iterdir())
    assert names == ["groups.csv", "groups.json", "kept.txt", "pairs.csv", "removed.txt", "skipped.txt", "summary.json"]
    kept = (out / "kept.txt").read_text().splitlines()
    removed = (out / "removed.txt").read_text().splitlines()
    assert len(kept) + len(removed) == synthetic.n_images and not set(kept) & set(removed)
    assert json.loads((out / "summary.json").read_text())["counts"]["pairs"] == len(result.pairs)


def test_phash_finds_the_near_duplicates(synthetic):
    result = Deduplicator("phash", threshold=8, **FAST).find(synthetic.root)
    truth = set().union(*planted(synthetic).values())
    assert len(found(result) & truth) / len(truth) >= 0.8  # re-encoded, resized, cropped, brightened copies


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"method": "dhash", "threshold": 65}, "Hamming distance, an integer in 0..64"),
        ({"method": "cnn", "threshold": 0}, "cosine similarity in \\(0, 1\\]"),
        ({"method": "verified", "threshold": 1.5}, "aligned-content score in \\(0, 1\\]"),
        ({"method": "exact", "threshold": 1}, "takes no threshold"),
        ({"method": "ssim"}, "unknown method 'ssim'; choose one of verified, cnn, phash, dhash, exact, lesion"),
        ({"method": "phash", "keep": "prefer"}, "needs prefer"),
        ({"method": "phash", "keep": "smallest"}, "unknown keep policy"),
        ({"method": "phash", "group_mode": "chain"}, "group_mode must be"),
        ({"method": CnnMethod(ivf={"nprobe": 4})}, "ivf must be"),  # type: ignore[arg-type]
        ({"method": CnnMethod(batch_size=0)}, "batch_size must be a positive integer"),
        ({"method": VerifiedMethod(candidates=0)}, "candidates must be a positive integer"),
        ({"method": VerifiedMethod(min_inliers=3)}, "min_inliers must be an integer of at least 4"),
        ({"method": 3}, "method must be a method name"),
    ],
)
def test_invalid_settings_are_reported_when_it_runs(settings, message, tmp_path):
    dedup = Deduplicator(**settings, **FAST)  # construction stores, never checks
    assert dedup.get_params()["method"] is settings["method"]
    write_image(tmp_path / "a.png")
    split = tmp_path / "split.csv"
    split.write_text("image_id,split\na,train\n")
    for run in (lambda: dedup.find(tmp_path), lambda: dedup.find_cross([], []), lambda: dedup.audit(split, tmp_path)):
        with pytest.raises(HamkitError, match=message):
            run()
    assert not hasattr(dedup, "threshold_")


def test_scikit_learn_parameter_protocol():
    from sklearn.base import clone

    dedup = Deduplicator("phash", threshold=6, prefer={"a"})
    copy = clone(dedup)
    assert copy is not dedup and copy.get_params() == dedup.get_params()
    assert copy.threshold == 6 and not hasattr(copy, "threshold_")  # an unfitted copy
    params = dedup.get_params(deep=True)
    assert set(params) == {
        "method", "threshold", "num_workers", "cache_dir", "group_mode", "keep", "prefer", "progress",
    }  # fmt: skip
    assert len(params) <= 8  # only what every method shares
    assert Deduplicator(**params).get_params() == params
    assert dedup.set_params(threshold=3) is dedup and dedup.threshold == 3
    assert dedup.set_params(method="dhash", threshold=None).get_params()["method"] == "dhash"
    with pytest.raises(TypeError):
        Deduplicator("phash", None, 6)  # everything after method is keyword-only
    assert repr(Deduplicator("phash", threshold=6)) == "Deduplicator(method='phash', threshold=6)"


def test_the_method_owns_its_settings_as_in_a_pipeline():
    from sklearn.base import clone

    from hamkit.dedup.search import IvfConfig

    dedup = Deduplicator(CnnMethod(search_backend="faiss-ivf", ivf=IvfConfig(nprobe=8)), threshold=0.9)
    params = dedup.get_params(deep=True)
    assert params["method__search_backend"] == "faiss-ivf" and params["method__ivf"] == IvfConfig(nprobe=8)
    dedup.set_params(method__backbone="resnet18", threshold=0.95)
    assert dedup.method.backbone == "resnet18" and dedup.threshold == 0.95
    copy = clone(dedup)
    assert copy.method is not dedup.method
    assert {k: v for k, v in copy.get_params(deep=True).items() if k != "method"} == {
        k: v for k, v in params.items() if k != "method"
    } | {"method__backbone": "resnet18", "threshold": 0.95}
    named = Deduplicator("verified").set_params(method__candidates=20)  # a name becomes an instance
    assert isinstance(named.method, VerifiedMethod) and named.method.get_params() == {
        "batch_size": 32,
        "candidates": 20,
        "min_inliers": 15,
        "backend": "auto",
    }
    switched = Deduplicator("verified").set_params(method="cnn", method__image_size=64)
    assert isinstance(switched.method, CnnMethod) and switched.method.image_size == 64
    with pytest.raises(ValueError, match="backbone"):
        Deduplicator("phash").set_params(method__backbone="resnet18")  # phash has no backbone


@pytest.mark.parametrize("name", ["verified", "cnn", "phash", "dhash", "exact"])
def test_every_method_is_clonable_on_its_own_and_a_clone_forgets_what_it_learned(name, tmp_path):
    from sklearn.base import clone

    from hamkit.dedup.methods import get_method

    method = get_method(name)
    method.learned_ = "state"  # what a search leaves behind (a network, decoded scenes)
    copy = clone(method)
    assert type(copy) is type(method) and copy.get_params() == method.get_params()
    assert not hasattr(copy, "learned_")
    changed = {key: value for key, value in copy.get_params().items() if isinstance(value, int)}
    if changed:
        key = sorted(changed)[0]
        assert clone(copy.set_params(**{key: changed[key] + 1})).get_params()[key] == changed[key] + 1


def test_random_weight_cnn_warns(synthetic):
    dedup = Deduplicator(small_cnn(image_size=32), cache_dir=False, **FAST)
    with pytest.warns(UserWarning, match="random weights"):
        dedup.embed(sorted(synthetic.root.rglob("ISIC_*.jpg"))[:2])


@pytest.mark.filterwarnings("ignore:Deduplicator.*random weights")
def test_cnn_embeddings_are_cached_and_resumable(synthetic, tmp_path, monkeypatch):
    dedup = Deduplicator(
        small_cnn(image_size=64, batch_size=32), threshold=0.99999, cache_dir=tmp_path / "cache", **FAST
    )
    paths = sorted(synthetic.root.rglob("ISIC_*.jpg"))[:40]
    emb = dedup.embed(paths)
    assert emb.shape == (40, 576) and np.allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-5)
    decoded: list[int] = []
    real_job = embeddings_module.DecodeJob
    monkeypatch.setattr(
        embeddings_module, "DecodeJob", lambda p, *a, **k: decoded.append(len(p)) or real_job(p, *a, **k)
    )
    again = Deduplicator(small_cnn(image_size=64, batch_size=32), cache_dir=tmp_path / "cache", **FAST).embed(
        paths + paths[:0]
    )
    assert decoded == [0] and np.array_equal(again, emb)  # nothing recomputed
    more = dedup.embed(sorted(synthetic.root.rglob("ISIC_*.jpg"))[:50])
    assert decoded[-1] == 10 and np.array_equal(more[:40], emb)  # only the 10 new images


@pytest.mark.filterwarnings("ignore:Deduplicator.*random weights")
def test_approximate_search_backend_is_reported(synthetic, tmp_path):
    pytest.importorskip("faiss")
    paths = sorted(synthetic.root.rglob("ISIC_*.jpg"))[:40]
    settings = dict(threshold=0.999, cache_dir=tmp_path / "cache", **FAST)
    exact = Deduplicator(small_cnn(image_size=32), **settings).find(paths)
    from hamkit.dedup.search import IvfConfig

    ivf = small_cnn(image_size=32, search_backend="faiss-ivf", ivf=IvfConfig(nprobe=4))
    approx = Deduplicator(ivf, **settings).find(paths)
    assert exact.pairs.exact and not approx.pairs.exact
    assert len(exact.pairs) > 0 and found(approx) == found(exact)  # 40 images: one IVF cell, all probed
    assert "approximate" in approx.summary() and "approximate" not in exact.summary()
    approx.save(tmp_path / "out")
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["exact_search"] is False
    folder = tmp_path / "split"
    folder.mkdir()
    for path in paths[:12]:
        shutil.copyfile(path, folder / path.name)
    rows = [f"{p.stem},{'train' if k % 2 else 'test'}" for k, p in enumerate(paths[:12])]
    (tmp_path / "split.csv").write_text("image_id,split\n" + "\n".join(rows) + "\n")
    audit = Deduplicator(small_cnn(image_size=32, search_backend="faiss-ivf"), **settings).audit(
        tmp_path / "split.csv", folder
    )
    assert "approximate" in audit.summary()
    audit.save(tmp_path / "audit")
    assert json.loads((tmp_path / "audit" / "audit.json").read_text())["exact"] is False


def test_hashes_are_cached_by_file_identity(synthetic, tmp_path, monkeypatch):
    from hamkit.dedup import inputs as hashes_module  # the hash methods decode through it

    folder = tmp_path / "imgs"
    folder.mkdir()
    for path in sorted(synthetic.root.rglob("ISIC_*.jpg"))[:30]:
        shutil.copyfile(path, folder / path.name)
    decoded: list[int] = []
    real_job = hashes_module.DecodeJob
    monkeypatch.setattr(hashes_module, "DecodeJob", lambda p, *a, **k: decoded.append(len(p)) or real_job(p, *a, **k))
    dedup = Deduplicator("phash", cache_dir=tmp_path / "cache", **FAST)
    first = dedup.find(folder)
    again = Deduplicator("phash", cache_dir=tmp_path / "cache", **FAST).find(folder)
    assert decoded == [30]  # the second run decoded nothing
    assert found(again) == found(first) and np.array_equal(again.pairs.score, first.pairs.score)
    changed = sorted(folder.iterdir())[0]
    Image.open(sorted(folder.iterdir())[1]).save(changed)  # new content, size and mtime
    os.utime(changed, (1, 1))
    third = Deduplicator("phash", cache_dir=tmp_path / "cache", **FAST).find(folder)
    assert decoded == [30, 1]  # only the changed file
    assert frozenset((changed.stem, sorted(folder.iterdir())[1].stem)) in found(third)
    Deduplicator("dhash", cache_dir=tmp_path / "cache", **FAST).find(folder)
    assert decoded[-1] == 30  # another hash is another cache entry
    Deduplicator("phash", cache_dir=False, **FAST).find(folder)
    assert decoded[-1] == 30  # no cache: everything decoded


def test_interrupted_embedding_resumes(synthetic, tmp_path, monkeypatch):
    from hamkit.backbones.registry import create_backbone

    paths = sorted(synthetic.root.rglob("ISIC_*.jpg"))[:24]
    model = create_backbone("mobilenet_v3_small")
    real_decode_all = embeddings_module.decode_all

    def interrupted(*args, **kwargs):  # Ctrl-C while the third batch is being decoded
        for number, batch in enumerate(real_decode_all(*args, **kwargs)):
            if number == 2:
                raise KeyboardInterrupt
            yield batch

    monkeypatch.setattr(embeddings_module, "decode_all", interrupted)
    with pytest.raises(KeyboardInterrupt):
        embeddings_module.embed_paths(
            paths,
            model,
            image_size=64,
            mean=(0.5,) * 3,
            std=(0.5,) * 3,
            batch_size=4,
            cache=embeddings_module.EmbeddingCache(tmp_path, {"k": 1}),
            flush_every=4,
        )
    assert len(embeddings_module.EmbeddingCache(tmp_path, {"k": 1}).load()) == 8  # two flushed batches
    monkeypatch.setattr(embeddings_module, "decode_all", real_decode_all)
    decoded: list[int] = []
    real_job = embeddings_module.DecodeJob
    monkeypatch.setattr(
        embeddings_module, "DecodeJob", lambda p, *a, **k: decoded.append(len(p)) or real_job(p, *a, **k)
    )
    emb, skipped = embeddings_module.embed_paths(
        paths,
        model,
        image_size=64,
        mean=(0.5,) * 3,
        std=(0.5,) * 3,
        batch_size=4,
        cache=embeddings_module.EmbeddingCache(tmp_path, {"k": 1}),
    )
    assert decoded == [16]  # only what the interrupted run had not finished
    assert emb.shape[0] == 24 and not skipped and np.all(np.linalg.norm(emb, axis=1) > 0.99)


@pytest.mark.filterwarnings("ignore:Deduplicator.*random weights")
def test_bad_files_are_skipped_with_reasons(tmp_path):
    folder = tmp_path / "imgs"
    for i, mode in enumerate(["RGB", "L", "RGBA", "CMYK"]):
        write_image(folder / f"ok_{mode}.{'jpg' if mode in ('RGB', 'L', 'CMYK') else 'png'}", random_state=i, mode=mode)
    Image.fromarray(np.arange(60 * 45, dtype=np.uint16).reshape(45, 60) * 20).save(folder / "ok_16bit.png")
    rotated = Image.open(folder / "ok_RGB.jpg")
    exif = rotated.getexif()
    exif[0x0112] = 6
    rotated.save(folder / "ok_rotated.jpg", exif=exif.tobytes())
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "text.png").write_bytes(b"hello")
    good = (folder / "ok_RGB.jpg").read_bytes()
    (folder / "truncated.jpg").write_bytes(good[: len(good) // 3])
    for method in ("phash", "exact", "cnn"):
        chosen = small_cnn(image_size=32) if method == "cnn" else method
        result = Deduplicator(chosen, **FAST, cache_dir=False).find(folder)
        reasons = {result.paths[i].name: r for i, r in result.skipped.items()}
        assert set(reasons) == {"empty.jpg", "text.png", "truncated.jpg"}, method
        assert "empty" in reasons["empty.jpg"] and "not an image" in reasons["text.png"]
        assert len(result.kept) == 6  # every readable image kept or grouped, none lost
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(DataError, match="no images found"):
        Deduplicator("phash", **FAST).find(tmp_path / "empty_dir")


def test_keep_policies_and_strict_groups(tmp_path):
    base = write_image(tmp_path / "a" / "img_a.png", size=(120, 90), random_state=3)
    big = Image.open(base).resize((240, 180))
    big.save(tmp_path / "a" / "img_b_big.png")
    shutil.copyfile(base, tmp_path / "a" / "img_c.png")
    first = Deduplicator("phash", threshold=4, **FAST).find(tmp_path / "a")
    assert [p.name for p in first.kept_paths] == ["img_a.png"]
    largest = Deduplicator("phash", threshold=4, keep="largest", **FAST).find(tmp_path / "a")
    assert [p.name for p in largest.kept_paths] == ["img_b_big.png"]
    preferred = Deduplicator("phash", threshold=4, keep="prefer", prefer={"img_c"}, **FAST).find(tmp_path / "a")
    assert [p.name for p in preferred.kept_paths] == ["img_c.png"]


def test_cross_search_audit_and_leak_free_split(synthetic, tmp_path):
    dedup = Deduplicator("exact", **FAST)
    records = read_metadata(synthetic.metadata_csv)
    plain = split_dataset(records, random_state=0)
    plain.save(tmp_path / "plain.csv")
    audit = dedup.audit(tmp_path / "plain.csv", synthetic.root)
    # the planted exact copies have their own lesion ids, so a lesion-only split may leak them
    result = dedup.find(synthetic.root)
    by_id = dict(zip([p.stem for p in result.paths], result.group_labels(), strict=True))
    crossing = plain.crossing_groups([by_id[r.image_id] for r in records])
    assert audit.leaks == crossing
    clean = split_dataset(records, random_state=0, extra_groups=[[by_id[r.image_id] for r in records]])
    clean.save(tmp_path / "clean.csv")
    assert dedup.audit(tmp_path / "clean.csv", synthetic.root).leaks == 0
    audit.save(tmp_path / "audit")
    assert (tmp_path / "audit" / "audit.csv").read_text().startswith("split_a,split_b,path_a,path_b,score")
    paths = sorted(synthetic.root.rglob("ISIC_*.jpg"))
    pair = next(iter(planted(synthetic)["exact"]))
    a = [p for p in paths if p.stem in pair][:1]
    b = [p for p in paths if p.stem in pair][1:] + paths[:5]
    cross = dedup.find_cross(a, b)
    assert len(cross.pairs) == 1 and cross.pairs.i.tolist() == [0] and cross.pairs.j.tolist() == [0]


DDP = textwrap.dedent("""
    import json, sys
    from hamkit import Deduplicator
    from hamkit.dedup.methods import CnnMethod
    d = Deduplicator(CnnMethod(backbone="mobilenet_v3_small", image_size=48, pretrained=False), num_workers=0,
                     progress=False, cache_dir=False, threshold=0.99999)
    emb = d.embed(sys.argv[1])
    import os
    with open(os.path.join(sys.argv[2], f"emb{os.environ['RANK']}.json"), "w") as f:
        json.dump(emb.tolist(), f)
""")


@pytest.mark.filterwarnings("ignore:Deduplicator.*random weights")
def test_embedding_under_torchrun_two_cpu_processes(synthetic, tmp_path):
    folder = tmp_path / "few"
    folder.mkdir()
    for p in sorted(synthetic.root.rglob("ISIC_*.jpg"))[:10]:
        shutil.copyfile(p, folder / p.name)
    (tmp_path / "ddp.py").write_text(DDP)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "2",
            str(tmp_path / "ddp.py"),
            str(folder),
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    ranks = [np.array(json.loads((tmp_path / f"emb{r}.json").read_text())) for r in (0, 1)]
    single = Deduplicator(small_cnn(image_size=48), cache_dir=False, **FAST).embed(folder)
    assert np.allclose(ranks[0], single, atol=1e-5) and np.allclose(ranks[1], single, atol=1e-5)


def test_default_decoding_processes_per_method(monkeypatch):
    from hamkit.engine.trainer import default_num_workers

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(3)), raising=False)
    assert Deduplicator("phash")._workers() == 3  # hashing: one decoding process per CPU
    assert Deduplicator("exact")._workers() == 3
    assert Deduplicator("cnn")._workers() == default_num_workers()  # the model keeps a core
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(64)), raising=False)
    assert Deduplicator("dhash")._workers() == 8  # capped
    assert Deduplicator("phash", num_workers=0)._workers() == 0  # an explicit choice wins
