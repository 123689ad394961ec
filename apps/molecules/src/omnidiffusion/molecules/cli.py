"""omnidiffusion-molecules train | generate | evaluate | convert-geom.

omnidiffusion-molecules train --config default --out runs/molecules
omnidiffusion-molecules generate --checkpoint runs/molecules --smiles CCO --n 10 --out confs.sdf
omnidiffusion-molecules evaluate --checkpoint runs/molecules --sdf refs.sdf --threshold 0.5
omnidiffusion-molecules convert-geom --trust-pickle --pickle mol.pickle --out mol.sdf
omnidiffusion-molecules convert-geom --trust-pickle --root rdkit_folder --dataset qm9      # once, then:
omnidiffusion-molecules train --config qm9-paper --set data.root=rdkit_folder
omnidiffusion-molecules evaluate --config qm9-paper --set data.root=rdkit_folder --checkpoint runs/molecules-qm9
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from pathlib import Path

from omnidiffusion.core.cli import AppCLI, add_device_argument, count_arg, number_arg, print_json

from .config import MoleculesConfig
from .data import read_sdf, write_sdf
from .geom import (
    GEOM_DATASETS,
    PAPER_SCORES,
    convert_geodiff_split,
    convert_geom_pickle,
    convert_rdkit_folder,
    load_split,
    read_split_sdf,
)
from .pipeline import ConformerGenerator
from .sampling import SAMPLER_METHODS, check_sampler
from .training import bundled_split, check_data, cov_threshold, evaluate_model, train

PACKAGE = "omnidiffusion.molecules"


def run_train(args: argparse.Namespace, config: MoleculesConfig) -> int:
    out = args.out or config.out
    result = train(config, out)
    if os.environ.get("RANK", "0") != "0":  # under torchrun only rank 0 reports
        return 0
    print_json(
        {
            "out_dir": str(result.out_dir),
            "steps": result.step,
            "loss": result.loss,
            "steps_per_sec": result.steps_per_sec,
            "wall_time_s": result.wall_time,
        }
    )
    return 0


def _set_keys(args: argparse.Namespace, sections: tuple[str, ...], why: str) -> list[str]:
    """The keys given with --set; a key outside `sections` is refused (this command would silently ignore it)."""
    keys = [text.split("=", 1)[0].strip() for text in args.overrides]
    for key in keys:
        if key.split(".", 1)[0] not in sections:
            used = ", ".join(s + ".*" for s in sections) or "none"
            raise ValueError(f"--set {key}: not used by {args.command} ({why}); expected keys: {used}")
    return keys


def _generator(args: argparse.Namespace, config: MoleculesConfig, keys: list[str]) -> ConformerGenerator:
    """The checkpoint's generator; `--set sampler.KEY=VALUE` overrides its stored sampler settings."""
    gen = ConformerGenerator.from_pretrained(args.checkpoint, device=args.device)
    fields = [k.split(".", 1)[1] for k in keys if k.startswith("sampler.")]
    gen.sampler = check_sampler(dataclasses.replace(gen.sampler, **{f: getattr(config.sampler, f) for f in fields}))
    return gen


def run_generate(args: argparse.Namespace, config: MoleculesConfig) -> int:
    if args.out.is_dir():
        raise ValueError(f"--out: {args.out} is a directory; expected the path of the SDF file to write")
    gen = _generator(args, config, _set_keys(args, ("sampler",), "the checkpoint fixes the model and its schedule"))
    try:
        mols = gen.generate_many(
            args.smiles,
            [args.n] * len(args.smiles),
            method=args.method,
            steps=args.steps,
            seed=args.seed,
            progress=True,
        )
    except FloatingPointError as e:  # a diverged sampler: bad settings, reported like bad input
        raise ValueError(str(e)) from None
    path = write_sdf(mols, args.out)
    print_json(
        {
            "out": str(path),
            "molecules": len(mols),
            "conformers_per_molecule": args.n,
            "sampler": gen.sampler_config(method=args.method, steps=args.steps),
        }
    )
    return 0


def run_evaluate(args: argparse.Namespace, config: MoleculesConfig) -> int:
    sections = ("sampler",) * bool(args.checkpoint) + ("data",) * (not args.sdf)
    why = "sampler.* needs --checkpoint, data.* applies without --sdf, the checkpoint fixes the model"
    keys = _set_keys(args, sections, why)
    split = None
    if args.sdf:
        refs = read_sdf(args.sdf)
        data = str(args.sdf)
    elif config.data.root:
        check_data(config.data)
        refs, split = load_split(config.data, "test")
        data = f"GEOM-{config.data.dataset} test molecules [{config.data.test_start}, {config.data.test_end})"
    else:
        refs = bundled_split(config.data)[1]
        data = f"bundled held-out molecules ({len(refs)})"
    threshold = cov_threshold(config.data) if args.threshold is None else args.threshold
    if args.max_molecules:
        refs = refs[: args.max_molecules]
    gen = _generator(args, config, keys) if args.checkpoint else None
    cfg = gen.sampler_config(method=args.method, steps=args.steps) if gen is not None else None
    samplers = [(cfg.method, cfg.steps)] if cfg is not None else None
    result = evaluate_model(
        gen, refs, threshold=threshold, ratio=args.ratio, samplers=samplers, seed=args.seed, progress=True
    )
    model = next(iter(result["model"].values()), None)
    protocol = dict(
        result["protocol"],
        data=data,
        checkpoint=args.checkpoint,
        sampler=None
        if cfg is None
        else {"method": cfg.method, "steps": cfg.steps, "grid": cfg.grid, "w_global": cfg.w_global, "seed": args.seed},
    )
    if split is not None:
        protocol["split"] = split
        protocol["paper_geodiff_c"] = {
            "scores_mean_median": PAPER_SCORES[config.data.dataset],
            "threshold_A": threshold,
        }
    print_json({"model": model, "baselines": result["baselines"], "protocol": protocol})
    return 0


def run_convert(args: argparse.Namespace, config: MoleculesConfig) -> int:
    given = [
        flag
        for flag, value in (("--pickle", args.pickle), ("--root", args.root), ("--split-pickle", args.split))
        if value is not None
    ]
    if len(given) != 1:
        raise ValueError(
            f"{', '.join(given) or '--pickle, --root, --split-pickle'}: expected exactly one of --pickle (one GEOM "
            f"molecule), --root (GEOM rdkit_folder) or --split-pickle (a GeoDiff split file), got {len(given)}"
        )
    source = args.pickle or args.root or args.split
    if not args.trust_pickle:
        raise ValueError(
            f"--trust-pickle: required; {source} is a Python pickle, which can run arbitrary code when loaded "
            "(pass it only for GEOM files from a source you trust)"
        )
    if args.root is None and args.out is None:
        raise ValueError(f"--out: required with {given[0]}; expected the path of the SDF file to write")
    if args.root is not None:
        cfg = check_data(dataclasses.replace(config.data, dataset=args.dataset or config.data.dataset))
        report = convert_rdkit_folder(
            args.root, cfg.dataset, args.out, trust_pickle=True, cfg=cfg, everything=args.all, progress=True
        )
        print_json(report)
        return 0
    if args.split is not None:
        path = convert_geodiff_split(args.split, args.out, trust_pickle=True)
        mols = read_split_sdf(path)
        print_json({"out": str(path), "molecules": len(mols), "conformers": sum(m.GetNumConformers() for m in mols)})
        return 0
    path = convert_geom_pickle(args.pickle, args.out, trust_pickle=True)
    print_json({"out": str(path), "conformers": read_sdf(path)[0].GetNumConformers()})
    return 0


def build_cli() -> AppCLI:
    cli = AppCLI("omnidiffusion-molecules", "Molecular conformer generation (GeoDiff).", package=PACKAGE)
    t = cli.add_command(
        "train", run_train, MoleculesConfig, help="train GeoDiff on conformer ensembles", default_config="default"
    )
    t.add_argument("--out", default=None, help="run directory (default: the config's `out`)")
    parsers = {}
    for name, fn, text in (
        ("generate", run_generate, "generate conformers for SMILES into an SDF"),
        ("evaluate", run_evaluate, "COV/MAT of a checkpoint and the baselines on an SDF"),
    ):
        p = cli.add_command(name, fn, MoleculesConfig, help=text, default_config="default")
        p.add_argument(
            "--checkpoint",
            required=name == "generate",
            default=None,
            help="directory written by train" + (" (omit to score the baselines only)" if name == "evaluate" else ""),
        )
        p.add_argument(
            "--method",
            default=None,
            choices=SAMPLER_METHODS,
            metavar="METHOD",
            help=f"geodiff-ld (paper) or a core sampler, e.g. dpm++2m; one of {', '.join(SAMPLER_METHODS)}",
        )
        p.add_argument("--steps", type=count_arg(), default=None, help="sampler steps (default: the checkpoint's)")
        p.add_argument("--seed", type=int, default=0)
        add_device_argument(p)
        parsers[name] = p
    g = parsers["generate"]
    g.add_argument("--smiles", action="append", required=True, help="a molecule, repeatable")
    g.add_argument("--n", type=count_arg(), default=10, help="conformers per molecule")
    g.add_argument("--out", type=Path, required=True, help="output SDF, one record per conformer")
    e = parsers["evaluate"]
    e.add_argument(
        "--sdf",
        type=Path,
        default=None,
        help="reference conformers, several records per molecule (default: bundled held-out set)",
    )
    e.add_argument(
        "--threshold",
        type=number_arg(low=0.0, low_open=True),
        default=None,
        help="COV threshold in Angstrom (default: the paper's, 0.5 for QM9 and the bundled set, 1.25 for Drugs)",
    )
    e.add_argument("--ratio", type=count_arg(), default=2, help="generated conformers per reference conformer")
    e.add_argument(
        "--max-molecules", type=count_arg(minimum=0), default=0, help="score only the first N molecules (0: all)"
    )
    c = cli.add_command(
        "convert-geom",
        run_convert,
        MoleculesConfig,
        help="one-time, trusted conversion of GEOM / GeoDiff pickles to SDF",
        default_config="default",
    )
    c.add_argument("--pickle", type=Path, default=None, help="one GEOM rdkit_folder molecule pickle -> --out SDF")
    c.add_argument(
        "--root",
        type=Path,
        default=None,
        help="GEOM rdkit_folder: converts the molecules of GeoDiff's split (data.* settings) to <pickle>.sdf",
    )
    c.add_argument("--split-pickle", dest="split", type=Path, default=None, help="a GeoDiff split .pkl -> --out SDF")
    c.add_argument("--dataset", choices=GEOM_DATASETS, default=None, help="with --root (default: data.dataset)")
    c.add_argument("--all", action="store_true", help="with --root: every summary entry, not only the split's")
    c.add_argument("--out", type=Path, default=None, help="SDF file; with --root a folder (default: the root)")
    c.add_argument(
        "--trust-pickle",
        action="store_true",
        help="required: GEOM files are pickles, which run code when loaded; only for trusted files",
    )
    return cli


def main(argv: list[str] | None = None) -> int:
    """Console script entry point: the AppCLI's exit code (2 with one `error:` line for bad usage or input)."""
    return build_cli().main(argv)


if __name__ == "__main__":
    raise SystemExit(main())
