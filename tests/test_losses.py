"""Loss semantics: OHEM as in PaddleSeg, LiteSeg's summed loss and its SGD translation."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from bench.config import LossSpec
from bench.losses import (
    OhemCrossEntropy,
    SummedCrossEntropy,
    build_criterion,
    mean_loss_settings,
    weighted_loss,
)


def _reference_ohem(logits, labels, thresh, min_kept, ignore_index=255):
    """Straightforward re-statement of PaddleSeg's OhemCrossEntropyLoss, pixel by pixel."""
    c = logits.shape[1]
    prob = logits.softmax(1).permute(0, 2, 3, 1).reshape(-1, c)
    flat = labels.reshape(-1)
    losses, kept = [], []
    valid = [i for i in range(flat.numel()) if flat[i] != ignore_index]
    true_prob = {i: float(prob[i, flat[i]]) for i in valid}
    threshold = thresh
    if 0 < min_kept < len(valid):
        kth = sorted(true_prob.values())[min_kept - 1]
        threshold = max(thresh, kth)
        keep = [i for i in valid if true_prob[i] < threshold]
    else:
        keep = valid
    for i in keep:
        losses.append(-torch.log(prob[i, flat[i]]))
        kept.append(i)
    total = torch.stack(losses).sum() if losses else torch.tensor(0.0)
    return total / (len(kept) + 1e-5 * flat.numel())


@pytest.mark.parametrize("min_kept", [0, 5, 20, 1000])
def test_ohem_matches_pixelwise_reference(min_kept):
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 4, 5, 6, generator=generator) * 3
    labels = torch.randint(0, 4, (2, 5, 6), generator=generator)
    labels[0, 0, :3] = 255
    expected = _reference_ohem(logits, labels, thresh=0.7, min_kept=min_kept)
    actual = OhemCrossEntropy(thresh=0.7, min_kept=min_kept)(logits, labels)
    assert actual.item() == pytest.approx(expected.item(), rel=1e-5)


def test_ohem_keeps_only_hard_pixels_when_many_are_easy():
    logits = torch.zeros(1, 2, 1, 4)
    logits[0, 0, 0, :3] = 10.0  # three confident, correct pixels (p ~ 1)
    labels = torch.zeros(1, 1, 4, dtype=torch.long)  # last pixel: p = 0.5 (hard)
    loss = OhemCrossEntropy(thresh=0.7, min_kept=1)(logits, labels)
    assert loss.item() == pytest.approx(-torch.log(torch.tensor(0.5)).item(), rel=1e-4)


def test_ohem_min_kept_defaults_to_sixteenth_of_pixels():
    logits = torch.randn(1, 3, 8, 8)
    labels = torch.randint(0, 3, (1, 8, 8))
    default = OhemCrossEntropy(min_kept=None)(logits, labels)
    explicit = OhemCrossEntropy(min_kept=64 // 16)(logits, labels)
    assert default.item() == pytest.approx(explicit.item())


def test_ohem_gradients_flow_only_through_kept_pixels():
    logits = torch.zeros(1, 2, 1, 2, requires_grad=True)
    with torch.no_grad():
        logits[0, 0, 0, 0] = 10.0
    labels = torch.zeros(1, 1, 2, dtype=torch.long)
    OhemCrossEntropy(thresh=0.7, min_kept=1)(logits, labels).backward()
    assert torch.all(logits.grad[..., 0] == 0) and torch.any(logits.grad[..., 1] != 0)


def test_build_criterion_cross_entropy_ignores_index():
    criterion = build_criterion(LossSpec(kind="ce"), ignore_index=255)
    logits = torch.randn(1, 3, 2, 2)
    labels = torch.tensor([[[0, 255], [1, 2]]])
    mask = labels != 255
    expected = F.cross_entropy(logits.permute(0, 2, 3, 1)[mask], labels[mask])
    assert criterion(logits, labels).item() == pytest.approx(expected.item(), rel=1e-6)


def test_weighted_loss_sums_heads_with_their_weights():
    criterion = build_criterion(LossSpec(kind="ce"))
    labels = torch.randint(0, 3, (1, 4, 4))
    outputs = [torch.randn(1, 3, 4, 4) for _ in range(3)]
    expected = sum(w * criterion(o, labels) for w, o in zip((1.0, 0.5, 0.25), outputs, strict=True))
    actual = weighted_loss(criterion, outputs, labels, (1.0, 0.5, 0.25))
    assert actual.item() == pytest.approx(expected.item())
    with pytest.raises(ValueError, match="one weight per output"):
        weighted_loss(criterion, outputs, labels, (1.0,))


def test_summed_loss_is_pixel_sum_over_batch_size() -> None:
    torch.manual_seed(0)
    logits = torch.randn(3, 4, 5, 6)
    labels = torch.randint(0, 4, (3, 5, 6))
    labels[0, 0, :] = 255
    pixel = F.cross_entropy(logits, labels, ignore_index=255, reduction="none")
    expected = pixel[labels != 255].sum() / 3
    assert torch.allclose(SummedCrossEntropy()(logits, labels), expected)
    assert isinstance(build_criterion(LossSpec(reduction="sum_per_image")), SummedCrossEntropy)


OFFICIAL_LR, OFFICIAL_WD = 1e-7, 5e-4  # tahaemara/LiteSeg train.py


def _sgd_updates(loss_fn, lr: float, weight_decay: float, batches) -> list[torch.Tensor]:
    """Parameter changes of three real SGD steps (momentum 0.9) on a small float64 net."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 4, 1)).double()
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=weight_decay)
    before = [p.detach().clone() for p in model.parameters()]
    for images, labels in batches:
        optimizer.zero_grad()
        loss_fn(model(images), labels).backward()
        optimizer.step()
    return [p.detach() - b for p, b in zip(model.parameters(), before, strict=True)]


def test_mean_loss_settings_reproduce_summed_loss_sgd_steps() -> None:
    generator = torch.Generator().manual_seed(1)
    batches = [
        (
            torch.randn(2, 3, 6, 8, generator=generator, dtype=torch.float64),
            torch.randint(0, 4, (2, 6, 8), generator=generator),
        )
        for _ in range(3)
    ]
    pixels_per_image = 6 * 8  # no void pixels: N is constant, the translation exact
    official = _sgd_updates(SummedCrossEntropy(), OFFICIAL_LR, OFFICIAL_WD, batches)
    translated = mean_loss_settings(OFFICIAL_LR, OFFICIAL_WD, pixels_per_image)
    assert translated.lr == pytest.approx(OFFICIAL_LR * 48)
    assert translated.weight_decay == pytest.approx(OFFICIAL_WD / 48)
    mean = nn.CrossEntropyLoss(ignore_index=255)
    equivalent = _sgd_updates(mean, translated.lr, translated.weight_decay, batches)
    for ours, theirs in zip(equivalent, official, strict=True):
        assert torch.allclose(ours, theirs, rtol=1e-9, atol=1e-20)
    # Rescaling the learning rate alone makes the decay N times too strong: the steps
    # differ by about 1e-3 of their size here, six orders above the tolerance above.
    lr_only = _sgd_updates(mean, translated.lr, OFFICIAL_WD, batches)
    difference = max((a - b).abs().max() for a, b in zip(lr_only, official, strict=True))
    assert difference > 1e-4 * max(b.abs().max() for b in official)


def test_mean_loss_settings_need_pixels() -> None:
    with pytest.raises(ValueError, match="pixels_per_image"):
        mean_loss_settings(1e-7, 5e-4, 0)
