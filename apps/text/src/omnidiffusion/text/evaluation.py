"""The evaluation protocol of `omnidiffusion-text evaluate` and the benchmark (Li et al. 2022, sec. 6-7 at toy scale).

Given a checkpoint and held-out E2E-format data:
- control targets: for held-out example i, one field=value of its MR (seeded choice among the fields the
  classifier knows); length targets: the word counts of the held-out texts; infilling templates: held-out texts
  with a contiguous middle span (a third of the words) blanked;
- samples: unguided, semantic-content guided, length guided, infilled (each with the configured sampler);
- metrics: teacher perplexity (lm-score), distinct-1/2, memorisation rate, rule-checked control success;
- baselines: unigram sampler (fluency floor), the teacher LM's own samples (fluency ceiling), unguided Diffusion-LM
  samples scored on the same control targets (control floor), and the held-out text itself (reference).
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from pathlib import Path

from omnidiffusion.core.checks import positive_int
from omnidiffusion.core.io import load_pretrained

from .baselines import teacher_samples, unigram_samples
from .checker import normalise_field, normalise_value
from .corpus import Example
from .data import TRAIN_TEXTS, fits
from .masked import MaskedDiffusionLM
from .metrics import (
    base_rate,
    distinct_n,
    infill_keep_rate,
    length_success,
    memorisation_rate,
    perplexity,
    semantic_success,
    teacher_nll,
)
from .pipeline import DiffusionLM
from .settings import TextSamplerConfig


def control_targets(examples: Sequence[Example], labels: Sequence[str], n: int, seed: int = 0) -> list[tuple[str, str]]:
    """n (field, value) targets, target i drawn from the MR of example i mod len (fields the classifier knows)."""
    rng = random.Random(seed)
    known = set(labels)
    pools = []
    for ex in examples:
        pairs = []
        for f, v in ex.mr.items():
            try:
                f2, v2 = normalise_field(f), normalise_value(f, v)
            except ValueError:
                continue
            if f"{f2}={v2}" in known:
                pairs.append((f2, v2))
        if pairs:
            pools.append(pairs)
    if not pools:
        raise ValueError("data: no meaning representation holds a field=value the classifier was trained on")
    return [rng.choice(pools[i % len(pools)]) for i in range(n)]


def infill_templates(
    texts: Sequence[str], vocab: dict[str, int], n: int, max_words: int, seed: int = 0
) -> list[list[str | None]]:
    """n templates: in-vocabulary held-out texts with a contiguous span of len//3 words (not the first) blanked."""
    rng = random.Random(seed)
    usable = [t.split() for t in texts if 3 <= len(t.split()) <= max_words and all(w in vocab for w in t.split())]
    if not usable:
        raise ValueError("data: no held-out text fits the model's length and vocabulary for infilling")
    out = []
    for i in range(n):
        words = usable[i % len(usable)]
        span = max(1, len(words) // 3)
        start = rng.randint(1, len(words) - span - 1) if len(words) - span - 1 >= 1 else 1
        out.append([None if start <= j < start + span else w for j, w in enumerate(words)])
    return out


def text_scores(texts: Sequence[str], teacher, tok, train: Sequence[str]) -> dict[str, float]:
    """Teacher perplexity, distinct-1/2 and memorisation of one sample set."""
    return {
        "teacher_ppl": perplexity(teacher_nll(teacher, tok, texts)),
        "distinct_1": distinct_n(texts, 1),
        "distinct_2": distinct_n(texts, 2),
        "memorisation": memorisation_rate(texts, train),
    }


def load_teacher(checkpoint: str | Path):
    path = Path(checkpoint) / "teacher"
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"{path}: no teacher LM (train with teacher.enabled = true)")
    return load_pretrained(path)


def load_train_texts(checkpoint: str | Path) -> list[str]:
    path = Path(checkpoint) / TRAIN_TEXTS
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no training sentences beside the checkpoint (written by `train`)")
    return [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]


def evaluate(
    lm: DiffusionLM | MaskedDiffusionLM,
    teacher,
    train: Sequence[str],
    data: Sequence[Example],
    n: int,
    sampler: TextSamplerConfig | None = None,
    *,
    samples_out: dict | None = None,
) -> dict:
    """Run the protocol above with `sampler` (default: the pipeline's run config's); returns {"model": ...,
    "baselines": ..., "protocol": ...} (flat metric dicts)."""
    n = positive_int(n, "n")
    if not data:
        raise ValueError("data: expected at least one held-out example")
    tok, s = lm.tokenizer, lm.config.sampler if sampler is None else sampler
    masked = isinstance(lm, MaskedDiffusionLM)  # CFG control, clamped length/infilling, one sampler
    if masked:
        kw = dict(
            steps=s.steps, seed=s.seed, batch_size=s.batch_size, guidance_scale=s.guidance_scale, unmasking=s.unmasking
        )
        labels = lm.labels
    else:
        kw = dict(
            steps=s.steps,
            method=s.method,
            grid=s.grid,
            seed=s.seed,
            batch_size=s.batch_size,
            guidance_steps=s.guidance_steps,
            guidance_lr=s.guidance_lr,
        )
        labels = lm.classifier.labels if lm.classifier is not None else []

    def generate(k: int, control=None, fluency: float = 0.0) -> list[str]:
        extra = {} if masked or control is None else {"fluency": fluency}
        return lm.generate(k, control=control, **kw, **extra)

    times: dict[str, float] = {}

    def timed(name, fn):
        t0 = time.perf_counter()
        out = fn()
        times[name] = round(time.perf_counter() - t0, 2)
        return out

    unguided = timed("unguided", lambda: generate(n))
    model = {f"unguided_{k}": v for k, v in text_scores(unguided, teacher, tok, train).items()}
    baselines: dict[str, dict] = {}
    protocol: dict = {
        "n": n,
        "sampler": f"ancestral (core.discrete), unmasking {s.unmasking}" if masked else s.method,
        "steps": s.steps,
        "seed": s.seed,
        "held_out_examples": len(data),
        "guidance": {
            "adagrad_steps": s.guidance_steps,
            "lr": s.guidance_lr,
            "semantic_fluency": s.semantic_fluency,
            "length_fluency": s.length_fluency,
        },
        "vocab_size": tok.get_vocab_size(),
        "seq_len": lm.seq_len,
    }
    sets = {"unguided": unguided}

    if labels and any(ex.mr for ex in data):
        targets = control_targets(data, labels, n, s.seed)
        guided = timed("semantic", lambda: generate(n, [{f: v} for f, v in targets], s.semantic_fluency))
        model["semantic_success"] = semantic_success(guided, targets)
        model["semantic_teacher_ppl"] = perplexity(teacher_nll(teacher, tok, guided))
        baselines.setdefault("unguided_diffusion", {})["semantic_success"] = base_rate(unguided, targets)
        protocol["semantic_targets"] = sorted({f"{f}={v}" for f, v in targets})
        sets["semantic"] = [f"[{f}={v}] {x}" for (f, v), x in zip(targets, guided, strict=True)]

    lengths = [min(max(len(ex.text.split()), 1), lm.seq_len - 2) for ex in data]
    lengths = [lengths[i % len(lengths)] for i in range(n)]
    by_length = timed("length", lambda: generate(n, [{"length": k} for k in lengths], s.length_fluency))
    model["length_exact"] = length_success(by_length, lengths)
    model["length_within_2"] = length_success(by_length, lengths, tolerance=2)
    model["length_teacher_ppl"] = perplexity(teacher_nll(teacher, tok, by_length))
    baselines.setdefault("unguided_diffusion", {})["length_exact"] = length_success(unguided, lengths)
    sets["length"] = [f"[{k}] {x}" for k, x in zip(lengths, by_length, strict=True)]

    templates = infill_templates([ex.text for ex in data], tok.get_vocab(), n, lm.seq_len - 2, s.seed)
    filled = timed(
        "infill",
        lambda: lm.infill_many(
            templates, steps=s.steps, resample=s.infill_resample, seed=s.seed, batch_size=s.batch_size,
            **({"unmasking": s.unmasking} if masked else {}),
        ),  # fmt: skip
    )
    model["infill_keep_rate"] = infill_keep_rate(filled, templates)
    model["infill_teacher_ppl"] = perplexity(teacher_nll(teacher, tok, filled))
    sets["infill"] = [f"[{' '.join(w or '_' for w in tm)}] {x}" for tm, x in zip(templates, filled, strict=True)]

    uni = unigram_samples(train, n, s.seed)
    baselines["unigram"] = text_scores(uni, teacher, tok, train)
    teach = teacher_samples(teacher, tok, n, lm.seq_len - 2, s.seed)
    baselines["teacher_lm"] = text_scores(teach, teacher, tok, train)
    baselines["held_out_text"] = {"teacher_ppl": perplexity(teacher_nll(teacher, tok, [ex.text for ex in data]))}
    if masked:
        protocol["guidance"] = {"classifier_free_scale": s.guidance_scale}
        held = fits(tok, [ex.text for ex in data], lm.seq_len)[:n]
        model.update(timed("elbo", lambda: lm.perplexity_bound(held)))
        protocol["elbo"] = {"bound": "continuous-time (MDLM), 32 stratified times", "sentences": len(held)}
    protocol["sampling_seconds"] = times
    if samples_out is not None:
        samples_out.update(sets, unigram=uni, teacher_lm=teach)
    return {"model": model, "baselines": baselines, "protocol": protocol}
