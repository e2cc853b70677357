"""CamVid download from file:// mirrors: checksums, atomic writes, resuming."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from bench.cli import main
from bench.data.download import download_camvid
from bench.errors import DatasetError

PAIRS = [("train/a.png", "trainannot/a.png"), ("train/b.png", "trainannot/b.png")]


@pytest.fixture
def mirror(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A CamVid-like folder of arbitrary bytes and its manifest (download does not decode)."""
    folder = tmp_path / "mirror"
    lines = [f"/SegNet/CamVid/{image} /SegNet/CamVid/{label}" for image, label in PAIRS]
    files = {"train.txt": ("\n".join(lines) + "\n").encode()}
    for index, relative in enumerate(name for pair in PAIRS for name in pair):
        files[relative] = os.urandom(1000 + index)
    for relative, content in files.items():
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        (folder / relative).write_bytes(content)
    manifest = {
        relative: hashlib.sha256(content).hexdigest() for relative, content in files.items()
    }
    return folder, manifest


def _download(root: Path, mirror: tuple[Path, dict[str, str]]):
    folder, manifest = mirror
    return download_camvid(root, base_url=folder.as_uri(), splits=("train",), manifest=manifest)


def test_download_then_resume_skips_verified_files(tmp_path: Path, mirror) -> None:
    root = tmp_path / "data"
    summary = _download(root, mirror)
    assert (summary.downloaded, summary.skipped) == (5, 0)
    for relative in mirror[1]:
        assert (root / "camvid" / relative).read_bytes() == (mirror[0] / relative).read_bytes()
    (root / "camvid" / "train" / "a.png").unlink()
    (root / "camvid" / "trainannot" / "b.png").write_bytes(b"damaged")
    summary = _download(root, mirror)
    assert (summary.downloaded, summary.skipped) == (2, 3)
    assert (root / "camvid" / "trainannot" / "b.png").read_bytes() == (
        mirror[0] / "trainannot" / "b.png"
    ).read_bytes()


def test_checksum_mismatch_names_the_file_and_keeps_nothing(tmp_path: Path, mirror) -> None:
    (mirror[0] / "train" / "b.png").write_bytes(b"tampered")
    root = tmp_path / "data"
    with pytest.raises(
        DatasetError, match=r"train/b\.png: checksum mismatch \(expected [0-9a-f]{64}"
    ):
        _download(root, mirror)
    camvid = root / "camvid"
    assert not (camvid / "train" / "b.png").exists()
    assert (camvid / "train" / "a.png").is_file()  # the good files are kept
    assert list(camvid.rglob("*.part")) == []


def test_missing_source_file_and_unlisted_file(tmp_path: Path, mirror) -> None:
    (mirror[0] / "trainannot" / "a.png").unlink()
    with pytest.raises(DatasetError, match=r"trainannot/a\.png: cannot fetch file://"):
        _download(tmp_path / "one", mirror)
    folder, manifest = mirror
    del manifest["train/a.png"]
    with pytest.raises(DatasetError, match=r"train/a\.png: no checksum in the manifest"):
        _download(tmp_path / "two", (folder, manifest))


def test_download_option_is_camvid_only(tmp_path: Path, capsys) -> None:
    code = main(["data", "check", "cityscapes", "--data-root", str(tmp_path), "--download"])
    assert code == 2
    assert "--download supports camvid only" in capsys.readouterr().err
    assert main(["data", "check", "camvid", "--data-root", str(tmp_path), "--url", "x"]) == 2


def test_cli_download_val_from_reference_copy(tmp_path: Path, capsys) -> None:
    source = Path(os.environ.get("LITESEG_BENCH_DATA", "/nonexistent")) / "camvid"
    if not source.is_dir():
        pytest.skip("real-data test: set LITESEG_BENCH_DATA to the folder holding camvid/")
    argv = ["data", "check", "camvid", "--data-root", str(tmp_path), "--split", "val"]
    assert main([*argv, "--download", "--url", source.as_uri()]) == 0
    out = capsys.readouterr().out
    assert "downloaded 203 file(s), 0 already verified" in out
    assert "OK: 101 samples decoded and validated" in out
