"""save_pretrained / load_pretrained: exact round trip, recorded kwargs, refusal of foreign classes and files."""

from __future__ import annotations

import json
import pickle
import sys
import types
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from torch import nn

from omnidiffusion.core.io import (
    ConfigurableModule,
    load_pretrained,
    load_weights,
    read_pretrained_config,
    save_pretrained,
)


@dataclass
class Widths:
    hidden: int = 8
    mults: tuple[int, ...] = (1, 2)


class TinyNet(ConfigurableModule):
    def __init__(self, dim: int, widths: Widths | None = None, *, act: str = "silu", **extra):
        super().__init__()
        widths = widths or Widths()
        self.inp = nn.Linear(dim, widths.hidden)
        self.norm = nn.BatchNorm1d(widths.hidden)
        self.out = nn.Linear(widths.hidden, dim, bias=False)
        self.register_buffer("scale", torch.arange(dim, dtype=torch.float64))


class WiderNet(TinyNet):
    def __init__(self, dim: int, factor: int = 2):
        super().__init__(dim, Widths(hidden=8 * factor))


def _fill(model: nn.Module) -> nn.Module:
    """Give every tensor non-default values so that a load that silently skips one would be caught."""
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for t in model.state_dict().values():
            if t.is_floating_point():
                t.copy_(torch.randn(t.shape, generator=gen, dtype=t.dtype))
            else:
                t.fill_(5)
    return model


def test_round_trip_is_exact_with_recorded_kwargs(tmp_path: Path) -> None:
    model = _fill(TinyNet(3, Widths(hidden=6, mults=(1, 3)), act="gelu", note="x"))
    assert model.init_kwargs == {"dim": 3, "widths": Widths(6, (1, 3)), "act": "gelu", "note": "x"}
    save_pretrained(model, tmp_path / "m", metadata={"prediction": "eps"})

    loaded = load_pretrained(tmp_path / "m", cls=TinyNet)
    assert type(loaded) is TinyNet and not loaded.training
    assert loaded.init_kwargs["widths"] == Widths(6, [1, 3])  # tuples come back as lists (JSON)
    saved, got = model.state_dict(), loaded.state_dict()
    assert saved.keys() == got.keys()
    for k in saved:
        assert saved[k].dtype == got[k].dtype and torch.equal(saved[k], got[k]), k
    assert read_pretrained_config(tmp_path / "m")["metadata"] == {"prediction": "eps"}


def test_core_unet_round_trip_through_its_config_dict(tmp_path: Path) -> None:
    from omnidiffusion.core.nn.unet import UNet

    net = _fill(UNet(in_channels=1, out_channels=1, base_channels=8, channel_mults=[1, 2], num_res_blocks=1,
                     attention_resolutions=[], norm_groups=4, resolution=8))
    save_pretrained(net, tmp_path / "unet")
    loaded = load_pretrained(tmp_path / "unet")  # class path under omnidiffusion: no cls needed
    assert type(loaded) is UNet and loaded.config == net.config
    x, t = torch.randn(2, 1, 8, 8), torch.rand(2)
    net.eval()
    assert torch.equal(loaded(x, t), net(x, t))


def test_subclass_records_its_own_kwargs_not_its_parents() -> None:
    assert WiderNet(4).init_kwargs == {"dim": 4, "factor": 2}


def test_class_under_omnidiffusion_is_imported_without_cls(tmp_path: Path, monkeypatch) -> None:
    module = types.ModuleType("omnidiffusion.core._iotest_models")

    class Registered(ConfigurableModule):
        def __init__(self, dim: int = 2):
            super().__init__()
            self.lin = nn.Linear(dim, dim)

    Registered.__module__, Registered.__qualname__ = module.__name__, "Registered"
    module.Registered = Registered
    monkeypatch.setitem(sys.modules, module.__name__, module)
    model = _fill(Registered(dim=5))
    save_pretrained(model, tmp_path / "m")
    loaded = load_pretrained(tmp_path / "m")
    assert type(loaded) is Registered and torch.equal(loaded.lin.weight, model.lin.weight)


@pytest.mark.parametrize("path", ["os:system", "builtins:eval", "test_io:TinyNet", "omnidiffusion_evil.x:Y"])
def test_config_naming_a_class_outside_omnidiffusion_is_refused(tmp_path: Path, path: str) -> None:
    save_pretrained(TinyNet(3), tmp_path / "m")
    record = json.loads((tmp_path / "m" / "config.json").read_text())
    record["class"] = path
    (tmp_path / "m" / "config.json").write_text(json.dumps(record))
    with pytest.raises(ValueError, match="refusing to import"):
        load_pretrained(tmp_path / "m")


def test_truncated_weights_raise_a_clear_error(tmp_path: Path) -> None:
    save_pretrained(TinyNet(3), tmp_path / "m")
    weights = tmp_path / "m" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-40])
    with pytest.raises(ValueError, match=r"model\.safetensors: not a readable safetensors file"):
        load_pretrained(tmp_path / "m", cls=TinyNet)


class _Trap:
    """Unpickling this creates a marker file: the test proves nothing was unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_pickle_renamed_to_safetensors_is_refused_without_unpickling(tmp_path: Path) -> None:
    save_pretrained(TinyNet(3), tmp_path / "m")
    marker = tmp_path / "unpickled"
    (tmp_path / "m" / "model.safetensors").write_bytes(pickle.dumps({"w": _Trap(marker)}))
    with pytest.raises(ValueError, match="pickle"):
        load_pretrained(tmp_path / "m", cls=TinyNet)
    torch.save(TinyNet(3).state_dict(), tmp_path / "m" / "model.safetensors")  # a zip-format torch.save file
    with pytest.raises(ValueError, match="pickle"):
        load_pretrained(tmp_path / "m", cls=TinyNet)
    assert not marker.exists()


def test_missing_and_foreign_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="expected a save_pretrained directory"):
        load_pretrained(tmp_path / "nothing")
    (tmp_path / "m").mkdir()
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_pretrained(tmp_path / "m")
    (tmp_path / "m" / "config.json").write_text(json.dumps({"model_type": "unet", "hidden_size": 8}))
    with pytest.raises(ValueError, match="not an omnidiffusion config"):
        load_pretrained(tmp_path / "m")
    (tmp_path / "m" / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_pretrained(tmp_path / "m")
    save_pretrained(TinyNet(3), tmp_path / "m")
    (tmp_path / "m" / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        load_pretrained(tmp_path / "m", cls=TinyNet)


def test_weights_of_another_shape_are_named(tmp_path: Path) -> None:
    save_pretrained(TinyNet(3), tmp_path / "m")
    with pytest.raises(ValueError, match="do not fit"):
        load_weights(TinyNet(4), tmp_path / "m")
    with pytest.raises(ValueError, match="missing"):
        load_weights(nn.Linear(3, 3), tmp_path / "m")


def test_unsavable_kwargs_and_plain_modules(tmp_path: Path) -> None:
    class HoldsTensor(ConfigurableModule):
        def __init__(self, table: torch.Tensor):
            super().__init__()
            self.register_buffer("table", table)

    with pytest.raises(ValueError, match=r"config\.table: a Tensor cannot be saved"):
        save_pretrained(HoldsTensor(torch.ones(2)), tmp_path / "t")

    plain = _fill(nn.Linear(2, 3))
    save_pretrained(plain, tmp_path / "p")
    with pytest.raises(ValueError, match="load_weights"):
        load_pretrained(tmp_path / "p", cls=nn.Linear)
    restored = load_weights(nn.Linear(2, 3), tmp_path / "p")
    assert torch.equal(restored.weight, plain.weight) and torch.equal(restored.bias, plain.bias)
