"""Training a WaveGrad vocoder from the config: `train(config, out_dir)` builds the data and the network, runs core's
`fit` (checkpoints, resume, EMA, AMP, torchrun) and stores the run config beside the weights.

    result = train(load_config(AudioConfig, "tiny", package="omnidiffusion.audio"), "runs/tiny")
    vocoder = WaveGrad.from_pretrained("runs/tiny")

The written directory (core's save_pretrained + save_run_config): config.json (WaveGradNet kwargs; metadata: the
mel config, the data description and clip count), model.safetensors (EMA weights when EMA is on), raw/,
run_config.json (the whole AudioConfig), checkpoint/, log.csv.
"""

from __future__ import annotations

import contextlib
import functools
from dataclasses import asdict
from pathlib import Path

import torch
from torch.utils.data import Dataset

from omnidiffusion.core.training import TrainResult, fit, seed_everything

from .data import FileSegmentDataset, SegmentDataset, data_files, load_folder, named_errors, read_audio
from .demo_data import demo_clips
from .noise import levels_from_betas
from .settings import AudioConfig
from .task import wavegrad_loss
from .wavegrad import WaveGradNet


def training_clips(config: AudioConfig) -> tuple[list[torch.Tensor], str]:
    """The clips of data.source: the bundled split 'train' or every clip of a folder."""
    if config.data.source == "bundled":
        return demo_clips(
            "train", config.mel.sample_rate, config.data.cache_dir, limit=config.data.limit, source=config.data.bundled
        )
    return load_folder(config.data.source, config.mel.sample_rate, limit=config.data.limit), config.data.source


def training_set(config: AudioConfig) -> tuple[Dataset, str, int]:
    """(dataset, description, clips) that `train` fits on, per [data] (see settings.DataConfig)."""
    d, rate = config.data, config.mel.sample_rate
    found = data_files(config, d.split)
    if found is None:
        with named_errors("data.source") if d.source != "bundled" else contextlib.nullcontext():
            clips, source = training_clips(config)
    else:
        paths, source = found
        paths = paths[: d.limit]
        with named_errors("data.root"):
            if d.load == "disk":
                dataset = FileSegmentDataset(paths, config.mel, d.segment_frames, repeats=d.repeats)
                return dataset, source, len(paths)
            clips = [read_audio(p, rate) for p in paths]
    return SegmentDataset(clips, config.mel, d.segment_frames, repeats=d.repeats), source, len(clips)


def train(config: AudioConfig, out_dir: str | Path, *, resume: bool | None = None) -> TrainResult:
    """Train the WaveGrad of `config` on its [data] into `out_dir` (resume: see core.fit) and return core's
    TrainResult (`result.final_model` is the network to vocode with: the EMA weights when EMA is on)."""
    config.check()
    dataset, source, count = training_set(config)
    seed_everything(config.train.seed)  # the initial weights (fit seeds only its own loop)
    net = WaveGradNet(**config.model_kwargs())
    loss = functools.partial(wavegrad_loss, levels=levels_from_betas(config.schedule.betas()))
    meta = {"mel": asdict(config.mel), "data": source, "clips": count, "config": asdict(config.data)}
    return fit(net, loss, dataset, config.train, out_dir, resume=resume, metadata=meta, run_config=config)
