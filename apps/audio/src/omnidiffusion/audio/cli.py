"""omnidiffusion-audio train | vocode | evaluate | search-schedule (parse, load config, wire; no logic here).

omnidiffusion-audio train --out runs/audio                      # default config, bundled data
omnidiffusion-audio vocode --checkpoint runs/audio --input speech.wav --out runs/audio/vocoded
omnidiffusion-audio evaluate --checkpoint runs/audio --wav-dir FOLDER --set sampler.steps=25
omnidiffusion-audio search-schedule --checkpoint runs/audio --wav-dir FOLDER --set sampler.steps=6
omnidiffusion-audio train --config ljspeech-paper --set data.root=/data/LJSpeech-1.1 --out runs/ljspeech
omnidiffusion-audio evaluate --checkpoint runs/ljspeech           # the stored config's LJSpeech validation split

`vocode`, `evaluate` and `search-schedule` start from the config `train` stored in the checkpoint
(run_config.json) and apply `--set` on top: `--set sampler.steps=25`, `--set sampler.method=dpm++2m`,
`--set sampler.seed=1`, `--set sampler.betas=1e-6,1e-5,1e-4,1e-3,1e-2,0.5`. `search-schedule` searches a
schedule of sampler.steps betas and writes it into the checkpoint, where later `sampler.steps` of that count find it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from omnidiffusion.core.cli import AppCLI, count_arg, number_arg, print_json
from omnidiffusion.core.io import read_pretrained_config, write_json
from omnidiffusion.core.training import is_main_process

from .data import find_audio, named_errors, read_audio, write_audio
from .evaluation import SEARCH_CLIPS, evaluate, evaluation_clips, search_model_schedule
from .pipeline import SCHEDULES_NAME, WaveGrad
from .plots import spectrogram_comparison
from .settings import AudioConfig
from .training import train

cli = AppCLI("omnidiffusion-audio", "WaveGrad diffusion vocoder (Chen et al. 2021).", package="omnidiffusion.audio")


def run_train(args: argparse.Namespace, config: AudioConfig) -> None:
    if config.train.device == "auto":  # --set train.device=... stays as given
        config.train.device = str(args.device)
    result = train(config, args.out, resume=args.resume)
    if is_main_process():
        meta = read_pretrained_config(result.out_dir)["metadata"]  # what train recorded about its data
        print_json(
            {
                "out": str(result.out_dir),
                "step": result.step,
                "loss": result.loss,
                "steps_per_sec": result.steps_per_sec,
                "data": meta.get("data"),
                "clips": meta.get("clips"),
            }
        )


def load_model(args: argparse.Namespace, config: AudioConfig) -> WaveGrad:
    """The checkpoint's vocoder with the command's [sampler] (stored config + --set), checked against it."""
    with named_errors("--checkpoint"):
        model = WaveGrad.from_pretrained(args.checkpoint, device=args.device, config=config)
    config.sampler.check()
    model.sampling()  # e.g. sampler.steps with no schedule for 'ddpm': refused before any work
    return model


def run_vocode(args: argparse.Namespace, config: AudioConfig) -> None:
    out_dir = Path(args.out)
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"--out: expected a folder (or a new path), got the file {out_dir}")
    model = load_model(args, config)
    with named_errors("--input"):
        inputs = find_audio(args.input) if Path(args.input).is_dir() else [Path(args.input)]
    written = []
    for path in inputs:
        with named_errors("--input"):
            wav = read_audio(path, model.sample_rate, note=True)
        out = model.resynthesize(wav)
        target = write_audio(out_dir / f"{path.stem}.wav", out, model.sample_rate)
        png = spectrogram_comparison(out_dir / f"{path.stem}.png", {"input": wav, "WaveGrad": out}, model.mel_config)
        written.append({"input": str(path), "wav": str(target), "png": str(png)})
    print_json({"vocoded": written, "sampling": {**model.sampling(), "seed": model.sampler.seed}})


def run_evaluate(args: argparse.Namespace, config: AudioConfig) -> None:
    model = load_model(args, config)
    clips, source = evaluation_clips(config, model.sample_rate, "test", wav_dir=args.wav_dir, limit=args.limit)
    print_json(evaluate(model, clips, source))


def run_search(args: argparse.Namespace, config: AudioConfig) -> None:
    steps = config.sampler.steps
    with named_errors("--checkpoint"):
        model = WaveGrad.from_pretrained(args.checkpoint, device=args.device, config=config)
    if args.max_seconds * model.sample_rate < 2:
        rate = model.sample_rate
        raise ValueError(f"--max-seconds: expected at least 2 samples at {rate} Hz, got {args.max_seconds:g} s")
    clips, source = evaluation_clips(config, model.sample_rate, "validation", wav_dir=args.wav_dir, limit=args.limit)
    result = search_model_schedule(model, clips, steps=steps, sweeps=args.sweeps, max_seconds=args.max_seconds)
    path = Path(args.checkpoint) / SCHEDULES_NAME
    schedules = {str(k): {"betas": v} for k, v in model.schedules.items()}
    schedules[str(steps)]["score"] = result["score"]
    schedules[str(steps)]["data"] = source
    write_json(path, schedules)
    print_json(
        {
            "steps": steps,
            "betas": result["betas"],
            "score": result["score"],
            "default_score": result["default_score"],
            "trials": len(result["trials"]),
            "written": str(path),
        }
    )


cli.add_command(
    "train",
    run_train,
    AudioConfig,
    help="train a WaveGrad vocoder",
    default_config="default",
    out=("runs/audio", "checkpoint directory"),
    resume=True,
)
vocode = cli.add_command(
    "vocode",
    run_vocode,
    AudioConfig,
    help="resynthesize wav/flac files from their mels",
    default_config="default",
    checkpoint="required",
    out=("runs/audio/vocoded", "folder for the vocoded wavs and PNGs"),
)
evaluate_cmd = cli.add_command(
    "evaluate",
    run_evaluate,
    AudioConfig,
    help="score the vocoder and Griffin-Lim on clips; prints one JSON object",
    default_config="default",
    checkpoint="required",
)
search = cli.add_command(
    "search-schedule",
    run_search,
    AudioConfig,
    help="grid-search a noise schedule of sampler.steps betas on validation clips (written to the checkpoint)",
    default_config="default",
    checkpoint="required",
)
vocode.add_argument("--input", required=True, help="a wav/flac file or a folder of them (other rates are resampled)")
for sub in (evaluate_cmd, search):
    sub.add_argument(
        "--wav-dir",
        default=None,
        help="folder of wav/flac clips (default: data.root's split, data.eval_split for evaluate and data.split "
        "for search-schedule; else the bundled split, cached in data.cache_dir)",
    )
    sub.add_argument(
        "--limit",
        type=count_arg(),
        default=None,
        help=f"use at most this many clips (unset: all; search-schedule on LJSpeech: {SEARCH_CLIPS})",
    )
search.add_argument("--sweeps", type=count_arg(), default=1, help="coordinate-descent sweeps over the grid")
search.add_argument(
    "--max-seconds", type=number_arg(0, low_open=True), default=1.5, help="cut each validation clip to this length"
)

main = cli.run


if __name__ == "__main__":
    main()
