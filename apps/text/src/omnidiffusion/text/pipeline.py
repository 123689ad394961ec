"""`DiffusionLM`: what a downstream user calls.

    lm = DiffusionLM.from_pretrained("runs/text")
    lm.generate(8)                                            # unconditional, the paper's 200-step sampler
    lm.generate(8, method="dpm++2m", steps=20)                # few-step DPM-Solver++(2M)
    lm.generate(8, control={"food": "Italian"})               # semantic content (classifier guidance)
    lm.generate(8, control={"length": 12})                    # exactly 12 words
    lm.generate(2, control=[{"area": "riverside"}, {"length": 9, "food": "French"}])   # one control per sample
    lm.infill("The Eagle is a _ _ near Burger King .")        # `_` = one word to fill

Sampling always goes through `omnidiffusion.core.sample` (infilling through `core.repaint`); the clamping trick
is the Denoiser's x0 hook; controls are `control.AdagradGuidance` around that Denoiser.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from tokenizers import Tokenizer
from torch import Tensor

from omnidiffusion.core import repaint, sample
from omnidiffusion.core.io import load_pretrained, read_pretrained_config

from .checker import normalise_field, normalise_value
from .control import AdagradGuidance, combine, length_loss, semantic_loss
from .data import SPECIALS, decode, load_tokenizer
from .diffusion import make_denoiser, make_schedule, nearest_ids
from .models import AttributeClassifier, DiffusionLMNet

Control = dict[str, object]


class DiffusionLM:
    """A trained Diffusion-LM with its tokenizer, schedule and (optional) attribute classifier."""

    def __init__(
        self,
        net: DiffusionLMNet,
        tokenizer: Tokenizer,
        schedule,
        classifier: AttributeClassifier | None = None,
        device: str | torch.device = "cpu",
    ) -> None:
        self.device = torch.device(device)
        self.net = net.to(self.device).eval()
        self.tokenizer = tokenizer
        self.schedule = schedule
        self.classifier = classifier.to(self.device).eval() if classifier is not None else None
        self.seq_len = net.seq_len

    @classmethod
    def from_pretrained(cls, directory: str | Path, device: str | torch.device = "cpu") -> DiffusionLM:
        """Load a directory written by `omnidiffusion-text train` (weights, tokenizer.json, classifier/)."""
        directory = Path(directory)
        if not directory.is_dir():
            raise FileNotFoundError(f"{directory}: no such directory (expected a Diffusion-LM checkpoint)")
        meta = read_pretrained_config(directory).get("metadata", {})
        net = load_pretrained(directory)
        if not isinstance(net, DiffusionLMNet):
            raise ValueError(f"{directory}: holds a {type(net).__name__}, expected a DiffusionLMNet")
        schedule = make_schedule(meta.get("schedule", "sqrt"), int(meta.get("T", 2000)))
        classifier = None
        if (directory / "classifier" / "config.json").is_file():
            classifier = load_pretrained(directory / "classifier")
        return cls(net, load_tokenizer(directory), schedule, classifier, device)

    # ------------------------------------------------------------------------------------------------------------
    def to_text(self, x: Tensor) -> list[str]:
        """Round (B, L, d) latents to the nearest words and decode (START .. END)."""
        return decode(self.tokenizer, nearest_ids(x, self.net.embedding.weight).cpu())

    def _controls(self, control: Control | Sequence[Control] | None, n: int) -> list[Control]:
        if control is None:
            return [{}] * n
        if isinstance(control, dict):
            return [control] * n
        controls = list(control)
        if len(controls) != n:
            raise ValueError(f"control: expected one dict per sample ({n}), got {len(controls)}")
        return controls

    def _parse(self, c: Control) -> tuple[int, int]:
        """(label index or -1, target length or 0) of one control dict."""
        if not isinstance(c, dict):
            raise ValueError(f"control: expected a dict like {{'food': 'Italian'}} or {{'length': 12}}, got {c!r}")
        label, length = -1, 0
        semantic = [(k, v) for k, v in c.items() if k != "length"]
        if "length" in c:
            length = c["length"]
            if not isinstance(length, int) or not 1 <= length <= self.seq_len - 2:
                raise ValueError(f"control['length']: expected an int in [1, {self.seq_len - 2}], got {length!r}")
        if len(semantic) > 1:
            raise ValueError(f"control: one field=value per sample is supported, got {semantic}")
        if semantic:
            field, value = semantic[0]
            name = f"{normalise_field(field)}={normalise_value(field, str(value))}"  # ValueError names the field
            if self.classifier is None:
                raise ValueError(
                    f"control: {field!r} needs the attribute classifier, which this checkpoint lacks "
                    "(train on a corpus with meaning representations)"
                )
            if name not in self.classifier.labels:
                raise ValueError(f"control: the classifier has no label {name!r}; it knows {self.classifier.labels}")
            label = self.classifier.labels.index(name)
        return label, length

    @torch.no_grad()
    def generate(
        self,
        n: int,
        *,
        steps: int = 200,
        method: str = "ddpm",
        grid: str | None = None,
        control: Control | Sequence[Control] | None = None,
        seed: int = 0,
        clamp: bool = True,
        guidance_steps: int = 3,
        guidance_lr: float = 0.1,
        fluency: float = 0.01,
        batch_size: int = 128,
        progress: bool = False,
    ) -> list[str]:
        """n sentences; `control` is one dict for all samples or a list of n ({field: value} and/or "length")."""
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"n: expected a positive int, got {n!r}")
        parsed = [self._parse(c) for c in self._controls(control, n)]
        grid = grid or ("logsnr" if method.startswith("dpm") else "time-uniform")
        gen = torch.Generator(device=self.device).manual_seed(seed)
        out: list[str] = []
        for lo in range(0, n, batch_size):
            part = parsed[lo : lo + batch_size]
            denoiser = self._guided(part, clamp, guidance_steps, guidance_lr, fluency)
            shape = (len(part), self.seq_len, self.net.embed_dim)
            x = sample(
                denoiser,
                shape,
                method=method,
                steps=steps,
                grid=grid,
                generator=gen,
                device=self.device,
                progress=progress,
            )
            out += self.to_text(x)
        return out

    def _guided(self, part: list[tuple[int, int]], clamp: bool, steps: int, lr: float, fluency: float):
        base = make_denoiser(self.net, self.schedule, clamp)
        labels = torch.tensor([p[0] for p in part], device=self.device)
        lengths = torch.tensor([p[1] for p in part], device=self.device)
        losses = []
        if bool((labels >= 0).any()):
            on = (labels >= 0).float()
            sem = semantic_loss(self.classifier, labels.clamp(min=0))
            losses.append(lambda x, t, f=sem, on=on: f(x, t) * on)
        if bool((lengths > 0).any()):
            on = (lengths > 0).float()
            ln = length_loss(self.net, lengths.clamp(min=1).cpu())
            losses.append(lambda x, t, f=ln, on=on: f(x, t) * on)
        if not losses:
            return base
        return AdagradGuidance(base, combine(losses), steps=steps, lr=lr, fluency=fluency)

    # ------------------------------------------------------------------------------------------------------------
    def parse_template(self, template: str | Sequence[str | None]) -> list[str | None]:
        """`The Eagle is a _ _ .` (or a list with None for blanks) -> words and None; checks vocabulary and length."""
        words = template.split() if isinstance(template, str) else list(template)
        words = [None if w in (None, "_") else w for w in words]
        if not words:
            raise ValueError("template: expected at least one word or `_`")
        if len(words) + 2 > self.seq_len:
            raise ValueError(f"template: {len(words)} words + START/END exceed the model's length {self.seq_len}")
        for w in words:
            if w is not None and self.tokenizer.token_to_id(w) is None:
                raise ValueError(f"template: word {w!r} is not in the model's vocabulary")
        return words

    @torch.no_grad()
    def infill(
        self,
        template: str | Sequence[str | None],
        n: int = 1,
        *,
        steps: int = 200,
        resample: int = 1,
        seed: int = 0,
        clamp: bool = True,
    ) -> list[str]:
        """n fillings of the `_` blanks, given words kept exactly (core.repaint; resample = RePaint jump_n_sample)."""
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"n: expected a positive int, got {n!r}")
        return self.infill_many([template] * n, steps=steps, resample=resample, seed=seed, clamp=clamp)

    @torch.no_grad()
    def infill_many(
        self,
        templates: Sequence[str | Sequence[str | None]],
        *,
        steps: int = 200,
        resample: int = 1,
        seed: int = 0,
        clamp: bool = True,
        batch_size: int = 128,
    ) -> list[str]:
        """One filling per template, batched: known START/words/END/PAD positions are kept by core.repaint."""
        if not templates:
            raise ValueError("templates: expected at least one template")
        parsed = [self.parse_template(t) for t in templates]
        L = self.seq_len
        ids = torch.zeros(len(parsed), L, dtype=torch.long)  # PAD everywhere after END
        known = torch.ones(len(parsed), L, dtype=torch.bool)
        for i, words in enumerate(parsed):
            ids[i, 0], ids[i, len(words) + 1] = 2, 3  # START, END
            for j, w in enumerate(words, start=1):
                if w is None:
                    known[i, j] = False
                else:
                    ids[i, j] = self.tokenizer.token_to_id(w)
        gen = torch.Generator(device=self.device).manual_seed(seed)
        denoiser = make_denoiser(self.net, self.schedule, clamp)
        out: list[str] = []
        for lo in range(0, len(parsed), batch_size):
            x_known = self.net.embed(ids[lo : lo + batch_size].to(self.device))  # (b, L, d)
            mask = known[lo : lo + batch_size].to(self.device)[..., None]  # (b, L, 1)
            x = repaint(denoiser, x_known, mask, steps=steps, jump_n_sample=resample, generator=gen)
            # A blank is one word: round it among the ordinary words only (never PAD/UNK/START/END), so the filled
            # sentence keeps the template's length; known positions round back to themselves exactly.
            weight = self.net.embedding.weight
            ids_x = nearest_ids(x, weight)
            words_x = nearest_ids(x, weight[len(SPECIALS) :]) + len(SPECIALS)
            blank = ~known[lo : lo + batch_size].to(self.device)
            out += decode(self.tokenizer, torch.where(blank, words_x, ids_x).cpu())
        return out
