"""Controllable generation on the continuous latents (Li et al. 2022, sec. 5).

Diffusion-LM steers a sample by a few gradient steps on the latent at every diffusion step, minimising a control
loss plus a fluency term that keeps the latent near where the diffusion put it (sec. 5.2, eq. 5 and the released
code: 3 Adagrad steps of size 0.1 per step, a fresh Adagrad state each time, none in the last 10 table steps).
`AdagradGuidance` does this as a core Denoiser wrapper: before the network runs on x_t it moves x_t and returns
(x0_hat, eps_hat) of the moved state. Ancestral/DDIM steps build the next state from (x0_hat, eps_hat) only, so
the chain continues from the moved latent exactly as in the paper, and every core sampler can be guided.

Control losses (all per sample, (B,)):
- semantic content: -log p(field=value | x_t, t) from the time-aware `AttributeClassifier`;
- length: the paper's length control uses the diffusion model as its own classifier: ||f(x_t, t) - EMB(target)||^2
  over the positions that must hold END (position n+1) and PAD (after it), f without the clamping hook.
Infilling keeps the given words through core's known-value conditioning (`core.repaint`); see pipeline.py.
`parse_control` and `parse_template` read a control dict and an infilling template for both pipelines (DiffusionLM
and the masked MaskedDiffusionLM).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from tokenizers import Tokenizer
from torch import Tensor, nn

from omnidiffusion.core.checks import non_negative_int, positive_int, real_number
from omnidiffusion.core.denoiser import Denoiser, DenoiserBase, DenoiserOutput
from omnidiffusion.core.tensors import append_dims, per_sample

from .checker import normalise_field, normalise_value
from .data import SPECIALS

ControlLoss = Callable[[Tensor, Tensor], Tensor]  # (x (B,L,d), t (B,)) -> (B,) loss
Control = dict[str, object]  # one sample's targets: {"food": "Italian"} and/or {"length": 12}


def expand_controls(control: Control | Sequence[Control] | None, n: int) -> list[Control]:
    """One control dict per sample: None -> no control, one dict -> the same for all, a list -> checked length."""
    if control is None:
        return [{}] * n
    if isinstance(control, dict):
        return [control] * n
    if isinstance(control, str) or not isinstance(control, Sequence):
        raise ValueError(f"control: expected a dict like {{'food': 'Italian'}} or a list of {n} dicts, got {control!r}")
    controls = list(control)
    if len(controls) != n:
        raise ValueError(f"control: expected one dict per sample ({n}), got {len(controls)}")
    return controls


def parse_control(c: Control, seq_len: int, labels: Sequence[str] | None, *, who: str, missing: str) -> tuple[int, int]:
    """(label index or -1, target length or 0) of one control dict.

    `labels` are the semantic labels the model can aim at ("field=value"; None or empty when it has none, in which
    case a semantic target is refused with `missing`); `who` names what holds them in the error ("model").
    """
    if not isinstance(c, dict):
        raise ValueError(f"control: expected a dict like {{'food': 'Italian'}} or {{'length': 12}}, got {c!r}")
    label, length = -1, 0
    semantic = [(k, v) for k, v in c.items() if k != "length"]
    if "length" in c:
        length = positive_int(c["length"], "control['length']", maximum=seq_len - 2)
    if len(semantic) > 1:
        raise ValueError(f"control: expected one field=value per sample (and/or length), got {semantic}")
    if semantic:
        field, value = semantic[0]
        try:
            name = f"{normalise_field(field)}={normalise_value(field, str(value))}"
        except ValueError as e:  # names the field or value; say which argument held it
            raise ValueError(f"control: {e}") from None
        if not labels:
            raise ValueError(f"control: {field!r} needs {missing}")
        if name not in labels:
            raise ValueError(f"control: the {who} has no label {name!r}; it knows {list(labels)}")
        label = list(labels).index(name)
    return label, length


def check_templates(templates: Sequence) -> list:
    """The `templates` of a batched infill as a list: refuses one bare string (use infill) and an empty list."""
    if isinstance(templates, str) or not isinstance(templates, Sequence):
        raise ValueError(f"templates: expected a list of templates, got {templates!r} (use infill for one)")
    if not templates:
        raise ValueError("templates: expected at least one template, got an empty list")
    return list(templates)


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


class AdagradGuidance(DenoiserBase):
    """Move x_t by `steps` Adagrad steps on loss(x, t) + fluency * ||x - x_t||^2 / sigma_t before predicting.

    Li et al. 2022 eq. 5 (gradient of log p(c | x) + lambda log p(x_{t-1} | x_t)); no updates once t <= t_stop.
    """

    def __init__(
        self,
        inner: Denoiser,
        loss: ControlLoss,
        *,
        steps: int = 3,
        lr: float = 0.1,
        fluency: float = 0.01,
        t_stop: float | None = None,
    ) -> None:
        steps = non_negative_int(steps, "steps")
        lr = real_number(lr, "lr", low=0.0, low_open=True)
        fluency = real_number(fluency, "fluency", low=0.0)
        self.inner, self.loss, self.steps, self.lr, self.fluency = inner, loss, steps, lr, fluency
        self.schedule = inner.schedule
        T = getattr(self.schedule, "T", 1000)
        self.t_stop = 10.0 / T if t_stop is None else t_stop

    def predict(self, x_t: Tensor, t: float | Tensor, **cond) -> DenoiserOutput:
        tt = per_sample(t, x_t)
        if self.steps == 0 or float(tt.max()) <= self.t_stop:
            return self.inner.predict(x_t, t, **cond)
        sigma = append_dims(self.schedule.sigma(tt), x_t.ndim).to(x_t.dtype)
        anchor = x_t.detach()
        x = anchor.clone().requires_grad_(True)
        with torch.enable_grad():
            for _ in range(self.steps):
                opt = torch.optim.Adagrad([x], lr=self.lr)  # fresh state each step, as the released code
                total = self.loss(x, tt.to(x.dtype)).sum() + self.fluency * (((x - anchor) ** 2) / sigma).sum()
                x.grad = torch.autograd.grad(total, x)[0]  # gradients for x only, none into the networks
                opt.step()
        return self.inner.predict(x.detach(), t, **cond)


def semantic_loss(classifier: nn.Module, label_ids: Tensor) -> ControlLoss:
    """-log sigmoid(logit[label]) of the multi-label attribute classifier, one target label per sample."""

    def loss(x: Tensor, t: Tensor) -> Tensor:
        logits = classifier(x, t)  # (B, K)
        if label_ids.shape != (x.shape[0],):
            raise ValueError(f"label_ids: expected shape ({x.shape[0]},), got {tuple(label_ids.shape)}")
        picked = logits.gather(1, label_ids[:, None].to(logits.device))[:, 0]
        return nn.functional.softplus(-picked)  # -log sigmoid

    return loss


def length_targets(lengths: Tensor, seq_len: int, pad_id: int = 0, end_id: int = 3) -> tuple[Tensor, Tensor]:
    """(B,) word counts -> (B, L) target ids and (B, L) bool mask of the controlled positions (END, then PADs)."""
    if lengths.ndim != 1:
        raise ValueError(f"lengths: expected shape (B,), got {tuple(lengths.shape)}")
    if int(lengths.min()) < 1 or int(lengths.max()) + 2 > seq_len:
        raise ValueError(
            f"length: expected 1 <= length <= seq_len - 2 = {seq_len - 2}, got "
            f"{lengths.tolist() if lengths.numel() < 8 else (int(lengths.min()), int(lengths.max()))}"
        )
    pos = torch.arange(seq_len)[None]  # (1, L)
    end = lengths[:, None] + 1  # (B, 1): START at 0, words 1..n, END at n+1
    mask = pos >= end
    ids = torch.where(pos == end, torch.full_like(pos, end_id), torch.full_like(pos, pad_id)).expand(len(lengths), -1)
    return ids, mask


def length_loss(net: nn.Module, lengths: Tensor, word_weight: float = 1.0) -> ControlLoss:
    """The diffusion model as length classifier on its x0 estimate f(x_t, t) (no clamping):
    squared distance to EMB(END) at position n+1 and EMB(PAD) after it (the released length control), plus
    `word_weight` x -log(1 - p(END or PAD | f_j)) at the word positions 1..n (the rounding head's probability that
    a word slot would end the sentence early)."""
    ids, mask = length_targets(lengths, net.seq_len)
    pos = torch.arange(net.seq_len)[None]
    words = (pos >= 1) & (pos <= lengths[:, None].cpu())  # (B, L) the n word slots

    def loss(x: Tensor, t: Tensor) -> Tensor:
        target = net.embed(ids.to(x.device)).detach()  # (B, L, d)
        x0 = net(x, t)  # (B, L, d)
        err = ((x0 - target) ** 2).sum(-1)  # (B, L)
        total = (err * mask.to(err)).sum(-1)
        if word_weight > 0:
            logp = torch.log_softmax(net.logits(x0), dim=-1)  # (B, L, V)
            p_stop = (logp[..., 0].exp() + logp[..., 3].exp()).clamp(max=1 - 1e-6)  # PAD or END
            total = total - word_weight * (torch.log1p(-p_stop) * words.to(x0)).sum(-1)
        return total

    return loss


def combine(losses: list[ControlLoss]) -> ControlLoss:
    """Several controls at once: the sum of their losses (the paper's composition, sec. 7.2)."""

    def loss(x: Tensor, t: Tensor) -> Tensor:
        return sum(f(x, t) for f in losses)

    return loss
