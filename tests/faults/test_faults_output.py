"""Output under faults: a full disk is one error line naming the file, result sets are written all
or nothing, list files cannot be misread, and CSV cells cannot start a spreadsheet formula."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
from conftest import REPO

from hamkit._io import atomic_path, atomic_write_text, csv_text, path_lines, spreadsheet_safe, staged_folder
from hamkit.errors import DataError, DiskFullError, HamkitError


def _full(code: int = errno.ENOSPC):
    def write(*args, **kwargs):
        raise OSError(code, os.strerror(code))

    return write


@pytest.mark.parametrize(("code", "words"), [(errno.ENOSPC, "no space left"), (errno.EDQUOT, "quota")])
def test_a_full_disk_is_one_hamkit_error_naming_the_file(tmp_path: Path, monkeypatch, code: int, words: str) -> None:
    target = atomic_write_text(tmp_path / "kept.txt", "old\n")
    monkeypatch.setattr(Path, "write_text", _full(code))
    with pytest.raises(DiskFullError) as caught:
        atomic_write_text(target, "new\n")
    message = str(caught.value)
    assert isinstance(caught.value, HamkitError) and isinstance(caught.value, OSError)
    assert caught.value.errno == code
    assert "\n" not in message and str(target) in message and words in message and "free some space" in message
    monkeypatch.undo()
    assert target.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept.txt"]


def test_a_library_error_that_says_the_disk_is_full_is_recognised(tmp_path: Path) -> None:
    with pytest.raises(DiskFullError, match="model.safetensors"), atomic_path(tmp_path / "model.safetensors"):
        # what safetensors raises (not an OSError)
        raise RuntimeError('Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: "No sp" })')
    with pytest.raises(ValueError), atomic_path(tmp_path / "other.txt"):
        raise ValueError("not about the disk")


def test_the_checkpoint_writer_reports_a_full_disk(tmp_path: Path, monkeypatch) -> None:
    import safetensors.torch
    import torch

    from hamkit.engine.checkpoint import save_model_files

    monkeypatch.setattr(safetensors.torch, "save_file", _full())
    with pytest.raises(DiskFullError, match="model.safetensors"):
        save_model_files(tmp_path / "model", {"w": torch.zeros(2)}, {"kind": "test"})
    assert not any((tmp_path / "model").iterdir())


def test_the_command_line_prints_one_line_on_a_full_disk(tmp_path: Path, monkeypatch, capsys) -> None:
    from conftest import write_image

    from hamkit.cli.main import main

    for i in range(3):
        write_image(tmp_path / "images" / f"img{i}.png", random_state=i)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("mine\n")
    real = Path.write_text

    def write_text(self, text, *args, **kwargs):
        if self.name.startswith(".removed.txt"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, text, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", write_text)
    status = main(["dedup", str(tmp_path / "images"), "--out", str(tmp_path / "out"), "--method", "exact", "--quiet"])
    err = capsys.readouterr().err
    assert status == 1
    assert err.startswith("hamkit dedup: error: ") and "removed.txt" in err and "no space left" in err
    assert "Traceback" not in err and err.count("\n") == 1
    # all or nothing: the folder holds what it held before, not kept.txt alone
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["notes.txt"]


def test_a_staged_folder_moves_everything_or_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with staged_folder(out) as stage:
        atomic_write_text(stage / "a.txt", "a\n")
        atomic_write_text(stage / "sub" / "b.txt", "b\n")
        assert not (out / "a.txt").exists()
    assert (out / "a.txt").read_text() == "a\n" and (out / "sub" / "b.txt").read_text() == "b\n"
    with pytest.raises(RuntimeError), staged_folder(out) as stage:
        atomic_write_text(stage / "a.txt", "new\n")
        raise RuntimeError("interrupted")
    assert (out / "a.txt").read_text() == "a\n"
    assert sorted(p.name for p in out.iterdir()) == ["a.txt", "sub"]


def test_a_file_given_as_a_symbolic_link_is_written_through(tmp_path: Path) -> None:
    real = atomic_write_text(tmp_path / "real.csv", "old\n")
    link = tmp_path / "link.csv"
    link.symlink_to(real)
    atomic_write_text(link, "new\n")
    assert link.is_symlink() and real.read_text() == "new\n"


def test_a_path_list_refuses_a_name_with_a_line_break() -> None:
    assert path_lines(["a.jpg", Path("b c.jpg")], "kept.txt") == "a.jpg\nb c.jpg\n"
    for name in ("evil\n.jpg", "evil\r.jpg"):
        with pytest.raises(DataError, match="removed.txt") as caught:
            path_lines(["a.jpg", f"dir/{name}"], "out/removed.txt")
        assert "\n" not in str(caught.value) and "rename" in str(caught.value)


def test_csv_cells_cannot_start_a_formula() -> None:
    assert spreadsheet_safe("=HYPERLINK(x)") == "'=HYPERLINK(x)"
    hostile = ("+1+1.jpg", "-x", "@SUM(A1)", "\tx")
    assert [spreadsheet_safe(c) for c in hostile] == ["'+1+1.jpg", "'-x", "'@SUM(A1)", "'\tx"]
    assert [spreadsheet_safe(c) for c in ("-0.5", "a=b", -0.5, 3)] == ["-0.5", "a=b", -0.5, 3]
    assert csv_text(["path_a", "score"], [["=1+2.jpg", -0.25]]) == "path_a,score\n'=1+2.jpg,-0.25\n"


def test_dedup_refuses_a_name_with_a_line_break_before_the_scan(tmp_path: Path, capsys) -> None:
    from conftest import write_image

    from hamkit.cli.main import main

    write_image(tmp_path / "images" / "a.png", random_state=1)
    write_image(tmp_path / "images" / "evil\nb.png", random_state=1)
    status = main(["dedup", str(tmp_path / "images"), "--out", str(tmp_path / "out"), "--method", "exact", "--quiet"])
    err = capsys.readouterr().err
    assert status == 1
    assert err.count("\n") == 1 and "evil\\nb.png" in err and "kept.txt" in err and "rename" in err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_dedup_results_name_each_file_on_one_line_and_csvs_are_spreadsheet_safe(tmp_path: Path, monkeypatch) -> None:
    from conftest import write_image

    from hamkit.cli.main import main

    write_image(tmp_path / "images" / "=HYPERLINK(x).png", random_state=1)
    write_image(tmp_path / "images" / "@copy.png", random_state=1)
    write_image(tmp_path / "images" / "other.png", random_state=2)
    out = tmp_path / "out"
    monkeypatch.chdir(tmp_path / "images")  # relative paths: the cells start with the names
    assert main(["dedup", ".", "--out", str(out), "--method", "exact", "--quiet"]) == 0
    pairs = (out / "pairs.csv").read_text().splitlines()
    assert len(pairs) == 2
    assert sorted(pairs[1].split(",")[:2]) == ["'=HYPERLINK(x).png", "'@copy.png"]
    assert not [p for p in out.iterdir() if p.name.startswith(".hamkit-staging")]
    kept = (out / "kept.txt").read_text().splitlines()
    assert len(kept) == 2 and all(Path(line).is_file() for line in kept)


def test_an_empty_list_file_is_named(tmp_path: Path) -> None:
    from hamkit.dedup.inputs import resolve_images

    empty = tmp_path / "list.txt"
    empty.write_text("\n  \n")
    with pytest.raises(DataError, match="list.txt: the list file names no images"):
        resolve_images(empty)


def test_the_segmentation_table_is_spreadsheet_safe() -> None:
    import numpy as np

    from hamkit.metrics import segmentation_report

    mask = np.zeros((4, 4), dtype=bool)
    mask[1:3, 1:3] = True
    rows = segmentation_report([mask, mask], [mask, mask], ["=cmd|x", "ISIC_1"]).to_csv().splitlines()
    assert rows[1].startswith("'=cmd|x,1.000000") and rows[2].startswith("ISIC_1,")


def test_out_as_a_dangling_symbolic_link_is_refused_before_the_work(tmp_path: Path, capsys) -> None:
    from hamkit.cli.main import main

    link = tmp_path / "out"
    link.symlink_to(tmp_path / "gone")
    with pytest.raises(SystemExit) as caught:
        main(["dedup", str(tmp_path), "--out", str(link), "--method", "exact"])
    err = capsys.readouterr().err
    assert caught.value.code == 2 and "symbolic link" in err and "gone" in err and "Traceback" not in err


def test_segment_skips_and_lists_an_image_whose_mask_name_is_too_long(tmp_path: Path) -> None:
    import numpy as np
    from PIL import Image

    from hamkit import LesionSegmenter

    seg = LesionSegmenter("smp:Unet:resnet18", image_size=32, pretrained=False, device="cpu")
    seg.network_ = seg._build(pretrained=False, weights=None).eval()
    images = tmp_path / "images"
    images.mkdir()
    long_id = "x" * 246  # the image's name fits in 255 bytes, <id>_segmentation.png does not
    for name in ("a0", long_id, "a1"):
        Image.fromarray(np.full((40, 50, 3), 90, np.uint8)).save(images / f"{name}.png")
    with pytest.warns(UserWarning, match=f"1 image\\(s\\) got no mask.*longer than the file system allows.*{long_id}"):
        written = seg.write_masks(images, tmp_path / "masks", batch_size=2)
    assert [p.name for p in written] == ["a0_segmentation.png", "a1_segmentation.png"]
    assert sorted(p.name for p in (tmp_path / "masks").iterdir()) == ["a0_segmentation.png", "a1_segmentation.png"]


def test_export_refuses_a_folder_as_out_before_any_work(tmp_path: Path, capsys) -> None:
    from hamkit.cli.main import main
    from hamkit.export import export_onnx

    folder = tmp_path / "exported"
    folder.mkdir()
    with pytest.raises(HamkitError, match="exported is a folder; give the ONNX file to write, e.g. .*model.onnx"):
        export_onnx(tmp_path / "no-model-needed", folder)  # refused before the model is read
    for out in (str(folder), str(tmp_path / "new") + "/"):
        with pytest.raises(SystemExit) as caught:
            main(["export", str(tmp_path / "model"), "--out", out])
        err = capsys.readouterr().err.splitlines()[-1]
        assert caught.value.code == 2 and "is a folder; give a file name, e.g." in err and "model.onnx" in err
    assert not (tmp_path / "new").exists() and not any(folder.iterdir())


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """``(data folder, saved classifier)``: 14 small images of 7 classes and a one-epoch model."""
    from conftest import write_image, write_metadata

    from hamkit import LesionClassifier, SkinDataset

    root = tmp_path_factory.mktemp("tiny") / "data"
    codes = ["mel", "nv", "bcc", "akiec", "bkl", "df", "vasc"]
    for i in range(14):
        write_image(root / "HAM10000_images_part_1" / f"ISIC_{i:07d}.jpg", random_state=i)
    write_metadata(root / "HAM10000_metadata.csv", [(f"L{i // 2}", f"ISIC_{i:07d}", codes[i % 7]) for i in range(14)])
    (root / "split.csv").write_text("image_id,split\n" + "".join(f"ISIC_{i:07d},test\n" for i in range(14)))
    clf = LesionClassifier("resnet18", image_size=32, pretrained=False, device="cpu")
    clf.set_params(recipe__epochs=1, recipe__batch_size=4).fit(
        SkinDataset.from_folder(root, image_size=32), progress=False
    )
    return root, clf.save(root.parent / "model")


def test_predict_into_a_symbolic_link_names_the_file_it_replaced(tiny_model, tmp_path: Path, capsys) -> None:
    from hamkit.cli.main import main

    data, model = tiny_model
    elsewhere = tmp_path / "elsewhere" / "predictions.csv"
    elsewhere.parent.mkdir()
    elsewhere.write_text("old\n")
    link = tmp_path / "p.csv"
    link.symlink_to(elsewhere)
    assert main(["predict", str(model), str(data), "--out", str(link), "--quiet", "--device", "cpu"]) == 0
    said = capsys.readouterr().out
    assert f"wrote 14 predictions to {link} (a symbolic link: wrote the file it points to, {elsewhere})" in said
    assert link.is_symlink() and elsewhere.read_text().startswith("image_id,prediction,")


def test_evaluate_writes_its_report_all_or_nothing(tiny_model, tmp_path: Path, monkeypatch, capsys) -> None:
    from hamkit.cli.main import main
    from hamkit.figures import classification

    data, model = tiny_model
    out = tmp_path / "report"

    def full(*args, **kwargs):  # the disk fills at the ROC figure, after report.json and two more
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(classification, "plot_roc_curves", full)
    argv = ["evaluate", str(model), "--data", str(data), "--split-csv", str(data / "split.csv"), "--out", str(out)]
    assert main([*argv, "--quiet", "--device", "cpu"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("hamkit evaluate: error: ") and "no space left" in err and err.count("\n") == 1
    assert ".hamkit-staging" not in err and str(out) in err
    assert list(out.iterdir()) == []  # not report.json and two figures without the rest


def test_a_full_disk_in_a_result_set_names_the_file_in_the_output_folder(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(DiskFullError) as caught, staged_folder(out) as stage:
        raise OSError(errno.ENOSPC, "No space left on device", str(stage / "kept.txt"))
    assert ".hamkit-staging" not in str(caught.value) and caught.value.errno == errno.ENOSPC
    with pytest.raises(DiskFullError) as caught, staged_folder(out) as stage:
        atomic_write_text(stage / "a.txt", "a\n")
        with staged_folder(stage) as inner:  # a result set saved inside a command's own
            atomic_path_error = OSError(errno.ENOSPC, "No space left on device")
            raise DiskFullError(f"{inner / 'kept.txt'}: cannot be written") from atomic_path_error
    assert str(caught.value).startswith(f"{out / 'kept.txt'}: cannot be written")
    assert list(out.iterdir()) == []


def test_a_full_disk_while_exporting_is_not_called_a_failed_trace(tmp_path: Path, monkeypatch) -> None:
    import warnings

    import torch

    from hamkit import export

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(export, "_export_dynamo", full)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "torch.export could not trace the network" line
        with pytest.raises(DiskFullError, match="model.onnx"):
            export._export(
                torch.nn.Identity(), torch.zeros(2, 3), tmp_path / "tmp", ["logits"], None, tmp_path / "model.onnx"
            )


_HOLD_A_STAGE = """
import sys, time
from hamkit._io import atomic_write_text, staged_folder

with staged_folder(sys.argv[1]) as stage:
    atomic_write_text(stage / "kept.txt", "half of a result set\\n")
    print("writing", flush=True)
    time.sleep(60)
"""


def test_a_result_set_killed_mid_write_is_cleaned_by_the_next_run(tmp_path: Path, capsys) -> None:
    import subprocess
    import sys

    from conftest import write_image

    from hamkit.cli.main import main

    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    writer = subprocess.Popen([sys.executable, "-c", _HOLD_A_STAGE, str(out)], env=env, stdout=subprocess.PIPE)
    assert writer.stdout is not None and writer.stdout.readline() == b"writing\n"
    writer.kill()  # kill -9: no handler runs, the staging folder stays
    writer.wait(timeout=30)
    (left,) = [p for p in out.iterdir() if p.name.startswith(".hamkit-staging-")]
    assert left.name.startswith(f".hamkit-staging-{writer.pid}@") and (left / "kept.txt").is_file()
    for i in range(3):
        write_image(tmp_path / "images" / f"img{i}.png", random_state=i)
    assert main(["dedup", str(tmp_path / "images"), "--out", str(out), "--method", "exact", "--quiet"]) == 0
    err = capsys.readouterr().err
    assert err == (
        f"hamkit dedup: warning: {out}: removed 1 unfinished result set(s) that an ended hamkit process left there "
        f"({left.name})\n"
    )
    assert not left.exists() and (out / "kept.txt").read_text().count("\n") == 3


def test_only_stale_staging_folders_of_hamkit_on_this_machine_are_removed(tmp_path: Path) -> None:
    import subprocess
    import sys
    import warnings

    from hamkit._io import _host, stale_stages

    out = tmp_path / "out"
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, check=True)
    dead = int(ended.stdout)
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        names = {
            "stale": f".hamkit-staging-{dead}@{_host()}-abc_12",
            "live": f".hamkit-staging-{alive.pid}@{_host()}-def34",
            "other machine": f".hamkit-staging-{dead}@another.host-gh56",
            "older format": ".hamkit-staging-x1y2z3",
            "not hamkit's": f".staging-{dead}@{_host()}-abc",
        }
        for name in names.values():
            (out / name).mkdir(parents=True)
        assert stale_stages(out) == [out / names["stale"]]
        with pytest.warns(UserWarning, match=f"removed 1 unfinished result set.*{names['stale']}"):
            with staged_folder(out) as stage:
                atomic_write_text(stage / "a.txt", "a\n")
        assert sorted(p.name for p in out.iterdir()) == sorted([*names.values(), "a.txt"][1:])
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # nothing stale any more: not a word
            with staged_folder(out) as stage:
                atomic_write_text(stage / "b.txt", "b\n")
    finally:
        alive.kill()
        alive.wait()
