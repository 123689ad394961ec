"""`MaskedDiffusionLM`: masked (absorbing-state) discrete diffusion over word ids beside Diffusion-LM.

    lm = MaskedDiffusionLM.from_pretrained("runs/masked")      # trained with --set model.kind=masked
    lm.generate(8)                                               # the run config's [sampler] (steps, seed ...)
    lm.generate(8, steps=32)                                     # ancestral sampling, any number of steps
    lm.generate(8, steps=32, unmasking="independent")            # MDLM's binomial reveals (default: fixed-count)
    lm.generate(8, control={"food": "Italian"})                  # classifier-free guidance on the attribute
    lm.generate(8, control={"length": 12})                       # exact: END and PAD clamped after word 12
    lm.infill("The Eagle is a _ _ near Burger King .")           # exact: the given words are clamped
    lm.nelbo(["The Eagle is a pub ."])                           # nats, an upper bound on -log p(sentence)

The process, losses, bound and sampler are `omnidiffusion.core.discrete` (D3PM's absorbing kernel, Austin et al.
2021; MDLM's continuous-time NELBO, Sahoo et al. 2024). There is no word-vector rounding: the state is the ids.

Control. Classifier guidance needs grad_x log p(c | x_t), which a discrete x_t does not have; its exact discrete
form re-weights every candidate token of every position by p(c | x_t with that token), i.e. L x V classifier
calls per step (Nisonoff et al. 2024; Schiff et al. 2024 use a first-order approximation of exactly this). Here
the denoiser itself is conditional (a field=value label, dropped for 10% of training rows) and guidance is
classifier-free on the x0 log-probabilities: log p_w = log p(x0 | x_t) + w (log p(x0 | x_t, c) - log p(x0 | x_t)),
renormalised per token (w = 1: the plain conditional). Length and infilling clamp known tokens, which for the
absorbing kernel samples the model's conditional exactly; blanks are restricted to ordinary words.

Defaults come from the run config `train` stored (run_config.json): sampler.steps, seed, batch_size and
guidance_scale and unmasking; the masked model has one sampler (core.discrete's ancestral steps), so sampler.method
must be ddpm. sampler.unmasking = "fixed-count" (default) reveals the forward process's expected number of tokens
per step, positions uniformly at random, so with steps >= seq_len - 1 the chain reveals one token at a time and
has no factorisation error; "independent" is D3PM / MDLM's per-token coin (binomial counts).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from tokenizers import Tokenizer
from torch import Tensor

from omnidiffusion.core import discrete
from omnidiffusion.core.checks import non_negative_int, positive_int, real_number, resolve_device
from omnidiffusion.core.io import has_run_config, open_pretrained
from omnidiffusion.core.tensors import rand
from omnidiffusion.core.training import unwrap_model

from .control import Control, check_templates, expand_controls, parse_control, parse_template
from .data import SPECIALS, decode, encode, load_tokenizer
from .models import MaskedDiffusionNet
from .settings import SEED_MAX, TextConfig, legacy_config


def make_process(net: MaskedDiffusionNet, schedule: str = "linear") -> discrete.CategoricalProcess:
    """The absorbing kernel over the V words + [MASK] (id V)."""
    return discrete.CategoricalProcess(net.vocab_size + 1, "absorbing", schedule, mask_id=net.mask_id)


def pick_labels(y: Tensor, null: int, dropout: float, generator: torch.Generator | None = None) -> Tensor:
    """One training label per row: a random field=value of its MR (multi-hot `y` (B, K)), or `null` with
    probability `dropout` (and for rows without labels): classifier-free guidance's label dropout."""
    has = y.sum(1) > 0
    choice = torch.multinomial(y + (~has)[:, None].to(y), 1, generator=generator)[:, 0]
    drop = rand(y.shape[0], generator, device=y.device) < dropout
    return torch.where(has & ~drop, choice, torch.full_like(choice, null))


def masked_loss(
    process: discrete.CategoricalProcess,
    loss: str = "mdlm",
    d3pm_steps: int = 1000,
    hybrid: float = 0.01,
    cond_dropout: float = 0.1,
):
    """fit's loss_fn for batches of ids (B, L) or (ids, multi-hot labels): per-token nats, averaged."""

    def fn(model, batch) -> Tensor:
        ids, y = batch if isinstance(batch, (tuple, list)) else (batch, None)
        net = unwrap_model(model)
        cond = {}
        if net.label is not None:
            if y is None:
                label = torch.full((ids.shape[0],), net.null_label, dtype=torch.long, device=ids.device)
            else:
                label = pick_labels(y, net.null_label, cond_dropout)
            cond["label"] = label
        if loss == "mdlm":
            nats = discrete.masked_diffusion_loss(model, ids, process, **cond)
        else:
            nats = discrete.d3pm_loss(model, ids, process, d3pm_steps, hybrid=hybrid, **cond)
        return nats.mean() / ids.shape[1]

    return fn


class MaskedDiffusionLM:
    """A trained masked diffusion LM with its tokenizer, absorbing process (config.masked) and run config."""

    def __init__(self, net: MaskedDiffusionNet, tokenizer: Tokenizer, config: TextConfig, device="cpu") -> None:
        if config.sampler.method != "ddpm":
            raise ValueError(
                "sampler.method: a masked model samples with core.discrete's ancestral steps only (ddpm), "
                f"got {config.sampler.method!r}"
            )
        self.device = resolve_device(device)
        self.net = net.to(self.device).eval()
        self.tokenizer = tokenizer
        self.config = config
        self.process = make_process(net, config.masked.schedule)
        self.seq_len = net.seq_len
        self.labels = net.labels

    @classmethod
    def from_pretrained(
        cls, directory: str | Path, *, device: str | torch.device = "cpu", config: TextConfig | None = None
    ) -> MaskedDiffusionLM:
        """Load a directory written by `omnidiffusion-text train --set model.kind=masked`; `config` replaces the
        stored run config (the CLI passes it with the --set overrides applied)."""
        stored = has_run_config(directory)
        pre = open_pretrained(
            directory,
            MaskedDiffusionNet,
            config_cls=TextConfig if stored and config is None else None,
            device=device,
            what="a masked diffusion LM checkpoint written by `train`",
        )
        config = config or pre.config
        if not stored:  # written before run_config.json: the masked schedule is in the weights' metadata
            config = legacy_config(config or TextConfig(), pre.metadata, masked=True)
        return cls(pre.model, load_tokenizer(directory), config, pre.device)

    # ------------------------------------------------------------------------------------------------------------
    def _model(self, label: Tensor | None, scale: float, words_only: Tensor | None):
        """x0 logits for core.discrete: classifier-free guided where `label` >= 0; specials banned at `words_only`."""
        net = self.net

        def model(x: Tensor, t: Tensor) -> Tensor:
            if label is None or net.label is None or not bool((label >= 0).any()):
                out = torch.log_softmax(net(x, t), dim=-1)
            else:
                on = label >= 0
                cond = torch.where(on, label, torch.full_like(label, net.null_label))
                lc = torch.log_softmax(net(x, t, cond), dim=-1)
                lu = torch.log_softmax(net(x, t), dim=-1)
                w = torch.where(on, torch.full_like(t, scale), torch.ones_like(t))[:, None, None]
                out = torch.where(torch.isfinite(lc), lu + w * (lc - lu), lc)
            if words_only is not None:
                ban = torch.zeros_like(out, dtype=torch.bool)
                ban[..., : len(SPECIALS)] = True
                out = out.masked_fill(ban & words_only[..., None], float("-inf"))
            return out

        return model

    def _parse(self, c: Control) -> tuple[int, int]:
        return parse_control(
            c,
            self.seq_len,
            self.labels,
            who="model",
            missing="a conditional masked model, which this checkpoint is not "
            "(train on a corpus with meaning representations, masked.conditional = true)",
        )

    def _run(
        self, known: Tensor, x_known: Tensor, label: Tensor, steps: int, scale: float, gen, words: Tensor, unmasking
    ):
        shape = tuple(known.shape)
        model = self._model(label.to(self.device), scale, words.to(self.device))
        x = discrete.sample(
            model,
            shape,
            self.process,
            steps,
            generator=gen,
            device=self.device,
            x_known=x_known.to(self.device),
            known=known.to(self.device),
            unmasking=unmasking,
        )
        return decode(self.tokenizer, x.cpu())

    def _frame(self, n: int) -> tuple[Tensor, Tensor, Tensor]:
        """known (n, L), x_known (n, L), words_only (n, L): START clamped at position 0, everything else free."""
        known = torch.zeros(n, self.seq_len, dtype=torch.bool)
        known[:, 0] = True
        x_known = torch.zeros(n, self.seq_len, dtype=torch.long)
        x_known[:, 0] = 2
        return known, x_known, torch.zeros(n, self.seq_len, dtype=torch.bool)

    @torch.no_grad()
    def generate(
        self,
        n: int,
        *,
        steps: int | None = None,
        control: Control | Sequence[Control] | None = None,
        seed: int | None = None,
        guidance_scale: float | None = None,
        batch_size: int | None = None,
        unmasking: str | None = None,
    ) -> list[str]:
        """n sentences by ancestral sampling in `steps` steps; `control` as DiffusionLM.generate. None: the
        run config's sampler.steps, seed, guidance_scale, batch_size, unmasking ("fixed-count" or
        "independent", core.discrete.sample)."""
        s = self.config.sampler
        unmasking = s.unmasking if unmasking is None else unmasking
        n = positive_int(n, "n")
        steps = positive_int(s.steps if steps is None else steps, "steps")
        seed = non_negative_int(s.seed if seed is None else seed, "seed", maximum=SEED_MAX)
        scale = s.guidance_scale if guidance_scale is None else guidance_scale
        scale = real_number(scale, "guidance_scale", low=0.0)
        batch_size = positive_int(s.batch_size if batch_size is None else batch_size, "batch_size")
        parsed = [self._parse(c) for c in expand_controls(control, n)]
        known, x_known, words = self._frame(n)
        for i, (_, length) in enumerate(parsed):
            if length:  # END after the n-th word, PAD after it; the word slots hold ordinary words
                known[i, length + 1 :] = True
                x_known[i, length + 1] = 3
                words[i, 1 : length + 1] = True
        label = torch.tensor([p[0] for p in parsed])
        gen = torch.Generator(device=self.device).manual_seed(seed)  # core.discrete draws on the data's device
        out: list[str] = []
        for lo in range(0, n, batch_size):
            sl = slice(lo, lo + batch_size)
            out += self._run(known[sl], x_known[sl], label[sl], steps, scale, gen, words[sl], unmasking)
        return out

    def parse_template(self, template):
        """As DiffusionLM.parse_template: words and None for blanks, checked against the vocabulary and length."""
        return parse_template(template, self.tokenizer, self.seq_len)

    @torch.no_grad()
    def infill(self, template, n: int = 1, *, steps: int | None = None, seed: int | None = None) -> list[str]:
        """n fillings of the `_` blanks; the given words are clamped (exact conditional sampling)."""
        n = positive_int(n, "n")
        self.parse_template(template)
        return self.infill_many([template] * n, steps=steps, seed=seed)

    @torch.no_grad()
    def infill_many(
        self,
        templates,
        *,
        steps: int | None = None,
        seed: int | None = None,
        batch_size: int | None = None,
        unmasking: str | None = None,
        **_unused,
    ) -> list[str]:
        """One filling per template: START, the words, END and PAD clamped; a blank is one ordinary word.
        None: the run config's sampler values; other keywords of DiffusionLM.infill_many (resample) are ignored."""
        templates = check_templates(templates)
        s = self.config.sampler
        unmasking = s.unmasking if unmasking is None else unmasking
        steps = positive_int(s.steps if steps is None else steps, "steps")
        seed = non_negative_int(s.seed if seed is None else seed, "seed", maximum=SEED_MAX)
        batch_size = positive_int(s.batch_size if batch_size is None else batch_size, "batch_size")
        parsed = [self.parse_template(t) for t in templates]
        N, L = len(parsed), self.seq_len
        x_known = torch.zeros(N, L, dtype=torch.long)
        known = torch.ones(N, L, dtype=torch.bool)
        for i, words in enumerate(parsed):
            x_known[i, 0], x_known[i, len(words) + 1] = 2, 3
            for j, w in enumerate(words, start=1):
                if w is None:
                    known[i, j] = False
                else:
                    x_known[i, j] = self.tokenizer.token_to_id(w)
        label = torch.full((N,), -1)
        gen = torch.Generator(device=self.device).manual_seed(seed)  # core.discrete draws on the data's device
        out: list[str] = []
        for lo in range(0, N, batch_size):
            sl = slice(lo, lo + batch_size)
            out += self._run(known[sl], x_known[sl], label[sl], steps, 1.0, gen, ~known[sl], unmasking)
        return out

    # ------------------------------------------------------------------------------------------------------------
    @torch.no_grad()
    def nelbo(
        self,
        texts: Sequence[str],
        *,
        steps: int | None = None,
        n_times: int = 32,
        seed: int = 0,
        batch_size: int = 256,
    ) -> Tensor:
        """Per-sentence negative ELBO in nats (>= -log p(sentence)) of the padded id sequence, unconditional.

        steps=None: MDLM's continuous-time bound (core.discrete.masked_elbo, `n_times` stratified times);
        steps=T: the T-step discrete-time bound (core.discrete.elbo), a bound on the T-step sampler's own law.
        """
        if isinstance(texts, str) or not isinstance(texts, Sequence) or not texts:
            raise ValueError("texts: expected a non-empty list of sentences")
        n_times = positive_int(n_times, "n_times")
        steps = None if steps is None else positive_int(steps, "steps")
        ids = encode(self.tokenizer, list(texts), self.seq_len)
        gen = torch.Generator(device=self.device).manual_seed(non_negative_int(seed, "seed", maximum=SEED_MAX))
        model = self._model(None, 1.0, None)
        out = []
        for lo in range(0, len(ids), positive_int(batch_size, "batch_size")):
            x0 = ids[lo : lo + batch_size].to(self.device)
            if steps is None:
                out.append(discrete.masked_elbo(model, x0, self.process, n_times=n_times, generator=gen))
            else:
                out.append(discrete.elbo(model, x0, self.process, steps, generator=gen))
        return torch.cat(out).cpu()

    def perplexity_bound(self, texts: Sequence[str], **kw) -> dict[str, float]:
        """ELBO perplexity in the teacher's convention: exp(mean over sentences of nats / (words + END)), plus
        bits per token and the total-token form; an upper bound on the model's perplexity."""
        nats = self.nelbo(texts, **kw)
        counts = torch.tensor([len(self.tokenizer.encode(t).ids) + 1 for t in texts], dtype=torch.float64)
        return {
            "elbo_ppl": float(torch.exp((nats / counts).mean())),
            "elbo_ppl_tokens": discrete.perplexity_bound(nats, counts),
            "bits_per_token": discrete.bits_per_token(nats, counts),
        }
