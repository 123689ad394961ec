"""Training a Diffusion-LM checkpoint directory: tokenizer, denoiser, attribute classifier, teacher LM.

out/
  config.json, model.safetensors, tokenizer.json   the Diffusion-LM (EMA weights) + its vocabulary
  train_texts.txt                                  the training sentences (memorisation rate)
  checkpoint/, log.csv, raw/                       core.training.fit's resumable state
  classifier/                                      time-aware attribute classifier (corpora with MRs)
  teacher/                                         the small GPT-2 that scores fluency

Every stage is one `core.training.fit` run (checkpoint, exact resume, DDP under torchrun); a rerun of a finished
stage returns at once, so `train` after a kill picks up where it stopped.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from tokenizers import Tokenizer
from torch import Tensor, nn

from omnidiffusion.core import ForwardProcess
from omnidiffusion.core.io import load_pretrained
from omnidiffusion.core.losses import sample_t
from omnidiffusion.core.training import fit

from .checker import normalise_value
from .config import TextConfig
from .corpus import Example, demo_splits
from .data import (
    TOKENIZER_FILE,
    TokenDataset,
    encode,
    load_tokenizer,
    named,
    read_corpus,
    save_tokenizer,
    train_tokenizer,
)
from .diffusion import e2e_loss, make_schedule
from .masked import make_process, masked_loss
from .models import AttributeClassifier, DiffusionLMNet, MaskedDiffusionNet, TeacherLM

TRAIN_TEXTS = "train_texts.txt"


def load_examples(config: TextConfig) -> dict[str, list[Example]]:
    """{"train": ..., "valid": ..., "test": ...} from the bundled generator, or {"train": file} for a user corpus."""
    d = config.data
    if not d.path:
        return demo_splits(d.n_train, d.n_valid, d.n_test, d.seed)
    try:
        return {"train": read_corpus(d.path, d.format)}
    except (OSError, ValueError) as e:
        raise named(e, "data.path") from None


def label_names(examples: list[Example]) -> list[str]:
    """Sorted `field=value` labels present in the MRs (values in the checker's spelling)."""
    labels = set()
    for ex in examples:
        for f, v in ex.mr.items():
            try:
                labels.add(f"{f}={normalise_value(f, v)}")
            except ValueError:
                continue  # a value outside the checker's inventory cannot be a control target
    return sorted(labels)


def multi_hot(examples: list[Example], labels: list[str]) -> Tensor:
    """(N, K) float targets: 1 where the example's MR holds the label."""
    index = {name: k for k, name in enumerate(labels)}
    y = torch.zeros(len(examples), len(labels))
    for i, ex in enumerate(examples):
        for f, v in ex.mr.items():
            try:
                k = index.get(f"{f}={normalise_value(f, v)}")
            except ValueError:
                k = None
            if k is not None:
                y[i, k] = 1.0
    return y


def _fitting(examples: list[Example], tok: Tokenizer, seq_len: int) -> list[Example]:
    kept = [ex for ex in examples if len(tok.encode(ex.text).ids) + 2 <= seq_len]
    if not kept:
        raise ValueError(f"data.seq_len={seq_len}: no training sentence fits (START + words + END)")
    return kept


@dataclass
class TrainedPaths:
    model: Path
    classifier: Path | None
    teacher: Path | None


def train_text(config: TextConfig, out_dir: str | Path, *, progress: bool = True) -> TrainedPaths:
    """Run every stage into `out_dir` (resuming finished or interrupted stages); returns their directories.

    Under `torchrun` one process group serves all stages (each `fit` then runs DistributedDataParallel on it);
    rank 0 writes the tokenizer and the training sentences, the other ranks read them after a barrier.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    owns_group = world > 1 and not dist.is_initialized()
    if owns_group:
        cuda = config.train.device != "cpu" and torch.cuda.is_available()
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    try:
        return _train_stages(config, Path(out_dir), progress, world > 1 and dist.get_rank() != 0)
    finally:
        if owns_group:
            dist.destroy_process_group()


def _train_stages(config: TextConfig, out: Path, progress: bool, follower: bool) -> TrainedPaths:
    splits = load_examples(config)
    train = splits["train"]
    if not follower:
        if (out / TOKENIZER_FILE).is_file():
            tok = load_tokenizer(out)  # a resumed run keeps its vocabulary
        else:
            tok = train_tokenizer([ex.text for ex in train], config.data.min_frequency)
            save_tokenizer(tok, out)
    seq_len = config.data.seq_len
    if dist.is_initialized():
        dist.barrier()
    if follower:
        tok = load_tokenizer(out)
    train = _fitting(train, tok, seq_len)
    if not follower:
        (out / TRAIN_TEXTS).write_text("\n".join(ex.text for ex in train) + "\n", encoding="utf-8")
    ids = encode(tok, [ex.text for ex in train], seq_len)

    if config.model.kind == "masked":
        return _train_masked(config, out, ids, train, tok, progress)

    # 1. Diffusion-LM
    schedule = make_schedule(config.diffusion.schedule, config.diffusion.T)
    m = config.model
    net = DiffusionLMNet(
        tok.get_vocab_size(),
        m.embed_dim,
        seq_len,
        m.hidden_size,
        m.num_layers,
        m.num_heads,
        m.intermediate_size,
        m.dropout,
        m.time_channels,
    )
    meta = {"schedule": config.diffusion.schedule, "T": config.diffusion.T, "seq_len": seq_len}
    tcfg = _with_progress(config.train, progress)
    fit(net, lambda model, batch: e2e_loss(model, batch, schedule)[0], TokenDataset(ids), tcfg, out, metadata=meta)
    diffusion = load_pretrained(out)

    # 2. Attribute classifier on noised latents (needs MRs).
    cls_dir = None
    labels = label_names(train)
    if config.classifier.enabled and labels:
        cls_dir = out / "classifier"
        train_classifier(diffusion, schedule, ids, multi_hot(train, labels), labels, config, cls_dir, progress)

    # 3. Teacher LM for perplexity.
    return TrainedPaths(out, cls_dir, _train_teacher(config, out, ids, tok, progress))


def _train_teacher(config: TextConfig, out: Path, ids: Tensor, tok: Tokenizer, progress: bool) -> Path | None:
    if not config.teacher.enabled:
        return None
    teacher_dir = out / "teacher"
    tc = config.teacher
    teacher = TeacherLM(tok.get_vocab_size(), config.data.seq_len, tc.n_embd, tc.n_layer, tc.n_head)
    fit(teacher, teacher_loss, TokenDataset(ids), _with_progress(tc.train, progress), teacher_dir)
    return teacher_dir


def _train_masked(
    config: TextConfig, out: Path, ids: Tensor, train: list[Example], tok: Tokenizer, progress: bool
) -> TrainedPaths:
    """model.kind = masked: one conditional MaskedDiffusionNet (no separate classifier), then the teacher LM."""
    m, mk = config.model, config.masked
    labels = label_names(train) if mk.conditional else []
    net = MaskedDiffusionNet(
        tok.get_vocab_size(),
        config.data.seq_len,
        m.hidden_size,
        m.num_layers,
        m.num_heads,
        m.intermediate_size,
        m.dropout,
        m.time_channels,
        labels,
    )
    process = make_process(net, mk.schedule)
    loss = masked_loss(process, mk.loss, mk.d3pm_steps, mk.d3pm_hybrid, mk.cond_dropout)
    data = TokenDataset(ids, multi_hot(train, labels)) if labels else TokenDataset(ids)
    meta = {"kind": "masked", "masked_schedule": mk.schedule, "seq_len": config.data.seq_len}
    fit(net, loss, data, _with_progress(config.train, progress), out, metadata=meta)
    return TrainedPaths(out, None, _train_teacher(config, out, ids, tok, progress))


def _with_progress(cfg, progress: bool):
    from dataclasses import replace

    return replace(cfg, progress=cfg.progress and progress)


def teacher_loss(model: nn.Module, ids: Tensor) -> Tensor:
    """Next-token cross-entropy over START w.. END (PAD targets ignored)."""
    logits = model(ids[:, :-1])  # (B, L-1, V)
    target = ids[:, 1:].masked_fill(ids[:, 1:] == 0, -100)
    return nn.functional.cross_entropy(logits.transpose(1, 2), target, ignore_index=-100)


def classifier_loss(table: Tensor, schedule, clean_prob: float = 0.1):
    """BCE of the classifier on q_sample(EMB(w), t) at a uniform table step (clean with prob `clean_prob`)."""
    process = ForwardProcess(schedule)

    def loss(model: nn.Module, batch) -> Tensor:
        ids, y = batch
        x0 = table.to(ids.device)[ids]  # (B, L, d) frozen word vectors
        t = sample_t(schedule, ids.shape[0], device=ids.device)
        t = torch.where(torch.rand(t.shape, device=t.device) < clean_prob, torch.zeros_like(t), t)
        x_t = process.q_sample(x0, t)
        logits = model(x_t, t.to(x0.dtype))
        return nn.functional.binary_cross_entropy_with_logits(logits, y)

    return loss


def train_classifier(
    diffusion: DiffusionLMNet,
    schedule,
    ids: Tensor,
    y: Tensor,
    labels: list[str],
    config: TextConfig,
    out_dir: Path,
    progress: bool = True,
) -> Path:
    """Fit the time-aware attribute classifier on the (frozen) word vectors of the trained diffusion model."""
    c = config.classifier
    model = AttributeClassifier(
        labels, config.model.embed_dim, config.data.seq_len, c.hidden_size, c.num_layers, c.kernel_size
    )
    table = diffusion.embedding.weight.detach().clone()
    fit(model, classifier_loss(table, schedule), TokenDataset(ids, y), _with_progress(c.train, progress), out_dir)
    return out_dir
