"""Baseline text generators the Diffusion-LM samples are compared with.

- unigram sampler (the fluency floor): a length drawn from the training lengths, then i.i.d. words from the
  training unigram distribution;
- the teacher LM's own ancestral samples (the fluency ceiling: text from the very model that scores fluency);
- unguided Diffusion-LM samples are the control floor (see evaluation.py).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence

import torch
from tokenizers import Tokenizer
from torch import nn


def unigram_samples(train: Sequence[str], n: int, seed: int = 0) -> list[str]:
    """n texts of i.i.d. training-frequency words with lengths drawn from the training lengths."""
    if not train or n < 1:
        raise ValueError(f"train, n: expected a non-empty corpus and n >= 1, got {len(train)} texts, n={n}")
    counts = Counter(w for t in train for w in t.split())
    words, weights = zip(*sorted(counts.items()), strict=True)
    lengths = [len(t.split()) for t in train]
    rng = random.Random(seed)
    return [" ".join(rng.choices(words, weights, k=rng.choice(lengths))) for _ in range(n)]


@torch.no_grad()
def teacher_samples(
    teacher: nn.Module, tok: Tokenizer, n: int, max_words: int, seed: int = 0, batch_size: int = 256
) -> list[str]:
    """n ancestral samples (temperature 1) from an autoregressive LM, START .. until END or max_words words."""
    if n < 1 or max_words < 1:
        raise ValueError(f"n, max_words: expected >= 1, got {n}, {max_words}")
    gen = torch.Generator().manual_seed(seed)
    device = next(teacher.parameters()).device
    out: list[str] = []
    for lo in range(0, n, batch_size):
        b = min(batch_size, n - lo)
        ids = torch.full((b, 1), 2, dtype=torch.long)
        done = torch.zeros(b, dtype=torch.bool)
        for _ in range(max_words + 1):
            logits = teacher(ids.to(device))[:, -1].float().cpu()  # (b, V)
            logits[:, :3] = -float("inf")  # never PAD, UNK or START inside a sentence
            nxt = torch.multinomial(torch.softmax(logits, -1), 1, generator=gen)[:, 0]
            nxt = torch.where(done, torch.full_like(nxt, 3), nxt)
            ids = torch.cat([ids, nxt[:, None]], dim=1)
            done |= nxt == 3
            if bool(done.all()):
                break
        for row in ids[:, 1:].tolist():
            words = []
            for j in row:
                if j == 3:
                    break
                words.append(tok.id_to_token(j))
            out.append(" ".join(words[:max_words]))
    return out
