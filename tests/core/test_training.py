"""fit(): exact resume after SIGKILL, DDP == one process with the doubled batch, NaN stop, EMA, accumulation."""

from __future__ import annotations

import csv
import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from omnidiffusion.core.io import load_tensors
from omnidiffusion.core.training import NonFiniteLossError, TrainConfig, fit, lr_at

SCRIPT = Path(__file__).with_name("_train_script.py")
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def _run_script(out_dir: Path, *args: str) -> None:
    done = subprocess.run([sys.executable, str(SCRIPT), str(out_dir), *args], env=ENV, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]


def _log_rows(out_dir: Path) -> list[dict[str, str]]:
    with open(out_dir / "log.csv", newline="") as f:
        return list(csv.DictReader(f))


def _assert_same_tensors(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_resume_after_sigkill_matches_uninterrupted_run(tmp_path: Path) -> None:
    killed = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, str(SCRIPT), str(killed), "--hang-after", "24"], env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    # Wait until the checkpoint of step 21 exists and training has gone past it (step 24 logged).
    deadline = time.monotonic() + 90
    pointer = killed / "checkpoint" / "latest.json"
    while True:
        assert proc.poll() is None, proc.stdout.read().decode()[-3000:]
        assert time.monotonic() < deadline, "training subprocess made no progress"
        if pointer.is_file() and (killed / "log.csv").is_file():
            steps = [int(r["step"]) for r in _log_rows(killed)]
            if json.loads(pointer.read_text())["step"] == 21 and steps and steps[-1] >= 24:
                break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    proc.stdout.close()
    assert not (killed / "model.safetensors").exists()  # it really died before finishing

    _run_script(killed)  # resumes automatically from step 21
    reference = tmp_path / "reference"
    _run_script(reference)

    _assert_same_tensors(load_tensors(killed / "model.safetensors"), load_tensors(reference / "model.safetensors"))
    _assert_same_tensors(load_tensors(killed / "raw" / "model.safetensors"),
                         load_tensors(reference / "raw" / "model.safetensors"))
    # The log was cut back to the checkpoint and continued: the same 30 rows as the uninterrupted run.
    assert [r["step"] for r in _log_rows(killed)] == [str(s) for s in range(1, 31)]
    assert [r["loss"] for r in _log_rows(killed)] == [r["loss"] for r in _log_rows(reference)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_two_processes_equal_one_process_with_doubled_batch(tmp_path: Path) -> None:
    torchrun = Path(sys.executable).with_name("torchrun")
    ddp_dir, single_dir = tmp_path / "ddp", tmp_path / "single"
    done = subprocess.run(
        [str(torchrun), "--nproc_per_node", "2", "--master_addr", "127.0.0.1", "--master_port", str(_free_port()),
         str(SCRIPT), str(ddp_dir), "--mode", "regression", "--steps", "8", "--batch-size", "4"],
        env=ENV, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    _run_script(single_dir, "--mode", "regression", "--steps", "8", "--batch-size", "8")

    a, b = load_tensors(ddp_dir / "model.safetensors"), load_tensors(single_dir / "model.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6)
    # Training moved the weights (8 steps over two epochs), so the comparison is not vacuous.
    torch.manual_seed(0)
    init = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 1))
    assert (a["0.weight"] - init[0].weight).abs().max() > 1e-3
    state = json.loads((ddp_dir / "checkpoint" / "step_00000008" / "state.json").read_text())
    assert state["world_size"] == 2 and len(state["rng"]) == 2


# ----------------------------------------------------------------------------------------------------------------
# In-process runs on a tiny regression problem


def _data(n: int = 32) -> TensorDataset:
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(n, 3, generator=gen)
    return TensorDataset(x, x @ torch.tensor([[1.0], [-2.0], [0.5]]))


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 1))


def _mse(net: nn.Module, batch) -> torch.Tensor:
    xb, yb = batch
    return ((net(xb + 0.05 * torch.randn_like(xb)) - yb) ** 2).mean()


def _config(**kw) -> TrainConfig:
    base = dict(steps=6, batch_size=4, lr=1e-2, min_lr=1e-2, ema_decay=None, log_every=1, ckpt_every=2,
                progress=False)
    return TrainConfig(**{**base, **kw})


def test_lr_schedule_warmup_then_cosine() -> None:
    cfg = TrainConfig(steps=110, lr=1.0, min_lr=0.1, warmup_steps=10)
    assert lr_at(0, cfg) == pytest.approx(0.1)
    assert lr_at(9, cfg) == pytest.approx(1.0)
    assert lr_at(10, cfg) == pytest.approx(1.0)
    assert lr_at(60, cfg) == pytest.approx(0.55)  # half way down the cosine: (lr + min_lr) / 2
    assert lr_at(110, cfg) == pytest.approx(0.1)


def test_nonfinite_loss_stops_with_step_and_keeps_last_good_checkpoint(tmp_path: Path) -> None:
    calls = 0

    def exploding(net: nn.Module, batch) -> torch.Tensor:
        nonlocal calls
        calls += 1
        loss = _mse(net, batch)
        return loss * float("nan") if calls >= 8 else loss

    # Syncs (and checks) only at checkpoints 3, 6, 9: the NaN of step 8 is found at 9, before that checkpoint.
    with pytest.raises(NonFiniteLossError, match=r"at step 8 of 12") as info:
        fit(_model(), exploding, _data(), _config(steps=12, log_every=100, ckpt_every=3), tmp_path / "run")
    assert info.value.step == 8
    assert "step_00000006" in str(info.value)
    pointer = json.loads((tmp_path / "run" / "checkpoint" / "latest.json").read_text())
    assert pointer["step"] == 6
    assert not (tmp_path / "run" / "model.safetensors").exists()

    # The kept checkpoint is the state of a clean 6-step run (constant LR, so the runs share their first steps).
    fit(_model(), _mse, _data(), _config(steps=6, ckpt_every=3), tmp_path / "clean")
    _assert_same_tensors(load_tensors(tmp_path / "run" / "checkpoint" / "step_00000006" / "model.safetensors"),
                         load_tensors(tmp_path / "clean" / "model.safetensors"))


def test_in_process_resume_ignores_half_written_checkpoint(tmp_path: Path) -> None:
    run = tmp_path / "run"
    fit(_model(), _mse, _data(), _config(steps=4), run)
    # A kill while writing step 6 leaves a temp directory with a truncated file; latest.json still says 4.
    partial = run / "checkpoint" / ".tmp-step_00000006"
    partial.mkdir()
    (partial / "model.safetensors").write_bytes(b"\x10\x00\x00")
    result = fit(_model(), _mse, _data(), _config(steps=6), run)
    assert result.step == 6 and not partial.exists()
    fit(_model(), _mse, _data(), _config(steps=6), tmp_path / "straight")
    _assert_same_tensors(load_tensors(run / "model.safetensors"),
                         load_tensors(tmp_path / "straight" / "model.safetensors"))


def test_resume_flag_checks(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        fit(_model(), _mse, _data(), _config(steps=2), tmp_path / "a", resume=True)
    fit(_model(), _mse, _data(), _config(steps=2), tmp_path / "b")
    with pytest.raises(ValueError, match="already holds a checkpoint"):
        fit(_model(), _mse, _data(), _config(steps=4), tmp_path / "b", resume=False)


def test_grad_accumulation_equals_larger_batch(tmp_path: Path) -> None:
    def exact(net: nn.Module, batch) -> torch.Tensor:
        xb, yb = batch
        return ((net(xb) - yb) ** 2).mean()

    a = fit(_model(), exact, _data(), _config(steps=5, batch_size=4, grad_accum=2, grad_clip=0.3), tmp_path / "a")
    b = fit(_model(), exact, _data(), _config(steps=5, batch_size=8, grad_accum=1, grad_clip=0.3), tmp_path / "b")
    for pa, pb in zip(a.model.parameters(), b.model.parameters(), strict=True):
        torch.testing.assert_close(pa, pb, rtol=1e-5, atol=1e-6)


def test_ema_is_the_exponential_average_of_the_raw_weights(tmp_path: Path) -> None:
    seen: list[torch.Tensor] = []  # weights before each step = weights after the previous one

    def recording(net: nn.Module, batch) -> torch.Tensor:
        seen.append(net[0].weight.detach().clone())
        return _mse(net, batch)

    decay = 0.8
    result = fit(_model(), recording, _data(), _config(steps=4, ema_decay=decay, ema_warmup=False), tmp_path / "run")
    after = [*seen[1:], result.model[0].weight.detach()]  # raw weights after steps 1..4
    expected = after[0]  # the first update copies
    for w in after[1:]:
        expected = decay * expected + (1 - decay) * w
    torch.testing.assert_close(result.ema_model[0].weight, expected)
    saved = load_tensors(tmp_path / "run" / "model.safetensors")  # final weights are the EMA ones
    torch.testing.assert_close(saved["0.weight"], expected)


def test_ema_warmup_uses_the_step_dependent_decay_and_resumes_exactly(tmp_path: Path) -> None:
    seen: list[torch.Tensor] = []

    def recording(net: nn.Module, batch) -> torch.Tensor:
        seen.append(net[0].weight.detach().clone())
        return _mse(net, batch)

    result = fit(_model(), recording, _data(), _config(steps=5, ema_decay=0.5), tmp_path / "run")
    after = [*seen[1:], result.model[0].weight.detach()]  # raw weights after steps 1..5
    # By hand: update n (0-based) uses min(0.5, (1 + n) / (10 + n)): a copy, then 2/11, 3/12, 4/13, 5/14 (< 0.5).
    decays = [2 / 11, 3 / 12, 4 / 13, 5 / 14]
    expected = after[0]
    for d, w in zip(decays, after[1:], strict=True):
        expected = d * expected + (1 - d) * w
    torch.testing.assert_close(result.ema_model[0].weight, expected)
    # The capped case: with ema_decay 0.2, update 1 uses 2/11 (< 0.2) and updates 2, 3 the cap (3/12, 4/13 > 0.2).
    seen.clear()
    capped = fit(_model(), recording, _data(), _config(steps=4, ema_decay=0.2), tmp_path / "capped")
    after = [*seen[1:], capped.model[0].weight.detach()]
    expected = after[0]
    for d, w in zip([2 / 11, 0.2, 0.2], after[1:], strict=True):
        expected = d * expected + (1 - d) * w
    torch.testing.assert_close(capped.ema_model[0].weight, expected)

    # Stopped at a checkpoint and resumed, the average is the same as one uninterrupted run's.
    fit(_model(), _mse, _data(), _config(steps=4, ema_decay=0.9), tmp_path / "resumed")
    fit(_model(), _mse, _data(), _config(steps=8, ema_decay=0.9), tmp_path / "resumed")
    fit(_model(), _mse, _data(), _config(steps=8, ema_decay=0.9), tmp_path / "straight")
    _assert_same_tensors(load_tensors(tmp_path / "resumed" / "model.safetensors"),
                         load_tensors(tmp_path / "straight" / "model.safetensors"))


def test_calling_fit_on_a_finished_run_returns_its_last_logged_loss(tmp_path: Path, caplog) -> None:
    run = tmp_path / "run"
    first = fit(_model(), _mse, _data(), _config(steps=6, ema_decay=0.9, log_every=2), run)
    last_row = float(_log_rows(run)[-1]["loss"])
    assert math.isfinite(first.loss) and first.loss == pytest.approx(last_row, rel=1e-5)
    with caplog.at_level("INFO", logger="omnidiffusion.core.training"):
        again = fit(_model(), _mse, _data(), _config(steps=6, ema_decay=0.9, log_every=2), run)
    assert "already complete" in caplog.text
    assert again.step == 6 and again.steps_per_sec == 0
    assert again.loss == first.loss  # the value stored in the checkpoint, not NaN
    for a, b in zip(again.ema_model.parameters(), first.ema_model.parameters(), strict=True):
        assert torch.equal(a, b)
    assert [r["step"] for r in _log_rows(run)] == ["2", "4", "6"]  # the log is kept, not cut

    # A checkpoint from before the loss was stored: the loss comes from log.csv's row at the checkpoint step.
    state_path = run / "checkpoint" / "step_00000006" / "state.json"
    state = json.loads(state_path.read_text())
    del state["loss"]
    state_path.write_text(json.dumps(state))
    old = fit(_model(), _mse, _data(), _config(steps=6, ema_decay=0.9, log_every=2), run)
    assert old.loss == pytest.approx(last_row)


def test_logs_and_bf16_autocast(tmp_path: Path) -> None:
    result = fit(_model(), _mse, _data(), _config(steps=4, amp="bf16", tensorboard=True, log_every=2),
                 tmp_path / "run")
    assert math.isfinite(result.loss)
    rows = _log_rows(tmp_path / "run")
    assert [r["step"] for r in rows] == ["2", "4"] and set(rows[0]) == {"step", "loss", "lr", "steps_per_sec"}
    assert any((tmp_path / "run" / "tensorboard").iterdir())


def test_bad_inputs_are_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="scalar tensor"):
        fit(_model(), lambda net, batch: net(batch[0]), _data(), _config(), tmp_path / "a")
    with pytest.raises(ValueError, match="fewer than one global batch"):
        fit(_model(), _mse, _data(3), _config(), tmp_path / "b")
    with pytest.raises(ValueError, match="grad_accum"):
        TrainConfig(grad_accum=0)


def test_worker_processes_see_the_same_batches_and_resume(tmp_path: Path) -> None:
    fit(_model(), _mse, _data(), _config(steps=10, ckpt_every=3), tmp_path / "inline")
    fit(_model(), _mse, _data(), _config(steps=6, ckpt_every=3, num_workers=2), tmp_path / "workers")
    fit(_model(), _mse, _data(), _config(steps=10, ckpt_every=3, num_workers=2), tmp_path / "workers")
    _assert_same_tensors(load_tensors(tmp_path / "inline" / "model.safetensors"),
                         load_tensors(tmp_path / "workers" / "model.safetensors"))
