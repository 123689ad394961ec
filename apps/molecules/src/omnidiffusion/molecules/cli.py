"""omnidiffusion-molecules train | generate | evaluate | convert-geom.

omnidiffusion-molecules train --config default --out runs/molecules
omnidiffusion-molecules generate --checkpoint runs/molecules --smiles CCO --n 10 --out confs.sdf
omnidiffusion-molecules evaluate --checkpoint runs/molecules --sdf refs.sdf --threshold 0.5
omnidiffusion-molecules convert-geom --trust-pickle --pickle mol.pickle --out mol.sdf
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from omnidiffusion.core.cli import AppCLI, print_json

from .config import MoleculesConfig
from .data import convert_geom_pickle, read_sdf, write_sdf
from .pipeline import ConformerGenerator
from .training import bundled_split, evaluate_model, train

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


def _generator(args: argparse.Namespace) -> ConformerGenerator:
    return ConformerGenerator.from_pretrained(args.checkpoint, device=args.device)


def run_generate(args: argparse.Namespace, config: MoleculesConfig) -> int:
    if not args.smiles:
        raise SystemExit("generate: give at least one --smiles")
    if args.n < 1:
        raise SystemExit(f"generate: --n expected an integer >= 1, got {args.n}")
    gen = _generator(args)
    try:
        mols = gen.generate_many(
            args.smiles,
            [args.n] * len(args.smiles),
            method=args.method,
            steps=args.steps,
            seed=args.seed,
            progress=True,
        )
    except ValueError as e:
        raise SystemExit(f"generate: {e}") from None
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
    if args.sdf:
        refs = read_sdf(args.sdf)
        data = str(args.sdf)
    else:
        refs = bundled_split(config.data)[1]
        data = f"bundled held-out molecules ({len(refs)})"
    if args.max_molecules:
        refs = refs[: args.max_molecules]
    gen = _generator(args) if args.checkpoint else None
    cfg = gen.sampler_config(method=args.method, steps=args.steps) if gen is not None else None
    samplers = [(cfg.method, cfg.steps)] if cfg is not None else None
    try:
        result = evaluate_model(
            gen, refs, threshold=args.threshold, ratio=args.ratio, samplers=samplers, seed=args.seed, progress=True
        )
    except ValueError as e:
        raise SystemExit(f"evaluate: {e}") from None
    model = next(iter(result["model"].values()), None)
    protocol = dict(
        result["protocol"],
        data=data,
        checkpoint=args.checkpoint,
        sampler=None
        if cfg is None
        else {"method": cfg.method, "steps": cfg.steps, "grid": cfg.grid, "w_global": cfg.w_global, "seed": args.seed},
    )
    print_json({"model": model, "baselines": result["baselines"], "protocol": protocol})
    return 0


def run_convert(args: argparse.Namespace, config: MoleculesConfig) -> int:
    try:
        path = convert_geom_pickle(args.pickle, args.out, trust_pickle=args.trust_pickle)
    except ValueError as e:
        raise SystemExit(f"convert-geom: {e}") from None
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
        p.add_argument("--method", default=None, help="geodiff-ld (paper) or a core sampler, e.g. dpm++2m")
        p.add_argument("--steps", type=int, default=None, help="sampler steps (default: the checkpoint's)")
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--device", default="cpu")
        parsers[name] = p
    g = parsers["generate"]
    g.add_argument("--smiles", action="append", default=[], help="a molecule, repeatable")
    g.add_argument("--n", type=int, default=10, help="conformers per molecule")
    g.add_argument("--out", type=Path, required=True, help="output SDF, one record per conformer")
    e = parsers["evaluate"]
    e.add_argument(
        "--sdf",
        type=Path,
        default=None,
        help="reference conformers, several records per molecule (default: bundled held-out set)",
    )
    e.add_argument("--threshold", type=float, default=0.5, help="COV threshold in Angstrom (QM9 0.5, Drugs 1.25)")
    e.add_argument("--ratio", type=int, default=2, help="generated conformers per reference conformer")
    e.add_argument("--max-molecules", type=int, default=0, help="score only the first N molecules (0: all)")
    c = cli.add_command("convert-geom", run_convert, MoleculesConfig, help="GEOM pickle -> multi-conformer SDF")
    c.add_argument("--pickle", type=Path, required=True)
    c.add_argument("--out", type=Path, required=True)
    c.add_argument(
        "--trust-pickle",
        action="store_true",
        help="required: GEOM files are pickles, which run code when loaded; only for trusted files",
    )
    return cli


def main(argv: list[str] | None = None) -> int:
    """Console script entry point."""
    return build_cli().main(argv)


if __name__ == "__main__":
    raise SystemExit(main())
