"""The trainer and tasks: learning, failures as records, budgets, determinism, normalisation."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import torch
from torch import nn

from nas.data.base import Dataset, Split
from nas.exceptions import ConfigurationError, ShapeError, UnknownNameError
from nas.feed import channel_stats
from nas.tasks import ClassificationTask, compile_for_task, task_for
from nas.train import PRESETS, StopTraining, TrainConfig, TrainResult, train

CONV = (
    "seq(route(im2col(k=3,s=1,p=1),compute(linear(out=16)),col2im),"
    "seq(compute(norm),compute(leakyrelu)))"
)
CENTRES = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [-1, -1, -1]], dtype=np.float64) * 0.5


def _split(n: int, rng: np.random.Generator, shift: float = 0.0) -> Split:
    """Four classes whose per-channel means differ; pixels carry unit Gaussian noise."""
    y = rng.integers(0, 4, n)
    x = CENTRES[y][:, :, None, None] + rng.normal(0.0, 1.0, (n, 3, 8, 8))
    return Split((2.0 * x + 5.0 + shift).astype(np.float32), y.astype(np.int64))


def _dataset(n_train: int = 512, valid_shift: float = 0.0) -> Dataset:
    rng = np.random.default_rng(0)
    train_, valid, test = _split(n_train, rng), _split(256, rng, valid_shift), _split(256, rng)
    return Dataset("synthetic", (3, 8, 8), 4, train_, valid, test, "gaussian clusters")


@pytest.fixture(scope="module")
def ds() -> Dataset:
    return _dataset()


def _quick(**kw) -> TrainConfig:
    return TrainConfig.preset("quick", **{"epochs": 5, "batch_size": 64, "lr": 1e-2, **kw})


def test_learns_a_linear_task(ds: Dataset) -> None:
    res = train(CONV, ds, _quick())
    assert res.status == "ok" and res.ok and res.reason == ""
    assert res.valid["accuracy"] > 0.9 and res.test["accuracy"] > 0.9
    assert res.fitness == res.valid["accuracy"]
    assert res.epochs_done == 5 and len(res.history) == 5 and res.steps_done == 40
    assert res.best_epoch in range(1, 6) and res.best_valid["accuracy"] >= res.fitness
    assert res.params == 3 * 9 * 16 + 16 + 2 * 16 + 16 * 4 + 4
    assert res.flops and res.flops > 0 and res.images_per_s > 0 and res.arch


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")
def test_divergence_is_a_record_not_an_exception(ds: Dataset) -> None:
    res = train(CONV, ds, _quick(optimizer="sgd", lr=1e10))
    assert res.status == "diverged" and not res.ok and "non-finite" in res.reason
    assert res.fitness is None
    bad = _dataset()
    bad.train.x[3, 0, 0, 0] = np.inf
    assert train(CONV, bad, _quick(epochs=1)).status == "diverged"


class _Raises(nn.Module):
    def __init__(self, message: str) -> None:
        super().__init__()
        self.fc = nn.Linear(1, 1)
        self.message = message

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError(self.message)


def test_oom_and_torch_errors_are_records(ds: Dataset) -> None:
    res = train(_Raises("CUDA out of memory. Tried to allocate 2 GiB"), ds, _quick())
    assert res.status == "oom" and "out of memory" in res.reason and res.flops is None
    res = train(_Raises("mat1 and mat2 shapes cannot be multiplied"), ds, _quick())
    assert res.status == "failed" and "mat1" in res.reason


def test_time_budget_stops_cleanly_and_still_evaluates() -> None:
    big = _dataset(n_train=4096)
    res = train(CONV, big, _quick(epochs=1000, time_budget_s=0.5))
    assert res.status == "timeout" and res.ok and "time budget" in res.reason
    assert 0 < res.epochs_done < 1000
    assert res.valid["accuracy"] > 0.5 and "accuracy" in res.test
    assert res.history[-1]["steps"] == res.steps_done  # valid metrics are of the final weights


class _SlowToEvaluate(nn.Module):
    """A linear classifier whose every evaluation batch takes 0.3 CPU s (a huge network)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3 * 8 * 8, 4)
        with torch.no_grad():  # always class 0, frozen
            self.fc.weight.zero_()
            self.fc.bias.copy_(torch.tensor([1.0, 0.0, 0.0, 0.0]))
        self.fc.requires_grad_(False)
        self.trained = nn.Parameter(torch.zeros(()))  # the optimiser needs one parameter

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:  # busy, as a big network is: the cap counts CPU seconds
            t = time.process_time()
            while time.process_time() - t < 0.3:
                pass
        return self.fc(x.flatten(1)) + 0 * self.trained


def test_a_timed_out_trial_evaluates_within_a_grace_not_for_ever() -> None:
    """A network too slow to evaluate must not stretch a 1 s trial to many seconds: once the
    budget is spent, each evaluation gets a grace of max(2 s, budget / 4) and scores the
    batches it reached (samples spread over the whole split)."""
    data = _dataset(n_train=4096)
    order = np.argsort(data.valid.y, kind="stable")  # a split sorted by class
    data.valid.x[:], data.valid.y[:] = data.valid.x[order], data.valid.y[order]
    cfg = _quick(epochs=1000, time_budget_s=1.0, eval_batch_size=8)
    start = time.perf_counter()
    res = train(_SlowToEvaluate(), data, cfg)
    wall = time.perf_counter() - start
    assert res.status == "timeout" and wall < 1.0 + 2 * 2.0 + 1.5, wall  # 32 batches = 9.6 s
    assert 8 <= res.valid["images"] < 256 and 8 <= res.test["images"] < 256
    assert res.history[-1]["valid_images"] == res.valid["images"]
    # always-class-0 on the first (sorted) samples would score 1.0; spread samples ~ 0.25
    share = float(np.mean(data.valid.y == 0))
    assert abs(res.valid["accuracy"] - share) < 0.2, (res.valid, share)
    full = train(_SlowToEvaluate(), data, _quick(epochs=1, eval_batch_size=128))
    assert "images" not in full.valid and "images" not in full.test  # no budget: everything
    assert full.valid["accuracy"] == pytest.approx(share)


def test_same_seed_same_metrics(ds: Dataset) -> None:
    a, b = (train(CONV, ds, _quick(epochs=2, seed=3)) for _ in range(2))
    c = train(CONV, ds, _quick(epochs=2, seed=4))
    assert a.valid == b.valid and a.test == b.test
    assert [h["train_loss"] for h in a.history] == [h["train_loss"] for h in b.history]
    assert a.valid != c.valid


def test_normalisation_uses_train_statistics_only(tmp_path) -> None:
    ds = _dataset(valid_shift=10.0)
    np.save(tmp_path / "x.npy", ds.train.x)
    ds.train.x = np.load(tmp_path / "x.npy", mmap_mode="r")  # read-only memmap
    res = train(CONV, ds, _quick(epochs=1))
    mean, std = ds.train.x.mean(axis=(0, 2, 3)), ds.train.x.std(axis=(0, 2, 3))
    np.testing.assert_allclose(res.normalisation["mean"], mean, rtol=1e-5)
    np.testing.assert_allclose(res.normalisation["std"], std, rtol=1e-4)
    assert abs(ds.valid.x.mean() - mean.mean()) > 9  # valid differs; its stats were unused
    streamed = train(CONV, ds, _quick(epochs=1, max_resident_bytes=0))
    assert streamed.valid["accuracy"] == pytest.approx(res.valid["accuracy"], abs=0.02)
    m, s = channel_stats(np.ones((5, 2, 3), np.float32))
    assert m.tolist() == [1, 1, 1] and s.tolist() == [1, 1, 1]  # features last; constant: 1


def test_result_round_trips_through_json(ds: Dataset) -> None:
    res = train(CONV, ds, _quick(epochs=1))
    back = TrainResult.from_dict(json.loads(res.to_json()))
    assert back == res and back.to_dict() == res.to_dict()


def test_on_epoch_can_stop_training(ds: Dataset) -> None:
    seen: list[tuple[int, float]] = []

    def stop_after_two(epoch: int, metrics: dict[str, float]) -> bool:
        seen.append((epoch, metrics["valid_accuracy"]))
        return epoch < 2

    res = train(CONV, ds, _quick(), on_epoch=stop_after_two)
    assert res.status == "stopped" and res.epochs_done == 2 and [e for e, _ in seen] == [1, 2]
    assert res.valid == res.best_valid or res.best_epoch == 1
    assert "accuracy" in res.test

    def raise_stop(epoch: int, metrics: dict[str, float]) -> None:
        raise StopTraining("pruned by ASHA at rung 0")

    res = train(CONV, ds, _quick(), on_epoch=raise_stop)
    assert res.status == "stopped" and res.epochs_done == 1 and "ASHA" in res.reason


def test_config_and_presets() -> None:
    ein = PRESETS["einspace"]
    assert (ein.optimizer, ein.lr, ein.momentum, ein.weight_decay) == ("sgd", 0.04, 0.9, 3e-4)
    assert (ein.batch_size, ein.epochs, ein.schedule) == (256, 8, "cosine")
    assert TrainConfig.preset("einspace-final").epochs == 64
    with pytest.raises(ConfigurationError, match="optimizer"):
        TrainConfig(optimizer="adam")
    with pytest.raises(ConfigurationError, match="time_budget_s"):
        TrainConfig(time_budget_s=0)
    with pytest.raises(UnknownNameError, match="preset"):
        TrainConfig.preset("fast")
    with pytest.raises(ConfigurationError, match="epoch"):
        TrainConfig.preset("quick", epoch=3)


def test_classification_task(ds: Dataset) -> None:
    task = task_for(ds, label_smoothing=0.1)
    assert isinstance(task, ClassificationTask) and task.label_smoothing == 0.1
    outputs = torch.eye(8)[[0, 1, 2, 3]] * 10 - torch.arange(8.0)  # class 7 ranks last
    m = ClassificationTask(8).metrics(outputs, torch.tensor([0, 1, 2, 7]))
    assert m["accuracy"] == 0.75 and m["top5"] == 0.75 and "loss" in m
    assert "top5" not in task.metrics(torch.zeros(2, 4), torch.tensor([0, 1]))
    assert task.trivial_baseline(np.array([1, 1, 2]), np.array([1, 2]))["accuracy"] == 0.5
    net = compile_for_task(CONV, (3, 8, 8), task)
    assert net(torch.zeros(2, 3, 8, 8)).shape == (2, 4)
    with pytest.raises(ShapeError, match="im2col"):
        compile_for_task(
            "route(im2col(k=9,s=1,p=0),compute(linear(out=4)),col2im)", (3, 8, 8), task
        )
    with pytest.raises(UnknownNameError, match="regression"):
        task_for(Dataset("d", (1,), 0, ds.train, ds.valid, ds.test, "", task="regression"))
    with pytest.raises(ConfigurationError):
        ClassificationTask(1)


def test_schedules_and_eval_every(ds: Dataset) -> None:
    per_step = train(CONV, ds, _quick(epochs=2, schedule_unit="step", eval_every=0))
    assert len(per_step.history) == 1 and per_step.history[0]["epoch"] == 2
    assert per_step.history[0]["lr"] < 1e-4  # cosine per step reaches ~0 at the last step
    per_epoch = train(CONV, ds, _quick(epochs=2))
    assert [h["lr"] for h in per_epoch.history] == pytest.approx([1e-2, 5e-3])
    constant = train(CONV, ds, _quick(epochs=2, schedule="constant"))
    assert [h["lr"] for h in constant.history] == [1e-2, 1e-2]
