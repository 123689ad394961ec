"""Networks of the text app; none of them knows a noise schedule (they receive t in [0, 1]).

- `DiffusionLMNet`: Diffusion-LM's transformer denoiser (Li et al. 2022, sec. 4 and the `transformer` model of
  the released code): word vectors (B, L, d) -> MLP up to the hidden size, + learned positions + time embedding,
  LayerNorm, a BERT encoder built from a `transformers.BertConfig` (random init, nothing downloaded), MLP down to
  d. It owns the word-embedding table EMB (learned jointly with the diffusion, sec. 4.1) and the rounding head
  p(w | x) = softmax(EMB x + b) whose weight is tied to EMB.
- `AttributeClassifier`: a time-aware classifier p(field=value | x_t, t) on noisy word vectors (sec. 5.2 trains
  its classifiers on noised latents, with the diffusion time as an extra input); convolutional, see its docstring.
- `MaskedDiffusionNet`: the same BERT-encoder backbone over token embeddings for masked (absorbing) discrete
  diffusion (MDLM, Sahoo et al. 2024): ids with [MASK] (B, L) -> x0 logits (B, L, V + 1), the [MASK] column -inf.
- `TeacherLM`: a small GPT-2 (from a `transformers.GPT2Config`, random init) whose perplexity scores fluency,
  the paper's "lm-score".
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from transformers import BertConfig, GPT2Config, GPT2LMHeadModel
from transformers.models.bert.modeling_bert import BertEncoder

from omnidiffusion.core.io import ConfigurableModule
from omnidiffusion.core.nn import SinusoidalEmbedding, TimeEmbedding


def bert_encoder(hidden_size: int, num_layers: int, num_heads: int, intermediate_size: int, dropout: float):
    """A randomly initialised BERT encoder stack (no embeddings, no pooler) from a local BertConfig."""
    if hidden_size % num_heads:
        raise ValueError(f"hidden_size: expected a multiple of num_heads={num_heads}, got {hidden_size}")
    config = BertConfig(
        hidden_size=hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        intermediate_size=intermediate_size,
        hidden_dropout_prob=dropout,
        attention_probs_dropout_prob=dropout,
    )
    config._attn_implementation = "sdpa"
    return BertEncoder(config)


def _check_latents(x: Tensor, t: Tensor, dim: int, max_len: int) -> None:
    if x.ndim != 3 or x.shape[-1] != dim or x.shape[1] > max_len:
        raise ValueError(f"x: expected shape (B, L<={max_len}, {dim}), got {tuple(x.shape)}")
    if t.shape != (x.shape[0],):
        raise ValueError(f"t: expected shape ({x.shape[0]},), got {tuple(t.shape)}")


class DiffusionLMNet(ConfigurableModule):
    """x0-predicting transformer over word vectors: net(x_t (B,L,d), t (B,)) -> x0_hat (B,L,d)."""

    def __init__(
        self,
        vocab_size: int,
        embed_dim: int = 16,
        seq_len: int = 32,
        hidden_size: int = 128,
        num_layers: int = 4,
        num_heads: int = 4,
        intermediate_size: int = 512,
        dropout: float = 0.1,
        time_channels: int = 128,
    ) -> None:
        super().__init__()
        if vocab_size < 5 or embed_dim < 1 or seq_len < 3:
            raise ValueError(
                f"vocab_size >= 5, embed_dim >= 1, seq_len >= 3 expected, got {vocab_size}, {embed_dim}, {seq_len}"
            )
        self.embed_dim, self.seq_len = embed_dim, seq_len
        self.embedding = nn.Embedding(vocab_size, embed_dim)  # N(0, 1) init, as Diffusion-LM
        self.lm_head = nn.Linear(embed_dim, vocab_size)
        self.lm_head.weight = self.embedding.weight  # rounding head tied to EMB
        self.time_features = SinusoidalEmbedding(time_channels, scale=1000.0)  # t*1000: the 0..1000 time range
        self.time_mlp = TimeEmbedding(time_channels, hidden_size, hidden_dim=4 * time_channels)
        self.input_up = nn.Sequential(nn.Linear(embed_dim, hidden_size), nn.Tanh(), nn.Linear(hidden_size, hidden_size))
        self.position = nn.Embedding(seq_len, hidden_size)
        self.norm = nn.LayerNorm(hidden_size)
        self.dropout = nn.Dropout(dropout)
        self.encoder = bert_encoder(hidden_size, num_layers, num_heads, intermediate_size, dropout)
        self.output_down = nn.Sequential(
            nn.Linear(hidden_size, hidden_size), nn.Tanh(), nn.Linear(hidden_size, embed_dim)
        )

    def embed(self, ids: Tensor) -> Tensor:
        """EMB(w): (B, L) ids -> (B, L, d)."""
        return self.embedding(ids)

    def logits(self, x: Tensor) -> Tensor:
        """Rounding logits EMB x + b: (B, L, d) -> (B, L, V)."""
        return self.lm_head(x)

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        _check_latents(x, t, self.embed_dim, self.seq_len)
        L = x.shape[1]
        temb = self.time_mlp(self.time_features(t))  # (B, H)
        h = self.input_up(x) + self.position.weight[:L][None] + temb[:, None]  # (B, L, H)
        h = self.encoder(self.dropout(self.norm(h))).last_hidden_state  # (B, L, H)
        return self.output_down(h)  # (B, L, d)


class AttributeClassifier(ConfigurableModule):
    """Multi-label logits over `labels` ("field=value") from noisy word vectors and time: (B,L,d),(B,) -> (B,K).

    Word vectors go through d -> 4d -> hidden (as Diffusion-LM's classifiers) plus a time embedding, then residual
    1-D convolutions (kernel 5: a value spans a few words, and "not kid friendly" needs its left context). Each
    position scores every label and a position-wise log-sum-exp (a smooth max) pools them: a value is present when
    some span shows it, and the guidance gradient concentrates on the positions that can carry the value. (A small
    BERT encoder with mean pooling stayed at the label-prior loss on this task at CPU-sized budgets.)
    """

    def __init__(
        self,
        labels: list[str],
        embed_dim: int = 16,
        seq_len: int = 32,
        hidden_size: int = 64,
        num_layers: int = 3,
        kernel_size: int = 5,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        if not labels:
            raise ValueError("labels: expected at least one field=value label")
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size: expected an odd integer, got {kernel_size}")
        self.labels = list(labels)
        self.embed_dim, self.seq_len = embed_dim, seq_len
        self.up = nn.Sequential(nn.Linear(embed_dim, 4 * embed_dim), nn.Tanh(), nn.Linear(4 * embed_dim, hidden_size))
        self.time_features = SinusoidalEmbedding(64, scale=1000.0)
        self.time_mlp = TimeEmbedding(64, hidden_size)
        self.convs = nn.ModuleList(
            nn.Conv1d(hidden_size, hidden_size, kernel_size, padding=kernel_size // 2) for _ in range(num_layers)
        )
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_size, len(labels))

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        _check_latents(x, t, self.embed_dim, self.seq_len)
        h = (self.up(x) + self.time_mlp(self.time_features(t))[:, None]).transpose(1, 2)  # (B, H, L)
        for conv in self.convs:
            h = h + self.dropout(nn.functional.gelu(conv(h)))
        scores = self.head(h.transpose(1, 2))  # (B, L, K) per-position label scores
        return torch.logsumexp(scores, dim=1) - math.log(scores.shape[1])  # (B, K)


class MaskedDiffusionNet(ConfigurableModule):
    """x0 logits from partly masked token ids: net(x_t (B, L) long, t (B,), label (B,) | None) -> (B, L, V + 1).

    Token embeddings over V words + [MASK] (id V), + learned positions + time embedding + (optional) control
    label embedding (index `len(labels)` = no label, for classifier-free guidance), LayerNorm, the BERT encoder
    of `DiffusionLMNet`, LayerNorm, a linear head over the V words. The [MASK] logit is -inf: a clean token is
    never [MASK] (MDLM's "zero masking probabilities", sec. 3.2.3).
    """

    def __init__(
        self,
        vocab_size: int,
        seq_len: int = 32,
        hidden_size: int = 128,
        num_layers: int = 4,
        num_heads: int = 4,
        intermediate_size: int = 512,
        dropout: float = 0.1,
        time_channels: int = 128,
        labels: list[str] | None = None,
    ) -> None:
        super().__init__()
        if vocab_size < 5 or seq_len < 3:
            raise ValueError(f"vocab_size >= 5, seq_len >= 3 expected, got {vocab_size}, {seq_len}")
        self.vocab_size, self.seq_len, self.mask_id = vocab_size, seq_len, vocab_size
        self.labels = list(labels or [])
        self.tokens = nn.Embedding(vocab_size + 1, hidden_size)
        self.position = nn.Embedding(seq_len, hidden_size)
        self.time_features = SinusoidalEmbedding(time_channels, scale=1000.0)
        self.time_mlp = TimeEmbedding(time_channels, hidden_size, hidden_dim=4 * time_channels)
        self.label = nn.Embedding(len(self.labels) + 1, hidden_size) if self.labels else None
        self.norm = nn.LayerNorm(hidden_size)
        self.dropout = nn.Dropout(dropout)
        self.encoder = bert_encoder(hidden_size, num_layers, num_heads, intermediate_size, dropout)
        self.out_norm = nn.LayerNorm(hidden_size)
        self.head = nn.Linear(hidden_size, vocab_size)

    @property
    def null_label(self) -> int:
        return len(self.labels)

    def forward(self, x: Tensor, t: Tensor, label: Tensor | None = None) -> Tensor:
        if x.ndim != 2 or x.dtype != torch.long or x.shape[1] > self.seq_len:
            raise ValueError(f"x: expected (B, L<={self.seq_len}) long token ids, got {tuple(x.shape)} {x.dtype}")
        if t.shape != (x.shape[0],):
            raise ValueError(f"t: expected shape ({x.shape[0]},), got {tuple(t.shape)}")
        L = x.shape[1]
        h = self.tokens(x) + self.position.weight[:L][None] + self.time_mlp(self.time_features(t))[:, None]
        if self.label is not None:
            if label is None:
                label = torch.full((x.shape[0],), self.null_label, dtype=torch.long, device=x.device)
            h = h + self.label(label)[:, None]  # (B, L, H)
        h = self.encoder(self.dropout(self.norm(h))).last_hidden_state  # (B, L, H)
        logits = self.head(self.out_norm(h))  # (B, L, V)
        return torch.cat([logits, torch.full_like(logits[..., :1], float("-inf"))], dim=-1)  # (B, L, V + 1)


class TeacherLM(ConfigurableModule):
    """A small GPT-2 over the app's word ids: (B, L) ids -> (B, L, V) next-token logits."""

    def __init__(
        self,
        vocab_size: int,
        n_positions: int = 32,
        n_embd: int = 128,
        n_layer: int = 2,
        n_head: int = 4,
        dropout: float = 0.1,
        bos_id: int = 2,
        eos_id: int = 3,
        pad_id: int = 0,
    ) -> None:
        super().__init__()
        config = GPT2Config(
            vocab_size=vocab_size,
            n_positions=n_positions,
            n_embd=n_embd,
            n_layer=n_layer,
            n_head=n_head,
            resid_pdrop=dropout,
            embd_pdrop=dropout,
            attn_pdrop=dropout,
            bos_token_id=bos_id,
            eos_token_id=eos_id,
            pad_token_id=pad_id,
        )
        self.lm = GPT2LMHeadModel(config)
        self.n_positions = n_positions

    def forward(self, ids: Tensor) -> Tensor:
        if ids.ndim != 2 or ids.shape[1] > self.n_positions:
            raise ValueError(f"ids: expected shape (B, L<={self.n_positions}), got {tuple(ids.shape)}")
        # Causal attention never looks right, so PAD after END needs no mask; an all-ones mask says so explicitly.
        return self.lm(input_ids=ids, attention_mask=torch.ones_like(ids)).logits
