"""The trainer halves its batch sizes until the estimated activations fit a budget."""

from __future__ import annotations

import torch

from nas.feed import ACTIVATION_BUDGET, MIN_BATCH, fit_batches
from nas.train import TrainConfig, train
from tests.test_train import _dataset

CPU = torch.device("cpu")
WIDE = "branch(clone(k=8),compute(linear(out=256)),cat(dim=2))"  # issue 14's 6.7 GB trial 0


def test_a_small_network_keeps_its_batches() -> None:
    cfg = TrainConfig(batch_size=128, eval_batch_size=1024)
    assert fit_batches(cfg, 10_000, CPU) is cfg


def test_batches_halve_to_the_budget() -> None:
    cfg = TrainConfig(batch_size=128, eval_batch_size=1024)
    act = 344_064  # WIDE on a 3x28x28 input, per sample
    out = fit_batches(cfg, act, CPU)
    assert out.batch_size == 128 and 8 * act * out.batch_size <= ACTIVATION_BUDGET
    assert out.eval_batch_size == 256 and 4 * act * out.eval_batch_size <= ACTIVATION_BUDGET
    tight = fit_batches(TrainConfig(max_activation_bytes=64 * 2**20), act, CPU)
    assert tight.batch_size == 16 and tight.eval_batch_size == 32


def test_never_below_the_minimum_and_no_limit_on_cuda() -> None:
    huge = fit_batches(TrainConfig(batch_size=256), 10**9, CPU)
    assert huge.batch_size == MIN_BATCH == huge.eval_batch_size
    cfg = TrainConfig()
    assert fit_batches(cfg, 10**9, torch.device("cuda")) is cfg


def test_train_records_the_batch_it_used() -> None:
    ds = _dataset(n_train=128)
    arch = WIDE
    cfg = TrainConfig.preset("quick", epochs=1, batch_size=64, max_activation_bytes=2**20)
    res = train(arch, ds, cfg)
    assert res.ok and res.batch_size == 8 and res.config["batch_size"] == 8
    assert res.steps_done == 128 // 8
    plain = train(arch, ds, TrainConfig.preset("quick", epochs=1, batch_size=64))
    assert plain.batch_size == 64 and plain.steps_done == 2


def test_a_module_given_as_such_fits_its_batches_too() -> None:
    """A baseline or a final retraining passes a built module: its activations are counted
    on one sample (the small CNN on the 3x64x64 shape-tile task took 2.1 GB at batch 128)."""
    from nas.searches.baselines import small_cnn

    from nas.feed import module_activation

    big, small = module_activation(small_cnn(3, 4), (3, 64, 64)), small_cnn(1, 10)
    assert big == 737_540 and module_activation(small, (1, 24, 24)) == 103_946
    ds = _dataset(n_train=64)
    cfg = TrainConfig.preset("quick", epochs=1, batch_size=64, max_activation_bytes=2**22)
    res = train(small_cnn(3, 4), ds, cfg)
    act = module_activation(small_cnn(3, 4), ds.input_shape)
    assert res.ok and res.batch_size < 64 and 8 * act * res.batch_size <= 2**22
