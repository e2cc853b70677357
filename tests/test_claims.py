"""The claims registry, seed pairing, and the claims / --resolve-claims commands."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from bench.claims import claims_for, load_claims
from bench.config import load_suite, resolve_runs
from bench.distributed import DistContext
from bench.errors import ConfigError
from bench.layout import RunLayout
from bench.train import Trainer

SUITE = """
name = "claims-test"
seeds = [0, 1]

[protocol.data]
dataset = "synthetic"

[protocol.train]
iters = 2
batch_size = 2
eval_every = 0

[protocol.profile]
flops_sizes = []
runtimes = ["torch"]
repeats = 2
warmup = 1

[[variants]]
name = "spatial"
model = "pp_liteseg_t"

[[variants]]
name = "add"
model = "pp_liteseg_t"
overrides = { fusion = "add" }
reference = "spatial"
group = "fusion"
"""

CLAIMS = """
[[claims]]
id = "test.fusion"
paper = "test"
source = "test table"
statement = "attention beats add"
metric = "miou"
paper_effect = {effect}
paper_setting = "test"
tests = [{{ suite = "claims-test", better = "spatial", than = "{than}" }}]
"""


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bench.cli", *args], capture_output=True, text=True, timeout=900
    )


def test_every_registered_claim_is_tested_in_camvid_quick():
    claims = load_claims()
    tested = claims_for(load_suite("camvid-quick"), claims)
    assert {claim.id for claim, _ in tested} == {claim.id for claim in claims}
    assert {claim.metric for claim in claims} == {"miou", "latency"}


def test_a_claim_naming_a_missing_variant_is_refused(tmp_path):
    path = tmp_path / "claims.toml"
    path.write_text(CLAIMS.format(effect=1.0, than="no-such-variant"), encoding="utf-8")
    (tmp_path / "suite.toml").write_text(SUITE, encoding="utf-8")
    with pytest.raises(ConfigError, match=r"test\.fusion.*no variant 'no-such-variant'"):
        claims_for(load_suite(tmp_path / "suite.toml"), load_claims([path]))


def test_a_malformed_claims_file_names_file_and_key(tmp_path):
    path = tmp_path / "claims.toml"
    path.write_text(CLAIMS.format(effect=1.0, than="add").replace("miou", "speed"), "utf-8")
    with pytest.raises(ConfigError, match=r"claims\.toml.*metric"):
        load_claims([path])


def test_seed_pairs_see_the_same_batches_whatever_the_model(tmp_path):
    """The paired design: one seed gives both arms the same data order and augmentation."""
    suite_file = tmp_path / "suite.toml"
    suite_file.write_text(SUITE, encoding="utf-8")
    runs = resolve_runs(load_suite(suite_file))
    context = DistContext(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))

    def batches(variant: str, seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        config = next(r for r in runs if r.variant == variant and r.seed == seed)
        trainer = Trainer(config, RunLayout(tmp_path / variant), tmp_path, context, progress=False)
        loader = trainer._train_loader()
        return [batch for batch, _ in zip(loader, range(2), strict=False)]

    spatial, add = batches("spatial", 0), batches("add", 0)
    for (images_a, labels_a), (images_b, labels_b) in zip(spatial, add, strict=True):
        assert torch.equal(images_a, images_b) and torch.equal(labels_a, labels_b)
    other_seed = batches("add", 1)
    assert not torch.equal(other_seed[0][0], spatial[0][0])


@pytest.mark.long
def test_resolve_claims_extends_a_claim_once_and_judges_it_at_97_5(tmp_path):
    suite_file, claims_file = tmp_path / "suite.toml", tmp_path / "claims.toml"
    # One seed: the claim has no interval yet, so --resolve-claims must give it a second
    # pair; that second look is its last.
    suite_file.write_text(SUITE.replace("seeds = [0, 1]", "seeds = [0]"), encoding="utf-8")
    claims_file.write_text(CLAIMS.format(effect=1.0, than="add"), encoding="utf-8")
    out = tmp_path / "out"
    common = ["--out", str(out), "--claims", str(claims_file)]
    run = _cli(
        "run", str(suite_file), *common, "--data-root", str(tmp_path), "--device", "cpu",
        "--no-progress", "--resolve-claims", "3",
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    added = json.loads((out / "claims-test" / "added_seeds.json").read_text())
    assert added == {"add": [1], "spatial": [1]}
    verdicts = _cli("claims", str(suite_file), *common, "--json")
    assert verdicts.returncode == 0, verdicts.stderr[-3000:]
    (claim,) = json.loads(verdicts.stdout)
    assert (claim["pairs"], claim["extended"], claim["confidence"]) == (2, True, 0.975)
    assert claim["ci_low"] is not None and claim["test_set_term"] is True
    status = _cli("status", str(suite_file), "--out", str(out))
    assert "4 done" in status.stdout
    table = _cli("claims", str(suite_file), *common)
    assert "test.fusion" in table.stdout and "(97.5 %)" in table.stdout


def test_resolve_claims_needs_two_seeds(tmp_path):
    suite_file = tmp_path / "suite.toml"
    suite_file.write_text(SUITE, encoding="utf-8")
    result = _cli(
        "run", str(suite_file), "--out", str(tmp_path / "out"), "--data-root", str(tmp_path),
        "--device", "cpu", "--resolve-claims", "1",
    )  # fmt: skip
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "--resolve-claims 1: needs at least 2 seeds" in result.stderr
