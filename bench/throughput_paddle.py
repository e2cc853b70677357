"""PaddleSeg's own PP-LiteSeg-T training step, timed on request for :mod:`bench.throughput`.

Run by path (``python bench/throughput_paddle.py``) in an interpreter that has paddlepaddle
and paddleseg; it imports nothing of this project and no torch. It stays alive for a whole
interleaved session and speaks one JSON object per line:

- in: the settings (``batch``: an ``.npz`` with ``images`` float32 NCHW and ``labels``
  int64 NHW; ``threads``, ``num_classes``, ``ignore_index``, ``coef``, ``lr``, ``end_lr``,
  ``power``, ``warmup_iters``, ``warmup_start_lr``, ``momentum``, ``weight_decay``,
  ``iters``);
- out: ``{"paddle": VERSION, "paddleseg": VERSION}`` once built, or ``{"error": TEXT}``;
- then, per request ``{"steps": K}``: K steps on the fixed batch, answered
  ``{"seconds": S}`` (wall time of the K steps, measured here); end of input ends it.

The model is ``configs/pp_liteseg/pp_liteseg_stdc1_camvid_960x720_10k.yml`` (PPLiteSeg,
STDC1, ``arm_out_chs [32, 64, 128]``, ``seg_head_inter_chs [32, 64, 64]``), from scratch.
The optimizer and schedule are built as ``paddleseg/cvlibs/builder.py`` builds them (SGD
with momentum becomes ``Momentum``; ``PolynomialDecay`` over ``iters - warmup_iters``
inside ``LinearWarmup``); the step is that of ``paddleseg/core/train.py`` (2.8.0, fp32,
one GPU): forward, ``loss_computation``, ``sum``, ``backward``, ``optimizer.step``,
``lr_sche.step``, ``model.clear_gradients``, ``float(loss)``.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
from typing import Any, TextIO


def cross_entropy_loss(ignore_index: int) -> Any:
    """PaddleSeg's ``CrossEntropyLoss`` for every head.

    PaddleSeg 2.8.0's ``OhemCrossEntropyLoss`` (camvid-quick's loss) cannot run on Paddle
    >= 3.0: it adds an int64 mask to float32 probabilities, which Paddle refuses ("Type
    promotion only support calculations between floating-point numbers"; PaddleSeg fixed
    such mixes after 2.8.0). Its plain cross entropy stands in: the loss is about 6 % of
    this step (forward and backward take 3.06 s of 3.24 s on a 2-core AMD EPYC).
    """
    from paddleseg.models.losses import CrossEntropyLoss

    return CrossEntropyLoss(ignore_index=ignore_index)


def build(settings: dict[str, Any]) -> Any:
    """The step function of PaddleSeg's trainer for ``settings`` (see the module docstring)."""
    import numpy as np
    import paddle
    from paddleseg.models import PPLiteSeg
    from paddleseg.models.backbones import STDC1
    from paddleseg.optimizers import Momentum

    paddle.set_device("cpu")
    paddle.base.core.set_num_threads(settings["threads"])
    paddle.seed(0)
    # paddleseg.core re-exports the function train(), which hides the module of that name.
    loss_computation = importlib.import_module("paddleseg.core.train").loss_computation
    model = PPLiteSeg(
        num_classes=settings["num_classes"],
        backbone=STDC1(),
        arm_out_chs=[32, 64, 128],
        seg_head_inter_chs=[32, 64, 64],
    )
    model.train()
    decay = paddle.optimizer.lr.PolynomialDecay(
        learning_rate=settings["lr"],
        decay_steps=max(settings["iters"] - settings["warmup_iters"], 1),
        end_lr=settings["end_lr"],
        power=settings["power"],
    )
    lr_sche = paddle.optimizer.lr.LinearWarmup(
        learning_rate=decay,
        warmup_steps=settings["warmup_iters"],
        start_lr=settings["warmup_start_lr"],
        end_lr=settings["lr"],
    )
    optimizer = Momentum(momentum=settings["momentum"], weight_decay=settings["weight_decay"])(
        model, lr_sche
    )
    criterion = cross_entropy_loss(settings["ignore_index"])
    losses = {"types": [criterion] * len(settings["coef"]), "coef": settings["coef"]}
    with np.load(settings["batch"]) as batch:
        images = paddle.to_tensor(batch["images"])
        labels = paddle.to_tensor(batch["labels"])

    def step() -> float:
        logits_list = model(images)
        loss_list = loss_computation(
            logits_list=logits_list, labels=labels, edges=None, losses=losses
        )
        loss = sum(loss_list)
        loss.backward()
        optimizer.step()
        lr_sche.step()
        model.clear_gradients()
        return float(loss)

    return step


def _protocol_channel() -> TextIO:
    """The original stdout, for replies only; what Paddle or PaddleSeg print goes to stderr."""
    channel = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    sys.stdout = sys.stderr
    return channel


def main() -> None:
    """Serve the protocol of the module docstring on stdin/stdout."""
    channel = _protocol_channel()

    def reply(message: dict[str, Any]) -> None:
        channel.write(json.dumps(message) + "\n")
        channel.flush()

    settings = json.loads(sys.stdin.readline())
    try:
        step = build(settings)
    except Exception as error:  # any failure to build is reported, not raised: the caller skips
        reply({"error": f"{type(error).__name__}: {error}"})
        return
    import paddle
    import paddleseg

    reply({"paddle": paddle.__version__, "paddleseg": paddleseg.__version__})
    for line in sys.stdin:
        steps = json.loads(line)["steps"]
        started = time.perf_counter()
        for _ in range(steps):
            step()
        reply({"seconds": time.perf_counter() - started})


if __name__ == "__main__":
    main()
