"""core.tensors' seeded draws: the same numbers as torch's own draw from the same seed, on whatever device is asked
for, whichever device the generator lives on; and no module draws with a generator pinned to another device."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch

from omnidiffusion.core.tensors import rand, randint, randn, randn_like

ROOT = Path(__file__).resolve().parents[2]


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_draws_equal_torchs_own_draw_from_the_same_seed():
    torch.testing.assert_close(
        randn((3, 4), gen(), dtype=torch.float64),
        torch.randn(3, 4, generator=gen(), dtype=torch.float64),
        rtol=0,
        atol=0,
    )
    torch.testing.assert_close(rand(5, gen(1)), torch.rand(5, generator=gen(1)), rtol=0, atol=0)
    assert torch.equal(randint(2, 9, (6,), gen(2)), torch.randint(2, 9, (6,), generator=gen(2)))
    x = torch.zeros(2, 3, dtype=torch.float16)
    z = randn_like(x, gen(3))
    assert z.dtype == torch.float16 and z.shape == x.shape
    torch.testing.assert_close(z, torch.randn(2, 3, generator=gen(3), dtype=torch.float16), rtol=0, atol=0)


def test_a_cpu_generator_draws_for_another_device():
    """torch.randn(..., generator=cpu_generator, device="cuda") raises; the helpers draw on the generator's device
    and move the draw. The meta device stands in for an accelerator here (the branch taken is the same)."""
    assert randn((2, 3), gen(), device="meta").device.type == "meta"
    assert rand(4, gen(), device="meta", dtype=torch.float64).dtype == torch.float64
    assert randint(0, 5, 3, gen(), device="meta").device.type == "meta"
    assert randn_like(torch.empty(2, device="meta"), gen()).device.type == "meta"
    assert randn((2,), None, device="meta").device.type == "meta"  # no generator: torch's global RNG there


def _pinned_draws(path: Path) -> list[str]:
    """Calls torch.randn / rand / randint / randn_like passing both generator= and device= (other than the
    generator's own device): they fail on a GPU whenever the generator is a CPU one."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        f = node.func
        if not (isinstance(f.value, ast.Name) and f.value.id == "torch" and f.attr in ("randn", "rand", "randint")):
            continue
        kw = {k.arg: k.value for k in node.keywords}
        if "generator" in kw and "device" in kw and ast.unparse(kw["device"]) != "generator.device":
            found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


@pytest.mark.parametrize("tree", ["core", "apps"])
def test_no_draw_pins_a_generator_to_another_device(tree):
    files = [p for p in (ROOT / tree).rglob("*.py") if p.name != "tensors.py"]
    bad = [hit for p in files for hit in _pinned_draws(p)]
    assert not bad, f"use omnidiffusion.core.tensors.randn/rand/randint instead at: {bad}"
