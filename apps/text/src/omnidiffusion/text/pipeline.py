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

Bad arguments are refused before any sampling with a ValueError naming the parameter and what it expects
(`n: expected an integer >= 1, got 0`); `steps=None` means the default (200), 0 and negatives are refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from tokenizers import Tokenizer
from torch import Tensor

from omnidiffusion.core import GRIDS, METHODS, repaint, sample
from omnidiffusion.core.checks import non_negative_int, positive_int, real_number, resolve_device
from omnidiffusion.core.io import load_pretrained, read_pretrained_config

from .config import SEED_MAX
from .control import AdagradGuidance, Control, combine, expand_controls, length_loss, parse_control, semantic_loss
from .data import SPECIALS, decode, load_tokenizer
from .diffusion import make_denoiser, make_schedule, nearest_ids
from .models import AttributeClassifier, DiffusionLMNet

DEFAULT_STEPS = 200  # the paper's sampler


def _steps(steps: int | None) -> int:
    return DEFAULT_STEPS if steps is None else positive_int(steps, "steps")


def _seed(seed: int) -> int:
    return non_negative_int(seed, "seed", maximum=SEED_MAX)


def _flag(value: object, name: str) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name}: expected True or False, got {value!r}")
    return value


def parse_template(template: str | Sequence[str | None], tokenizer: Tokenizer, seq_len: int) -> list[str | None]:
    """`The Eagle is a _ _ .` (or a list with None for blanks) -> words and None; checks blanks, vocabulary, length.

    A template needs at least one blank (with none there is nothing to fill); every given word must be an
    ordinary word of the model's vocabulary (an unknown word would decode to nothing, so it is refused rather
    than mapped to [UNK]); a template of blanks only is a free sentence of exactly that many words.
    """
    if isinstance(template, str):
        words: list = template.split()
    elif isinstance(template, Sequence):
        words = list(template)
    else:
        raise ValueError(f"template: expected a string with `_` blanks or a list of words/None, got {template!r}")
    for w in words:
        if w is not None and not isinstance(w, str):
            raise ValueError(f"template: expected words (str) and None for blanks, got {w!r} in {template!r}")
    words = [None if w is None or w.strip() == "_" else w.strip() for w in words]
    if not words:
        raise ValueError("template: expected words and at least one `_` blank, got an empty template")
    if None not in words:
        raise ValueError(f"template: expected at least one `_` blank to fill, got none in {template!r}")
    if len(words) + 2 > seq_len:
        raise ValueError(
            f"template: expected at most {seq_len - 2} words and blanks (the model's length {seq_len} "
            f"holds START and END too), got {len(words)}"
        )
    for w in words:
        if w in SPECIALS:
            raise ValueError(f"template: expected ordinary words, got the special token {w!r}")
        if w is not None and tokenizer.token_to_id(w) is None:
            raise ValueError(f"template: expected words of the model's vocabulary, got {w!r} (unknown)")
    return words


def load_lm(directory: str | Path, device: str | torch.device = "cpu"):
    """The checkpoint's pipeline: DiffusionLM (model.kind = continuous) or MaskedDiffusionLM (masked)."""
    device = resolve_device(device)
    directory = Path(directory)
    if directory.is_dir() and (directory / "config.json").is_file():
        cls_path = read_pretrained_config(directory).get("class", "")
        if cls_path.endswith(":MaskedDiffusionNet"):
            from .masked import MaskedDiffusionLM

            return MaskedDiffusionLM.from_pretrained(directory, device)
    return DiffusionLM.from_pretrained(directory, device)


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
        self.device = resolve_device(device)
        self.net = net.to(self.device).eval()
        self.tokenizer = tokenizer
        self.schedule = schedule
        self.classifier = classifier.to(self.device).eval() if classifier is not None else None
        self.seq_len = net.seq_len

    @classmethod
    def from_pretrained(cls, directory: str | Path, device: str | torch.device = "cpu") -> DiffusionLM:
        """Load a directory written by `omnidiffusion-text train` (weights, tokenizer.json, classifier/).

        `device`: auto | cpu | cuda | cuda:N, checked before anything is read (a missing GPU is a ValueError).
        """
        device = resolve_device(device)
        directory = Path(directory)
        if not directory.is_dir():
            what = "is a file" if directory.exists() else "no such directory"
            raise FileNotFoundError(f"{directory}: {what} (expected a Diffusion-LM checkpoint written by `train`)")
        if not (directory / "config.json").is_file():
            raise FileNotFoundError(
                f"{directory}: holds no config.json (expected a Diffusion-LM checkpoint written by `train`)"
            )
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
        if not isinstance(x, Tensor) or not x.dtype.is_floating_point:
            what = f"dtype {x.dtype}" if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"x: expected a floating-point tensor of shape (B, L, {self.net.embed_dim}), got {what}")
        if x.ndim == 3 and x.shape[-1] == self.net.embed_dim and not bool(torch.isfinite(x).all()):
            raise ValueError("x: expected finite latents, got NaN or inf values")
        return decode(self.tokenizer, nearest_ids(x, self.net.embedding.weight).cpu())

    def _parse(self, c: Control) -> tuple[int, int]:
        """(label index or -1, target length or 0) of one control dict."""
        labels = None if self.classifier is None else self.classifier.labels
        return parse_control(
            c,
            self.seq_len,
            labels,
            who="classifier",
            missing="the attribute classifier, which this checkpoint lacks "
            "(train on a corpus with meaning representations)",
        )

    @torch.no_grad()
    def generate(
        self,
        n: int,
        *,
        steps: int | None = DEFAULT_STEPS,
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
        n, steps, seed = positive_int(n, "n"), _steps(steps), _seed(seed)
        if method not in METHODS:
            raise ValueError(f"method: expected one of {list(METHODS)}, got {method!r}")
        if grid is not None and grid not in GRIDS:
            raise ValueError(f"grid: expected one of {list(GRIDS)} or None, got {grid!r}")
        clamp = _flag(clamp, "clamp")
        guidance_steps = non_negative_int(guidance_steps, "guidance_steps")
        guidance_lr = real_number(guidance_lr, "guidance_lr", low=0.0, low_open=True)
        fluency = real_number(fluency, "fluency", low=0.0)
        batch_size = positive_int(batch_size, "batch_size")
        parsed = [self._parse(c) for c in expand_controls(control, n)]
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
        """`The Eagle is a _ _ .` (or a list with None for blanks) -> words and None (see `parse_template`)."""
        return parse_template(template, self.tokenizer, self.seq_len)

    @torch.no_grad()
    def infill(
        self,
        template: str | Sequence[str | None],
        n: int = 1,
        *,
        steps: int | None = DEFAULT_STEPS,
        resample: int = 1,
        seed: int = 0,
        clamp: bool = True,
    ) -> list[str]:
        """n fillings of the `_` blanks, given words kept exactly (core.repaint; resample = RePaint jump_n_sample)."""
        n = positive_int(n, "n")
        self.parse_template(template)  # one error for a bad template, before n copies are made
        return self.infill_many([template] * n, steps=steps, resample=resample, seed=seed, clamp=clamp)

    @torch.no_grad()
    def infill_many(
        self,
        templates: Sequence[str | Sequence[str | None]],
        *,
        steps: int | None = DEFAULT_STEPS,
        resample: int = 1,
        seed: int = 0,
        clamp: bool = True,
        batch_size: int = 128,
    ) -> list[str]:
        """One filling per template, batched: known START/words/END/PAD positions are kept by core.repaint."""
        if isinstance(templates, str) or not isinstance(templates, Sequence):
            raise ValueError(f"templates: expected a list of templates, got {templates!r} (use infill for one)")
        if not templates:
            raise ValueError("templates: expected at least one template, got an empty list")
        steps, seed = _steps(steps), _seed(seed)
        resample = positive_int(resample, "resample")
        batch_size = positive_int(batch_size, "batch_size")
        clamp = _flag(clamp, "clamp")
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
