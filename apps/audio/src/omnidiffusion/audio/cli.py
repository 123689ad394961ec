"""omnidiffusion-audio train | vocode | evaluate | search-schedule (parse, load config, wire; no logic here).

omnidiffusion-audio train --out runs/audio                      # default config, bundled data
omnidiffusion-audio vocode --checkpoint runs/audio --input speech.wav --out runs/audio/vocoded
omnidiffusion-audio evaluate --checkpoint runs/audio --wav-dir FOLDER --iterations 6
omnidiffusion-audio search-schedule --checkpoint runs/audio --wav-dir FOLDER --steps 6
omnidiffusion-audio train --config ljspeech-paper --set data.root=/data/LJSpeech-1.1 --out runs/ljspeech
omnidiffusion-audio evaluate --config ljspeech-paper --set data.root=/data/LJSpeech-1.1 --checkpoint runs/ljspeech
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator
from dataclasses import asdict, replace
from pathlib import Path

import torch

from omnidiffusion.core.cli import AppCLI, add_device_argument, count_arg, device_arg, number_arg, print_json
from omnidiffusion.core.io import write_json
from omnidiffusion.core.training import fit

from .data import FileSegmentDataset, SegmentDataset, find_audio, load_folder, read_audio, write_audio
from .demo_data import demo_clips
from .evaluation import PROTOCOL_METRICS, evaluate_griffin_lim, evaluate_model, search_model_schedule
from .ljspeech import ljspeech_split
from .pipeline import SCHEDULES_NAME, WaveGrad
from .plots import spectrogram_comparison
from .settings import AudioConfig
from .task import wavegrad_loss
from .wavegrad import WaveGradNet

cli = AppCLI("omnidiffusion-audio", "WaveGrad diffusion vocoder (Chen et al. 2021).", package="omnidiffusion.audio")


SEARCH_CLIPS = 8  # LJSpeech: search-schedule's default number of training-split clips


def training_clips(config: AudioConfig) -> tuple[list[torch.Tensor], str]:
    """The clips `train` uses: the bundled split 'train' or every clip of a folder."""
    if config.data.source == "bundled":
        return demo_clips(
            "train", config.mel.sample_rate, config.data.cache_dir, limit=config.data.limit, source=config.data.bundled
        )
    return load_folder(config.data.source, config.mel.sample_rate, limit=config.data.limit), config.data.source


def ljspeech_root(config: AudioConfig) -> str:
    """data.root of an LJSpeech config; refuses a missing one with the flag to pass."""
    if config.data.root is None:
        raise ValueError(
            "data.root: expected the LJSpeech-1.1 folder (metadata.csv and wavs/), got none (pass --set data.root=DIR)"
        )
    return config.data.root


def data_files(config: AudioConfig, split: str) -> tuple[list[Path], str] | None:
    """The files of `split` for format 'ljspeech', or of the folder data.root; None for data.source."""
    d = config.data
    if d.format == "ljspeech":
        root = ljspeech_root(config)
        with _flag("data.root"):
            clips = ljspeech_split(root, split, split_dir=d.split_dir)
        return [c.path for c in clips], f"{root} (LJSpeech, split {split})"
    if d.root is not None:
        with _flag("data.root"):
            return find_audio(d.root), d.root
    return None


def training_set(config: AudioConfig) -> tuple[torch.utils.data.Dataset, str, int]:
    """(dataset, description, clips) that `train` fits on, per [data] (see settings.DataConfig)."""
    d, rate = config.data, config.mel.sample_rate
    found = data_files(config, d.split)
    if found is None:
        with _flag("data.source") if d.source != "bundled" else contextlib.nullcontext():
            clips, source = training_clips(config)
    else:
        paths, source = found
        paths = paths[: d.limit]
        with _flag("data.root"):
            if d.load == "disk":
                dataset = FileSegmentDataset(paths, config.mel, d.segment_frames, repeats=d.repeats)
                return dataset, source, len(paths)
            clips = [read_audio(p, rate) for p in paths]
    return SegmentDataset(clips, config.mel, d.segment_frames, repeats=d.repeats), source, len(clips)


@contextlib.contextmanager
def _flag(name: str) -> Iterator[None]:
    """Prefix a bad-input error raised while using the value of flag `name` with that flag."""
    try:
        yield
    except (ValueError, OSError) as e:
        if isinstance(e, OSError) and e.filename is not None and e.strerror:
            raise ValueError(f"{name}: {e.filename}: {e.strerror}") from None
        raise ValueError(f"{name}: {e}") from None


def run_train(args: argparse.Namespace, config: AudioConfig) -> None:
    if args.device is not None:
        config.train = replace(config.train, device=str(args.device))
    config.check()
    dataset, source, count = training_set(config)
    net = WaveGradNet(**config.model_kwargs())
    meta = {"mel": asdict(config.mel), "data": source, "config": asdict(config.data)}
    result = fit(net, wavegrad_loss, dataset, config.train, args.out, metadata=meta)
    print_json(
        {
            "out": str(result.out_dir),
            "step": result.step,
            "loss": result.loss,
            "steps_per_sec": result.steps_per_sec,
            "data": source,
            "clips": count,
        }
    )


def _load(args: argparse.Namespace) -> WaveGrad:
    with _flag("--checkpoint"):
        return WaveGrad.from_pretrained(args.checkpoint, device=args.device)


def _eval_clips(
    args: argparse.Namespace, config: AudioConfig, model: WaveGrad, split: str
) -> tuple[list[torch.Tensor], str]:
    """--wav-dir, else the dataset split of [data] (LJSpeech or data.root), else the bundled split."""
    if args.wav_dir:
        with _flag("--wav-dir"):
            return load_folder(args.wav_dir, model.sample_rate, limit=args.limit, note=True), str(args.wav_dir)
    if config.data.format == "ljspeech":
        data_split = {"test": config.data.eval_split, "validation": config.data.split}[split]
        paths, source = data_files(config, data_split)
        limit = args.limit
        if limit is None and split == "validation" and config.data.format == "ljspeech":
            limit = SEARCH_CLIPS
        with _flag("data.root"):
            return [read_audio(p, model.sample_rate, note=True) for p in paths[:limit]], source
    return demo_clips(split, model.sample_rate, args.cache_dir, limit=args.limit)


def _sampling(args: argparse.Namespace, config: AudioConfig, model: WaveGrad) -> dict:
    """The vocode kwargs of --iterations / [sample], checked against the model (errors name the flag or key)."""
    flag = "--iterations" if args.iterations is not None else "sample.iterations"
    iterations = args.iterations if args.iterations is not None else config.sample.iterations
    method, betas = config.sample.method, config.sample.betas
    if method == "ddpm" and betas is None:
        model.betas(iterations, name=flag)  # refuses a count with no schedule, listing the valid ones
    if method == "dpm++2m" and betas is not None:
        raise ValueError("sample.betas: only sample.method 'ddpm' walks a beta table ('dpm++2m' takes --iterations)")
    return {
        "method": method,
        "iterations": iterations,
        "betas": betas,
        "steps": iterations if method == "dpm++2m" else None,
    }


def run_vocode(args: argparse.Namespace, config: AudioConfig) -> None:
    out_dir = Path(args.out)
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"--out: expected a folder (or a new path), got the file {out_dir}")
    model = _load(args)
    kw = _sampling(args, config, model)
    torch.manual_seed(config.sample.seed)
    with _flag("--input"):
        inputs = find_audio(args.input) if Path(args.input).is_dir() else [Path(args.input)]
    written = []
    for path in inputs:
        with _flag("--input"):
            wav = read_audio(path, model.sample_rate, note=True)
        out = model.resynthesize(wav, seed=config.sample.seed, **kw)
        target = write_audio(out_dir / f"{path.stem}.wav", out, model.sample_rate)
        png = spectrogram_comparison(out_dir / f"{path.stem}.png", {"input": wav, "WaveGrad": out}, model.mel_config)
        written.append({"input": str(path), "wav": str(target), "png": str(png)})
    print_json({"vocoded": written, "sampling": kw})


def run_evaluate(args: argparse.Namespace, config: AudioConfig) -> None:
    model = _load(args)
    kw = _sampling(args, config, model)
    clips, source = _eval_clips(args, config, model, "test")
    ours = evaluate_model(model, clips, seed=config.sample.seed, **kw)
    gl = evaluate_griffin_lim(model, clips)
    pick = tuple(PROTOCOL_METRICS)
    betas = kw["betas"] or (model.betas(kw["iterations"]).tolist() if kw["method"] == "ddpm" else None)
    print_json(
        {
            "model": {k: ours[k] for k in pick},
            "baselines": {"griffin_lim_32": {k: gl[k] for k in pick}},
            "protocol": {
                "data": source,
                "clips": len(clips),
                "seconds": sum(c.numel() for c in clips) / model.sample_rate,
                "sampler": kw["method"],
                "iterations": kw["iterations"],
                "betas": betas,
                "seed": config.sample.seed,
                "threads": torch.get_num_threads(),
                "metric": "log-mel L1, MelSpectrogram(22050, 1024, 1024, 256, 80 mels, 0-8000 Hz, power 1)",
                "metrics": PROTOCOL_METRICS,
            },
        }
    )


def run_search(args: argparse.Namespace, config: AudioConfig) -> None:
    model = _load(args)
    if args.max_seconds * model.sample_rate < 2:
        rate = model.sample_rate
        raise ValueError(f"--max-seconds: expected at least 2 samples at {rate} Hz, got {args.max_seconds:g} s")
    clips, source = _eval_clips(args, config, model, "validation")
    result = search_model_schedule(
        model, clips, steps=args.steps, sweeps=args.sweeps, max_seconds=args.max_seconds, seed=config.sample.seed
    )
    path = Path(args.checkpoint) / SCHEDULES_NAME
    schedules = {str(k): {"betas": v} for k, v in model.schedules.items()}
    schedules[str(args.steps)]["score"] = result["score"]
    schedules[str(args.steps)]["data"] = source
    write_json(path, schedules)
    print_json(
        {
            "steps": args.steps,
            "betas": result["betas"],
            "score": result["score"],
            "default_score": result["default_score"],
            "trials": len(result["trials"]),
            "written": str(path),
        }
    )


train = cli.add_command("train", run_train, AudioConfig, help="train a WaveGrad vocoder", default_config="default")
train.add_argument("--out", default="runs/audio", help="checkpoint directory (resumes when it holds one)")

vocode = cli.add_command(
    "vocode", run_vocode, AudioConfig, help="resynthesize wav/flac files from their mels", default_config="default"
)
evaluate = cli.add_command(
    "evaluate",
    run_evaluate,
    AudioConfig,
    help="score the vocoder and Griffin-Lim on clips; prints one JSON object",
    default_config="default",
)
search = cli.add_command(
    "search-schedule",
    run_search,
    AudioConfig,
    help="grid-search a few-step noise schedule on validation clips (written to the checkpoint)",
    default_config="default",
)
train.add_argument(
    "--device", type=device_arg, default=None, help="auto | cpu | cuda | cuda:N (unset: the config's train.device)"
)
for sub in (vocode, evaluate, search):
    sub.add_argument("--checkpoint", required=True, help="a directory written by train")
    add_device_argument(sub)
vocode.add_argument("--input", required=True, help="a wav/flac file or a folder of them (other rates are resampled)")
vocode.add_argument("--out", default="runs/audio/vocoded", help="folder for the vocoded wavs and PNGs")
for sub in (vocode, evaluate):
    sub.add_argument(
        "--iterations",
        type=count_arg(),
        default=None,
        help="ddpm: 1000, 50, 25, 6 or a count searched for the checkpoint; dpm++2m: any >= 1 "
        "(unset: sample.iterations)",
    )
for sub in (evaluate, search):
    sub.add_argument(
        "--wav-dir",
        default=None,
        help="folder of wav/flac clips (default: data.root's split, data.eval_split for evaluate and data.split "
        "for search-schedule; else the bundled split)",
    )
    sub.add_argument(
        "--limit",
        type=count_arg(),
        default=None,
        help=f"use at most this many clips (unset: all; search-schedule on LJSpeech: {SEARCH_CLIPS})",
    )
    sub.add_argument("--cache-dir", default="runs/audio/data", help="where bundled espeak-ng clips are written")
search.add_argument("--steps", type=count_arg(), default=6, help="iterations of the searched schedule")
search.add_argument("--sweeps", type=count_arg(), default=1, help="coordinate-descent sweeps over the grid")
search.add_argument(
    "--max-seconds", type=number_arg(0, low_open=True), default=1.5, help="cut each validation clip to this length"
)


def main() -> None:
    cli.run()


if __name__ == "__main__":
    main()
