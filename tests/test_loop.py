"""The one training loop: statuses, budgets, failures, hooks, schedules, gradient aids."""

from __future__ import annotations

import json
import math

import pytest
import torch
import zoo_toy
from nas.zoo import config_from_arch
from nas.zoo._fit import FitConfig, minibatches, run_epochs
from torch import nn

from nas.exceptions import ConfigurationError, ShapeError
from nas.loop import LoopConfig, StopTraining, run_loop

X = torch.linspace(-1, 1, 64).reshape(-1, 1)
Y = 3 * X - 1


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Linear(1, 1)


def _batches(epoch: int) -> list[torch.Tensor]:
    return minibatches(64, 16, epoch)


def _mse(model: nn.Module, idx: torch.Tensor) -> torch.Tensor:
    return ((model(X[idx]) - Y[idx]) ** 2).mean()


def _score(model: nn.Module):
    return lambda: {"mse": float(((model(X) - Y) ** 2).mean())}


def test_a_finished_run_is_ok_with_its_history() -> None:
    model = _model()
    res = run_loop(model, _batches, _mse, LoopConfig(epochs=3, lr=0.1), validate=_score(model))
    assert res.status == "ok" and res.ok and res.reason == ""
    assert res.epochs_done == 3 and res.epochs == 3 and res.steps_done == 12
    assert [h["epoch"] for h in res.history] == [1, 2, 3]
    assert [h["steps"] for h in res.history] == [4, 8, 12]
    assert res.history[-1]["mse"] < res.history[0]["mse"] < 10
    assert [h["lr"] for h in res.history] == pytest.approx([0.1, 0.075, 0.025])
    assert not model.training  # left in eval mode


def test_a_budget_that_ends_the_last_epoch_is_a_timeout_with_partial_metrics() -> None:
    # The zoo loop used to call this "ok": one epoch, and the budget ran out inside it.
    model = _model()
    cfg = LoopConfig(epochs=1, lr=0.1, time_budget_s=1e-9)
    res = run_loop(model, _batches, _mse, cfg, validate=_score(model), steps_per_epoch=4)
    assert res.status == "timeout" and res.ok
    assert res.reason == "time budget of 1e-09 CPU s reached after 0.25 of 1 epochs."
    assert res.steps_done == 1 and res.epochs_done == 0.25 and res.epochs == 1
    assert res.history[-1]["steps"] == 1 and math.isfinite(res.history[-1]["mse"])


def test_the_zoo_adapter_reports_timeouts_too() -> None:
    model = _model()
    cfg = FitConfig(epochs=5, lr=0.1, time_budget_s=1e-9)
    log = run_epochs(model, _batches, _mse, cfg, evaluate=_score(model))
    assert log.status == "timeout" and "time budget" in log.reason
    assert log.steps_done == 1 and "mse" in log.history[-1]


@pytest.mark.parametrize(
    ("error", "status", "reason"),
    [
        (RuntimeError("boom\nsecond line"), "failed", "RuntimeError: boom"),
        (ValueError("bad value"), "failed", "ValueError: bad value"),
        (MemoryError("no room"), "oom", "MemoryError: no room"),
        (RuntimeError("CUDA out of memory. Tried"), "oom", "RuntimeError: CUDA out of memory."),
    ],
)
def test_an_error_inside_a_run_is_a_record(error, status, reason) -> None:
    def loss(model: nn.Module, idx: torch.Tensor) -> torch.Tensor:
        if res_steps[0] == 5:
            raise error
        res_steps[0] += 1
        return _mse(model, idx)

    res_steps = [0]
    res = run_loop(_model(), _batches, loss, LoopConfig(epochs=3))
    assert res.status == status and not res.ok and res.reason.startswith(reason)
    assert "\n" not in res.reason and res.steps_done == 5 and res.seconds > 0


def test_a_user_mistake_is_raised() -> None:
    def loss(model: nn.Module, idx: torch.Tensor) -> torch.Tensor:
        raise ShapeError("wrong shape")

    with pytest.raises(ShapeError):
        run_loop(_model(), _batches, loss, LoopConfig(epochs=1))


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")
def test_divergence() -> None:
    res = run_loop(_model(), _batches, lambda m, i: _mse(m, i) * math.inf, LoopConfig(epochs=2))
    assert res.status == "diverged" and res.reason == "non-finite training loss in epoch 1."
    assert res.steps_done == 1 and res.history == []


def test_on_epoch_is_one_based_and_can_stop() -> None:
    seen = []

    def on_epoch(epoch: int, entry: dict[str, float]) -> None:
        seen.append((epoch, entry["epoch"]))
        if epoch == 2:
            raise StopTraining("enough")

    res = run_loop(_model(), _batches, _mse, LoopConfig(epochs=5), on_epoch=on_epoch)
    assert seen == [(1, 1), (2, 2)] and res.status == "stopped" and res.reason == "enough"
    res = run_loop(_model(), _batches, _mse, LoopConfig(epochs=5), on_epoch=lambda e, m: False)
    assert res.status == "stopped" and res.reason == "stopped by callback after epoch 1."


def test_schedules_and_options() -> None:
    step = LoopConfig(epochs=2, lr=0.1, schedule_unit="step", eval_every=0)
    res = run_loop(_model(), _batches, _mse, step, steps_per_epoch=4)
    assert len(res.history) == 1 and res.history[0]["lr"] < 0.01
    with pytest.raises(ConfigurationError, match="steps per epoch"):
        run_loop(_model(), _batches, _mse, step)
    with pytest.raises(ConfigurationError, match="optimizer must be one of sgd, adamw"):
        LoopConfig(epochs=1, optimizer="adam")


def test_gradient_clipping_bounds_the_step() -> None:
    model = _model()
    before = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
    cfg = LoopConfig(epochs=1, optimizer="sgd", lr=1.0, momentum=0.0, grad_clip=1e-3)
    run_loop(model, lambda e: [torch.arange(64)], lambda m, i: 1e3 * _mse(m, i), cfg)
    after = torch.cat([p.detach().flatten() for p in model.parameters()])
    assert float((after - before).norm()) == pytest.approx(1e-3, rel=1e-4)


def test_task_losses_are_weighted() -> None:
    model = _model()

    def two(m: nn.Module, idx: torch.Tensor) -> list[torch.Tensor]:
        return [_mse(m, idx), 0.0 * m(X[idx]).sum() + 5.0]

    cfg = LoopConfig(epochs=2, n_tasks=2, weighting="fixed", task_weights=[1.0, 2.0])
    res = run_loop(model, _batches, two, cfg)
    assert res.task_weights == [1.0, 2.0]
    assert res.history[-1]["train_loss"] > 10  # 2 * 5 is part of every step's loss
    unc = run_loop(
        _model(), _batches, two, LoopConfig(epochs=2, n_tasks=2, weighting="uncertainty")
    )
    assert unc.task_weights is not None and unc.task_weights != [1.0, 1.0]


def test_zoo_search_with_a_tiny_trial_time_records_timeouts(tmp_path) -> None:
    from nas.searches import Search, SearchConfig
    from nas.searches.store import open_run

    run = tmp_path / "run"
    cfg = SearchConfig(
        space="zoo:toyzoo",
        strategy="rs",
        trials=2,
        epochs=3,
        trial_time=1e-6,
        final_epochs=1,
    )
    Search(cfg, run).run()
    _, store = open_run(run)
    records = store.records()
    assert len(records) == 2 and {r.status for r in records} == {"timeout"}
    for r in records:
        assert "time budget" in r.reason and "r2" in r.metrics["valid"]
        assert r.metrics["epochs_done"] == 1 and r.values == {} and not r.ok
    assert "- 2 x timeout: time budget of 1e-06 CPU s reached" in (run / "report.md").read_text()


def test_an_exception_in_one_zoo_trial_fails_that_trial_only(tmp_path, monkeypatch) -> None:
    from nas.searches import Search, SearchConfig
    from nas.searches.store import open_run

    fit = zoo_toy.ToyZoo.fit

    def fragile(self, model, config, *args, **kw):
        if config["act"] == "relu":
            raise TypeError("an unexpected bug\nwith a second line")
        if config["width"] == 32:
            raise RuntimeError("a torch error inside the family")
        return fit(self, model, config, *args, **kw)

    monkeypatch.setattr(zoo_toy.ToyZoo, "fit", fragile)
    cfg = SearchConfig(space="zoo:toyzoo", strategy="rs", trials=8, epochs=2, final_epochs=1)
    Search(cfg, tmp_path / "run").run()
    _, store = open_run(tmp_path / "run")
    records = store.records()
    assert len(records) == 8
    for r in records:
        _, config = config_from_arch(r.arch)
        if config["act"] == "relu":
            assert (r.status, r.reason) == (
                "failed",
                "the evaluator raised TypeError: an unexpected bug",
            )
        elif config["width"] == 32:
            assert r.status == "failed" and "RuntimeError: a torch error" in r.reason
        else:
            assert r.status == "ok" and r.values["accuracy"] > -10
    assert {r.status for r in records} == {"ok", "failed"}


def test_a_search_whose_every_trial_timed_out_says_what_to_change(nas_cli, tmp_path) -> None:
    args = ["search", "--space", "zoo:toyzoo", "--strategy", "rs", "--trials", "2"]
    args += ["--epochs", "3", "--trial-time", "0.000001", "--final-epochs", "0"]
    code, out, err = nas_cli(*args, "--run-dir", str(tmp_path / "run"))
    assert code == 0, err
    flat = " ".join(out.split())  # the console may wrap the line
    assert "no trial succeeded; every trial hit --trial-time (1e-06 s) before its 3 epochs" in flat
    assert "larger --trial-time or fewer --epochs" in flat


def test_a_zoo_search_takes_its_family_protocol_not_the_einspace_one(tmp_path) -> None:
    """zoo:ait under einspace's 6 epochs / 20 s caps timed out on every trial: a zoo search
    left at the defaults trains each config's own epochs under caps scaled to the family."""
    from nas.searches import Search, SearchConfig
    from nas.searches.evaluators import CPU_PROTOCOL
    from nas.zoo import get_family

    job = Search(SearchConfig(space="zoo:ait"), tmp_path / "ait")
    ait = job.config
    assert job.fitness_label == "-rmse"  # lower RMSE is better: the fitness is its negation
    seconds = get_family("zoo:ait").train_seconds
    assert (ait.epochs, ait.final_epochs) == (None, None)
    assert ait.trial_time == 4 * seconds > CPU_PROTOCOL["trial_time"]
    assert (ait.trials, ait.time_budget) == (10, math.inf)  # the budget is trials, not time
    ein_job = Search(SearchConfig(), tmp_path / "ein")
    ein = ein_job.config
    assert {k: getattr(ein, k) for k in CPU_PROTOCOL} == CPU_PROTOCOL
    assert ein_job.fitness_label == ""
    given = SearchConfig(space="zoo:ait", epochs=2, trial_time=5.0, time_budget=math.inf)
    kept = Search(given, tmp_path / "kept").config
    assert (kept.epochs, kept.trial_time, kept.time_budget) == (2, 5.0, math.inf)


def test_a_space_file_sets_its_own_training_protocol(tmp_path) -> None:
    """NB201 networks train at 13-30 s an epoch on 2 cores: under the CPU protocol (6 epochs
    in 20 s) every trial of `nas search --space nb201` timed out. Its space file gives it
    2 epochs in 90 s; given values still win, and a user's space file may do the same."""
    from nas.searches import Search, SearchConfig
    from nas.searches.evaluators import CPU_PROTOCOL

    nb = Search(SearchConfig(space="nb201"), tmp_path / "nb").config
    assert (nb.trials, nb.epochs, nb.trial_time, nb.final_epochs) == (20, 2, 90.0, 12)
    assert nb.time_budget == math.inf  # the budget is the trial count
    assert nb.epochs * 30 < nb.trial_time  # the heaviest cell's 2 epochs fit, with room
    given = Search(SearchConfig(space="nb201", trials=1, epochs=4), tmp_path / "g").config
    assert (given.epochs, given.trial_time) == (4, 90.0)
    mine = tmp_path / "mine.toml"
    mine.write_text('grammar = "nb201.pcfg"\n[protocol]\nepochs = 3\ntime_budget = inf\n')
    own = Search(SearchConfig(space=str(mine), trials=1), tmp_path / "own").config
    assert (own.epochs, own.time_budget) == (3, math.inf)
    assert own.trial_time == CPU_PROTOCOL["trial_time"]  # what the file does not say


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ("epochs = 0", "protocol.epochs must be a whole number >= 1, got 0"),
        ("epochs = 2.5", "protocol.epochs must be a whole number"),
        ("trial_time = -1", "protocol.trial_time must be a positive number of seconds"),
        ("time_budget = nan", "protocol.time_budget must be"),
        ('trial_time = "fast"', "protocol.trial_time must be"),
        ("final_epochs = true", "protocol.final_epochs must be a whole number"),
        ("epoch = 3", "unknown protocol key 'epoch'; choose from trials, epochs, final_epochs"),
    ],
)
def test_a_bad_space_protocol_is_one_line(tmp_path, nas_cli, line, says) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(f'grammar = "nb201.pcfg"\n[protocol]\n{line}\n')
    code, out, err = nas_cli("search", "--space", str(bad), "--trials", "1", "--run-dir",
                             str(tmp_path / "run"))  # fmt: skip
    assert code == 2 and says in err and "Traceback" not in err + out
    assert not (tmp_path / "run" / "study.db").exists()


def test_a_default_zoo_search_trains_each_config_for_its_own_epochs(tmp_path) -> None:
    from nas.searches import Search, SearchConfig
    from nas.searches.store import open_run

    run = tmp_path / "run"
    result = Search(SearchConfig(space="zoo:toyzoo", strategy="rs", trials=2), run).run()
    info = json.loads((run / "run.json").read_text())["options"]
    assert info["epochs"] is None and info["trial_time"] == 4 * zoo_toy.ToyZoo.train_seconds
    _, store = open_run(run)
    default_epochs = 30  # ToyZoo.fit's own default
    for r in store.records():
        assert r.status == "ok" and r.metrics["epochs_done"] == default_epochs
    assert result.final is not None and result.final["epochs"] == default_epochs
    resumed = Search.resume(run, trials=3).config  # the stored protocol, not a new one
    assert (resumed.epochs, resumed.trial_time) == (None, info["trial_time"])
