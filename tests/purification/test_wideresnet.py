"""WideResNet-28-10: the paper's size, the TRADES / RobustBench parameter names, and weights loaded without unpickling.

The independent truths: the closed-form parameter count of WRN-d-k (Zagoruyko & Komodakis 2016, Table 1 layout;
36.5M for WRN-28-10 as the paper reports), a functional re-statement of the pre-activation network written here
from those names, and files written by safetensors / torch.save in the layouts users have.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from omnidiffusion.purification.classifier import build_classifier
from omnidiffusion.purification.settings import load_purification_config
from omnidiffusion.purification.wideresnet import WideResNet, load_classifier_weights, read_state_dict

BN = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def wrn_parameter_count(depth: int, k: int, classes: int = 10, cin: int = 3) -> int:
    n = (depth - 4) // 6
    widths = [16, 16 * k, 32 * k, 64 * k]
    total = 9 * cin * widths[0]
    for a, b in zip(widths[:-1], widths[1:], strict=True):
        total += 2 * a + 9 * a * b + 2 * b + 9 * b * b + (a * b if a != b else 0)  # first block of the group
        total += (n - 1) * (2 * b + 9 * b * b + 2 * b + 9 * b * b)
    return total + 2 * widths[3] + widths[3] * classes + classes


def test_wrn_28_10_has_the_paper_s_36_5m_parameters(monkeypatch):
    for cls in (torch.nn.Conv2d, torch.nn.Linear, WideResNet):  # shapes only: skip initialising 36.5M weights
        monkeypatch.setattr(cls, "reset_parameters" if cls is not WideResNet else "_init_weights", lambda self: None)
    net = WideResNet(28, 10)
    count = sum(p.numel() for p in net.parameters())
    assert count == wrn_parameter_count(28, 10)
    assert round(count / 1e6, 1) == 36.5  # Zagoruyko & Komodakis 2016, Table 2 / 3


def trained_like(depth: int = 10, k: int = 1, seed: int = 0) -> WideResNet:
    """A small WRN with random weights and non-trivial BatchNorm statistics, in eval mode."""
    torch.manual_seed(seed)
    net = WideResNet(depth, k)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.1)
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 2.0)
    return net.eval()


def robustbench_names(depth: int, k: int) -> set[str]:
    """The state-dict names of the TRADES / RobustBench WideResNet, written from its layout."""
    n = (depth - 4) // 6
    widths = [16, 16 * k, 32 * k, 64 * k]
    names = {"conv1.weight", "fc.weight", "fc.bias"} | {f"bn1.{b}" for b in BN}
    for g in range(3):
        for i in range(n):
            p = f"block{g + 1}.layer.{i}"
            names |= {f"{p}.conv1.weight", f"{p}.conv2.weight"}
            names |= {f"{p}.bn1.{b}" for b in BN} | {f"{p}.bn2.{b}" for b in BN}
            if i == 0 and widths[g] != widths[g + 1]:
                names.add(f"{p}.convShortcut.weight")
    return names


def functional_wrn(state: dict, x: torch.Tensor, depth: int) -> torch.Tensor:
    """Pre-activation WRN in eval mode from a state dict: BN-ReLU-conv-BN-ReLU-conv, shortcut as named."""

    def bn(h, p):
        return F.batch_norm(
            h,
            state[f"{p}.running_mean"],
            state[f"{p}.running_var"],
            state[f"{p}.weight"],
            state[f"{p}.bias"],
            training=False,
            eps=1e-5,
        )

    n = (depth - 4) // 6
    h = F.conv2d(x, state["conv1.weight"], padding=1)
    for g, stride in zip(range(1, 4), (1, 2, 2), strict=True):
        for i in range(n):
            p, s = f"block{g}.layer.{i}", stride if i == 0 else 1
            a = F.relu(bn(h, f"{p}.bn1"))
            out = F.relu(bn(F.conv2d(a, state[f"{p}.conv1.weight"], stride=s, padding=1), f"{p}.bn2"))
            out = F.conv2d(out, state[f"{p}.conv2.weight"], padding=1)
            short = state.get(f"{p}.convShortcut.weight")
            h = (h if short is None else F.conv2d(a, short, stride=s)) + out
    h = F.avg_pool2d(F.relu(bn(h, "bn1")), 8).flatten(1)
    return F.linear(h, state["fc.weight"], state["fc.bias"])


def test_names_and_forward_match_the_robustbench_definition():
    net = trained_like(16, 2)
    assert set(net.state_dict()) == robustbench_names(16, 2)
    x = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.allclose(net(x), functional_wrn(net.state_dict(), x, 16), atol=1e-5)


def test_normalisation_lives_inside_the_module():
    mean, std = (0.4914, 0.4822, 0.4465), (0.2471, 0.2435, 0.2616)
    plain, norm = trained_like(), WideResNet(10, 1, mean=mean, std=std).eval()
    norm.load_state_dict(plain.state_dict())
    x = torch.rand(2, 3, 32, 32)
    m, s = torch.tensor(mean).reshape(1, 3, 1, 1), torch.tensor(std).reshape(1, 3, 1, 1)
    with torch.no_grad():
        assert torch.allclose(norm(x), plain((x - m) / s), atol=1e-5)
    assert set(norm.state_dict()) == set(plain.state_dict())  # mean/std are config, not weights


@pytest.fixture
def source() -> WideResNet:
    return trained_like(seed=3)


def _same_outputs(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        return torch.equal(a(x), b(x))


def test_safetensors_weights_load(source, tmp_path):
    path = tmp_path / "wrn.safetensors"
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, path)
    assert _same_outputs(source, load_classifier_weights(WideResNet(10, 1), path))


def test_torch_files_in_common_layouts_load_weights_only(source, tmp_path):
    state = source.state_dict()
    layouts = {
        "plain.pt": state,
        "dataparallel.pth": {f"module.{k}": v for k, v in state.items()},  # RobustBench checkpoints
        "nested.pt": {"state_dict": state, "epoch": 200, "best_acc": 0.95},
        "no_counters.pt": {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")},
    }
    for name, obj in layouts.items():
        torch.save(obj, tmp_path / name)
        assert _same_outputs(source, load_classifier_weights(WideResNet(10, 1), tmp_path / name)), name


class _Trap:
    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_a_pickled_object_is_refused_without_running_it(tmp_path):
    sentinel = tmp_path / "ran"
    torch.save({"conv1.weight": torch.zeros(1), "trap": _Trap(sentinel)}, tmp_path / "evil.pt")
    (tmp_path / "evil.pkl").write_bytes(pickle.dumps({"trap": _Trap(sentinel)}))
    for name in ("evil.pt", "evil.pkl"):
        with pytest.raises(ValueError, match="refused: torch.load\\(weights_only=True\\) cannot read it"):
            read_state_dict(tmp_path / name)
    assert not sentinel.exists()


def test_mismatched_weights_are_named(source, tmp_path):
    other = tmp_path / "wrn-10-1-100-classes.safetensors"
    save_file({k: v.contiguous() for k, v in WideResNet(10, 1, num_classes=100).state_dict().items()}, other)
    with pytest.raises(
        ValueError, match=r"tensor shapes differ from WideResNet \(file vs model\): \['fc.bias \(100,\) vs \(10,\)"
    ):
        load_classifier_weights(WideResNet(10, 1), other)
    partial = tmp_path / "partial.safetensors"
    save_file({k: v.contiguous() for k, v in source.state_dict().items() if not k.startswith("fc.")}, partial)
    with pytest.raises(ValueError, match=r"missing \['fc.bias', 'fc.weight'\]"):
        load_classifier_weights(WideResNet(10, 1), partial)
    with pytest.raises(FileNotFoundError, match="weights: .*nope.pt: no such file"):
        load_classifier_weights(WideResNet(10, 1), tmp_path / "nope.pt")
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(ValueError, match="expected a non-empty {name: tensor} state dict, got list"):
        read_state_dict(tmp_path / "list.pt")


def test_arch_names_build_and_bad_ones_are_refused():
    net = build_classifier("wrn-16-2", num_classes=7)
    assert isinstance(net, WideResNet) and net.fc.out_features == 7 and len(net.block1.layer) == 2
    for arch in ("wrn-27-10", "wrn-28", "wrn-4-1"):
        with pytest.raises(ValueError, match="classifier.arch: expected 'wrn-D-K' with depth D = 6n \\+ 4"):
            load_purification_config("tiny", [f"classifier.arch={arch}"])
    with pytest.raises(ValueError, match="depth: expected 6n \\+ 4"):
        WideResNet(27, 1)
    with pytest.raises(ValueError, match="mean: expected 3 per-channel values"):
        WideResNet(10, 1, mean=(0.5,))
