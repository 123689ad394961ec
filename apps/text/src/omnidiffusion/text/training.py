"""`train(config, out_dir, *, resume)`: tokenizer, denoiser, attribute classifier, teacher LM into one directory.

out/
  config.json, model.safetensors, tokenizer.json   the Diffusion-LM (EMA weights) + its vocabulary
  run_config.json                                  the resolved TextConfig (from_pretrained and --checkpoint
                                                   commands start from it)
  train_texts.txt                                  the training sentences (memorisation rate)
  checkpoint/, log.csv, raw/                       core.training.fit's resumable state
  classifier/                                      time-aware attribute classifier (corpora with MRs)
  teacher/                                         the small GPT-2 that scores fluency

With model.kind = masked the main model is a conditional MaskedDiffusionNet and there is no classifier/. Every
stage is one `core.training.fit` run (checkpoint, exact resume, DDP under torchrun); a rerun of a finished stage
returns at once, so `train` after a kill picks up where it stopped.
"""

from __future__ import annotations

import dataclasses
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
from omnidiffusion.core.training import TrainResult, fit, is_main_process, seed_everything

from .checker import normalise_value
from .corpus import Example, demo_splits
from .data import (
    TOKENIZER_FILE,
    TRAIN_TEXTS,
    TokenDataset,
    encode,
    load_tokenizer,
    named,
    read_corpus,
    save_tokenizer,
    train_tokenizer,
)
from .diffusion import e2e_loss
from .masked import make_process, masked_loss
from .models import AttributeClassifier, DiffusionLMNet, MaskedDiffusionNet, TeacherLM
from .settings import TextConfig


def load_examples(config: TextConfig) -> dict[str, list[Example]]:
    """{"train": ..., "valid": ..., "test": ...} from the bundled generator, or {"train": file} for a user corpus."""
    d = config.data
    if not d.root:
        return demo_splits(d.n_train, d.n_valid, d.n_test, d.seed)
    try:
        return {"train": read_corpus(d.root, d.format)}
    except (OSError, ValueError) as e:
        raise named(e, "data.root") from None


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
class TextTrainResult(TrainResult):
    """What `train` returns: core's TrainResult of the main model (the Diffusion-LM or the masked model, in
    out_dir) plus those of the later stages (None when not trained)."""

    classifier: TrainResult | None = None
    teacher: TrainResult | None = None

    @classmethod
    def of(cls, main: TrainResult, classifier: TrainResult | None, teacher: TrainResult | None) -> TextTrainResult:
        fields = {f.name: getattr(main, f.name) for f in dataclasses.fields(TrainResult)}
        return cls(**fields, classifier=classifier, teacher=teacher)


def train(config: TextConfig, out_dir: str | Path, *, resume: bool | None = None) -> TextTrainResult:
    """Run every stage into `out_dir` (see the module docstring) and store the run config beside the weights.

    resume: None continues every stage from its checkpoint when there is one; True requires a checkpoint of the
    main model (the later stages continue from theirs when they have one); False requires that there is none.
    Under `torchrun` one process group serves all stages (each `fit` then runs DistributedDataParallel on it);
    rank 0 writes the tokenizer and the training sentences, the other ranks read them after a barrier.
    """
    if not isinstance(config, TextConfig):
        raise ValueError(f"config: expected a TextConfig, got {type(config).__name__}")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    owns_group = world > 1 and not dist.is_initialized()
    if owns_group:
        cuda = config.train.device != "cpu" and torch.cuda.is_available()
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    try:
        return _train_stages(config, Path(out_dir), resume)
    finally:
        if owns_group:
            dist.destroy_process_group()


def _train_stages(config: TextConfig, out: Path, resume: bool | None) -> TextTrainResult:
    main = is_main_process()
    splits = load_examples(config)
    train = splits["train"]
    if main:
        if (out / TOKENIZER_FILE).is_file():
            tok = load_tokenizer(out)  # a resumed run keeps its vocabulary
        else:
            tok = train_tokenizer([ex.text for ex in train], config.data.min_frequency)
            save_tokenizer(tok, out)
    seq_len = config.data.seq_len
    if dist.is_initialized():
        dist.barrier()
    if not main:
        tok = load_tokenizer(out)
    train = _fitting(train, tok, seq_len)
    if main:
        (out / TRAIN_TEXTS).write_text("\n".join(ex.text for ex in train) + "\n", encoding="utf-8")
    ids = encode(tok, [ex.text for ex in train], seq_len)
    later = None if resume is True else resume  # the classifier and teacher stages

    if config.model.kind == "masked":
        model = _train_masked(config, out, ids, train, tok, resume)
        return TextTrainResult.of(model, None, _train_teacher(config, out, ids, tok, later))

    # 1. Diffusion-LM
    schedule = config.schedule.build()
    m = config.model
    seed_everything(config.train.seed)  # the initial weights (fit seeds only its own loop)
    net = DiffusionLMNet(tok.get_vocab_size(), m.embed_dim, seq_len, **m.encoder_kwargs())
    meta = {"kind": "diffusion-lm", "seq_len": seq_len}
    model = fit(
        net,
        lambda model, batch: e2e_loss(model, batch, schedule)[0],
        TokenDataset(ids),
        config.train,
        out,
        resume=resume,
        metadata=meta,
        run_config=config,
    )
    diffusion = load_pretrained(out)  # the saved (EMA) weights, the same on every rank

    # 2. Attribute classifier on noised latents (needs MRs).
    classifier = None
    labels = label_names(train)
    if config.classifier.enabled and labels:
        y = multi_hot(train, labels)
        classifier = train_classifier(diffusion, schedule, ids, y, labels, config, out / "classifier", resume=later)

    # 3. Teacher LM for perplexity.
    return TextTrainResult.of(model, classifier, _train_teacher(config, out, ids, tok, later))


def _train_teacher(
    config: TextConfig, out: Path, ids: Tensor, tok: Tokenizer, resume: bool | None
) -> TrainResult | None:
    if not config.teacher.enabled:
        return None
    tc = config.teacher
    seed_everything(tc.train.seed)
    teacher = TeacherLM(tok.get_vocab_size(), config.data.seq_len, tc.n_embd, tc.n_layer, tc.n_head)
    return fit(teacher, teacher_loss, TokenDataset(ids), tc.train, out / "teacher", resume=resume)


def _train_masked(
    config: TextConfig, out: Path, ids: Tensor, train: list[Example], tok: Tokenizer, resume: bool | None
) -> TrainResult:
    """model.kind = masked: one conditional MaskedDiffusionNet (no separate classifier)."""
    m, mk = config.model, config.masked
    labels = label_names(train) if mk.conditional else []
    seed_everything(config.train.seed)  # the initial weights (fit seeds only its own loop)
    net = MaskedDiffusionNet(tok.get_vocab_size(), config.data.seq_len, labels=labels, **m.encoder_kwargs())
    process = make_process(net, mk.schedule)
    loss = masked_loss(process, mk.loss, mk.d3pm_steps, mk.d3pm_hybrid, mk.cond_dropout)
    data = TokenDataset(ids, multi_hot(train, labels)) if labels else TokenDataset(ids)
    meta = {"kind": "masked", "seq_len": config.data.seq_len}
    return fit(net, loss, data, config.train, out, resume=resume, metadata=meta, run_config=config)


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
    *,
    resume: bool | None = None,
) -> TrainResult:
    """Fit the time-aware attribute classifier on the (frozen) word vectors of the trained diffusion model."""
    c = config.classifier
    seed_everything(c.train.seed)
    model = AttributeClassifier(
        labels, config.model.embed_dim, config.data.seq_len, c.hidden_size, c.num_layers, c.kernel_size
    )
    table = diffusion.embedding.weight.detach().clone()
    return fit(model, classifier_loss(table, schedule), TokenDataset(ids, y), c.train, out_dir, resume=resume)
