"""`DiffusionLM`: what a downstream user calls.

    lm = DiffusionLM.from_pretrained("runs/text")             # weights, tokenizer, classifier/, run_config.json
    lm.generate(8)                                            # unconditional, the run config's [sampler]
    lm.generate(8, method="dpm++2m", steps=20)                # few-step DPM-Solver++(2M)
    lm.generate(8, control={"food": "Italian"})               # semantic content (classifier guidance)
    lm.generate(8, control={"length": 12})                    # exactly 12 words
    lm.generate(2, control=[{"area": "riverside"}, {"length": 9, "food": "French"}])   # one control per sample
    lm.infill("The Eagle is a _ _ near Burger King .")        # `_` = one word to fill

Sampling always goes through `omnidiffusion.core.sample` (infilling through `core.repaint`); the clamping trick
is the Denoiser's x0 hook; controls are `control.AdagradGuidance` around that Denoiser. The schedule is the run
config's `[schedule]`; every sampling argument left as None takes its `[sampler]` value (the paper's 200-step
ancestral sampler in the default config), so Python and `omnidiffusion-text generate` sample alike.

Bad arguments are refused before any sampling with a ValueError naming the parameter and what it expects
(`n: expected an integer >= 1, got 0`); 0 and negative step counts are refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from tokenizers import Tokenizer
from torch import Tensor

from omnidiffusion.core import GRIDS, METHODS, repaint, sample
from omnidiffusion.core.checks import non_negative_int, positive_int, real_number, resolve_device
from omnidiffusion.core.io import has_run_config, open_pretrained, read_pretrained_config

from .control import (
    AdagradGuidance,
    Control,
    check_templates,
    combine,
    expand_controls,
    length_loss,
    parse_control,
    parse_template,
    semantic_loss,
)
from .data import SPECIALS, decode, load_tokenizer
from .diffusion import make_denoiser, nearest_ids
from .masked import MaskedDiffusionLM
from .models import AttributeClassifier, DiffusionLMNet
from .settings import SEED_MAX, TextConfig, legacy_config


def _seed(seed: int) -> int:
    return non_negative_int(seed, "seed", maximum=SEED_MAX)


def _flag(value: object, name: str) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name}: expected True or False, got {value!r}")
    return value


def load_lm(
    directory: str | Path, *, device: str | torch.device = "cpu", config: TextConfig | None = None
) -> DiffusionLM | MaskedDiffusionLM:
    """The checkpoint's pipeline by the network it holds: DiffusionLM (a DiffusionLMNet, model.kind = continuous)
    or MaskedDiffusionLM (a MaskedDiffusionNet, masked). `config` replaces the stored run config (the CLI passes
    the stored one with --set applied)."""
    record = Path(directory) / "config.json"
    masked = record.is_file() and read_pretrained_config(directory).get("class", "").endswith(":MaskedDiffusionNet")
    return (MaskedDiffusionLM if masked else DiffusionLM).from_pretrained(directory, device=device, config=config)


class DiffusionLM:
    """A trained Diffusion-LM with its tokenizer, run config ([schedule], [sampler]) and optional classifier."""

    def __init__(
        self,
        net: DiffusionLMNet,
        tokenizer: Tokenizer,
        config: TextConfig,
        classifier: AttributeClassifier | None = None,
        device: str | torch.device = "cpu",
    ) -> None:
        self.device = resolve_device(device)
        self.net = net.to(self.device).eval()
        self.tokenizer = tokenizer
        self.config = config
        self.schedule = config.schedule.build()
        self.classifier = classifier.to(self.device).eval() if classifier is not None else None
        self.seq_len = net.seq_len

    @classmethod
    def from_pretrained(
        cls, directory: str | Path, *, device: str | torch.device = "cpu", config: TextConfig | None = None
    ) -> DiffusionLM:
        """Load a directory written by `omnidiffusion-text train` (weights, tokenizer.json, classifier/,
        run_config.json); `config` replaces the stored run config (the CLI passes it with --set applied).

        `device`: auto | cpu | cuda | cuda:N, checked before anything is read (a missing GPU is a ValueError).
        """
        what = "a Diffusion-LM checkpoint written by `train`"
        stored = has_run_config(directory)
        pre = open_pretrained(
            directory, DiffusionLMNet, config_cls=TextConfig if stored and config is None else None, device=device,
            what=what,
        )
        config = config or pre.config
        if not stored:  # written before run_config.json: the schedule is in the weights' metadata
            config = legacy_config(config or TextConfig(), pre.metadata, masked=False)
        classifier = None
        if (pre.directory / "classifier" / "config.json").is_file():
            classifier = open_pretrained(
                directory, AttributeClassifier, subfolder="classifier", device=pre.device, what=what
            ).model
        return cls(pre.model, load_tokenizer(directory), config, classifier, pre.device)

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
        steps: int | None = None,
        method: str | None = None,
        grid: str | None = None,
        control: Control | Sequence[Control] | None = None,
        seed: int | None = None,
        clamp: bool = True,
        guidance_steps: int | None = None,
        guidance_lr: float | None = None,
        fluency: float | None = None,
        batch_size: int | None = None,
        progress: bool = False,
    ) -> list[str]:
        """n sentences; `control` is one dict for all samples or a list of n ({field: value} and/or "length").

        None takes the run config's sampler value; `fluency` None is sampler.semantic_fluency when a sample aims
        at a field=value and sampler.length_fluency when the controls are lengths only.
        """
        s = self.config.sampler
        n = positive_int(n, "n")
        steps = positive_int(s.steps if steps is None else steps, "steps")
        seed = _seed(s.seed if seed is None else seed)
        method = s.method if method is None else method
        if method not in METHODS:
            raise ValueError(f"method: expected one of {list(METHODS)}, got {method!r}")
        grid = s.grid if grid is None else grid
        if grid != "auto" and grid not in GRIDS:
            raise ValueError(f"grid: expected one of {['auto', *GRIDS]}, got {grid!r}")
        clamp = _flag(clamp, "clamp")
        guidance_steps = s.guidance_steps if guidance_steps is None else guidance_steps
        guidance_steps = non_negative_int(guidance_steps, "guidance_steps")
        guidance_lr = s.guidance_lr if guidance_lr is None else guidance_lr
        guidance_lr = real_number(guidance_lr, "guidance_lr", low=0.0, low_open=True)
        batch_size = positive_int(s.batch_size if batch_size is None else batch_size, "batch_size")
        parsed = [self._parse(c) for c in expand_controls(control, n)]
        if fluency is None:
            fluency = s.semantic_fluency if any(label >= 0 for label, _ in parsed) else s.length_fluency
        fluency = real_number(fluency, "fluency", low=0.0)
        if grid == "auto":
            grid = "logsnr" if method.startswith("dpm") else "time-uniform"
        gen = torch.Generator().manual_seed(seed)  # on the CPU: core.sample moves its draws, same samples anywhere
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
        steps: int | None = None,
        resample: int | None = None,
        seed: int | None = None,
        clamp: bool = True,
    ) -> list[str]:
        """n fillings of the `_` blanks, given words kept exactly (core.repaint; resample = RePaint jump_n_sample,
        None: sampler.infill_resample)."""
        n = positive_int(n, "n")
        self.parse_template(template)  # one error for a bad template, before n copies are made
        return self.infill_many([template] * n, steps=steps, resample=resample, seed=seed, clamp=clamp)

    @torch.no_grad()
    def infill_many(
        self,
        templates: Sequence[str | Sequence[str | None]],
        *,
        steps: int | None = None,
        resample: int | None = None,
        seed: int | None = None,
        clamp: bool = True,
        batch_size: int | None = None,
    ) -> list[str]:
        """One filling per template, batched: known START/words/END/PAD positions are kept by core.repaint."""
        templates = check_templates(templates)
        s = self.config.sampler
        steps = positive_int(s.steps if steps is None else steps, "steps")
        seed = _seed(s.seed if seed is None else seed)
        resample = positive_int(s.infill_resample if resample is None else resample, "resample")
        batch_size = positive_int(s.batch_size if batch_size is None else batch_size, "batch_size")
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
        gen = torch.Generator(device=self.device).manual_seed(seed)  # core.repaint draws on the data's device
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
