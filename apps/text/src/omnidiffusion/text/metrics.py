"""Text-generation metrics in the field's conventions.

- Teacher perplexity ("lm-score", Li et al. 2022 sec. 6.1 and the released `eval_ppl`): each sample is wrapped
  as START w_1 .. w_n END, out-of-vocabulary words map to UNK, the teacher's mean token NLL is taken per sample
  (over w_1 .. w_n, END), averaged over samples, then exponentiated.
- distinct-n (Li et al. 2016): distinct n-grams / all n-grams over the whole sample set.
- memorisation rate: share of samples that equal a training sentence verbatim (after whitespace normalisation).
- control success rates use the rule-based `checker`, never the guiding classifier.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import torch
from tokenizers import Tokenizer
from torch import nn

from .checker import has_value, keeps_words, word_count


@torch.no_grad()
def teacher_nll(teacher: nn.Module, tok: Tokenizer, texts: Sequence[str], batch_size: int = 256) -> list[float]:
    """Per-sample mean NLL (nats/token) of START w.. END under an autoregressive LM returning (B, L, V) logits."""
    if not texts:
        raise ValueError("texts: expected at least one sample")
    max_len = getattr(teacher, "n_positions", None)
    seqs = []
    for i, text in enumerate(texts):
        ids = [2, *tok.encode(text).ids, 3]
        if max_len is not None and len(ids) > max_len:
            raise ValueError(f"texts[{i}]: {len(ids)} tokens with START/END exceed the teacher's {max_len} positions")
        seqs.append(ids)
    out = []
    device = next(teacher.parameters()).device
    for lo in range(0, len(seqs), batch_size):
        chunk = seqs[lo : lo + batch_size]
        L = max(len(s) for s in chunk)
        ids = torch.zeros(len(chunk), L, dtype=torch.long)
        for i, s in enumerate(chunk):
            ids[i, : len(s)] = torch.tensor(s)
        logp = torch.log_softmax(teacher(ids.to(device)).float(), dim=-1)[:, :-1]  # (B, L-1, V)
        tgt = ids[:, 1:].to(device)
        tok_nll = -logp.gather(-1, tgt[..., None])[..., 0]  # (B, L-1)
        for i, s in enumerate(chunk):
            out.append(tok_nll[i, : len(s) - 1].mean().item())
    return out


def perplexity(nlls: Sequence[float]) -> float:
    """exp(mean of per-sample mean NLLs), the lm-score convention."""
    if not nlls:
        raise ValueError("nlls: expected at least one value")
    return math.exp(sum(nlls) / len(nlls))


def distinct_n(texts: Iterable[str], n: int) -> float:
    """Distinct n-grams over all n-grams in the set (0 when there are none)."""
    if n < 1:
        raise ValueError(f"n: expected an integer >= 1, got {n}")
    grams = [tuple(w[i : i + n]) for w in (t.split() for t in texts) for i in range(len(w) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def memorisation_rate(texts: Sequence[str], train: Iterable[str]) -> float:
    """Share of `texts` that appear verbatim in `train`."""
    if not texts:
        raise ValueError("texts: expected at least one sample")
    seen = {" ".join(t.split()) for t in train}
    return sum(" ".join(t.split()) in seen for t in texts) / len(texts)


def semantic_success(texts: Sequence[str], targets: Sequence[tuple[str, str]]) -> float:
    """Share of texts that realise their own (field, value) target, judged by the rule checker."""
    if len(texts) != len(targets) or not texts:
        raise ValueError(f"texts, targets: expected equal non-zero lengths, got {len(texts)} and {len(targets)}")
    return sum(has_value(x, f, v) for x, (f, v) in zip(texts, targets, strict=True)) / len(texts)


def base_rate(texts: Sequence[str], targets: Sequence[tuple[str, str]]) -> float:
    """Mean over targets of the share of (unguided) texts realising it: the control floor."""
    if not texts or not targets:
        raise ValueError("texts, targets: expected non-empty lists")
    return sum(sum(has_value(x, f, v) for x in texts) / len(texts) for f, v in targets) / len(targets)


def length_success(texts: Sequence[str], lengths: Sequence[int], tolerance: int = 0) -> float:
    """Share of texts whose word count is within `tolerance` of its target (0: exact)."""
    if len(texts) != len(lengths) or not texts:
        raise ValueError(f"texts, lengths: expected equal non-zero lengths, got {len(texts)} and {len(lengths)}")
    return sum(abs(word_count(x) - n) <= tolerance for x, n in zip(texts, lengths, strict=True)) / len(texts)


def infill_keep_rate(texts: Sequence[str], templates: Sequence[list[str | None]]) -> float:
    """Share of infilled texts that keep every given template word in place (and the template's length)."""
    if len(texts) != len(templates) or not texts:
        raise ValueError(f"texts, templates: expected equal non-zero lengths, got {len(texts)} and {len(templates)}")
    return sum(keeps_words(tm, x) for x, tm in zip(texts, templates, strict=True)) / len(texts)
