"""`omnidiffusion-molecules train | generate | evaluate | convert-geom` (parse, load config, wire; no logic).

    omnidiffusion-molecules train --config default --out runs/molecules
    omnidiffusion-molecules generate --checkpoint runs/molecules --smiles CCO --n 10 --out confs.sdf
    omnidiffusion-molecules generate --checkpoint runs/molecules --smiles CCO --set sampler.method=dpm++2m \
        --set sampler.steps=50 --out confs.sdf
    omnidiffusion-molecules evaluate --checkpoint runs/molecules --sdf refs.sdf --threshold 0.5
    omnidiffusion-molecules convert-geom --trust-pickle --pickle mol.pickle --out mol.sdf
    omnidiffusion-molecules convert-geom --trust-pickle --root rdkit_folder --dataset qm9      # once, then:
    omnidiffusion-molecules train --config qm9-paper --set data.root=rdkit_folder --out runs/molecules-qm9
    omnidiffusion-molecules evaluate --checkpoint runs/molecules-qm9          # GEOM test molecules of data.root

`generate` and `evaluate` start from the config `train` stored in the checkpoint (run_config.json); `--set
sampler.KEY=VALUE` changes the sampler for one run (and, for `evaluate`, `data.*` the reference molecules).
`evaluate` without --checkpoint scores the baselines only. Bad input ends a command with one line
`omnidiffusion-molecules CMD: error: ...` on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import dataclasses

from omnidiffusion.core.cli import AppCLI, count_arg, number_arg, output_file, print_json
from omnidiffusion.core.io import has_run_config
from omnidiffusion.core.training import is_main_process

from .data import read_sdf, write_sdf
from .evaluation import evaluation_report
from .geom import GEOM_DATASETS, convert_geodiff_split, convert_geom_pickle, convert_rdkit_folder, read_split_sdf
from .pipeline import ConformerGenerator
from .settings import PACKAGE, MoleculesConfig
from .training import check_data, train


def run_train(args: argparse.Namespace, config: MoleculesConfig) -> None:
    if config.train.device == "auto":  # --set train.device=... stays as given
        config.train.device = str(args.device)
    result = train(config, args.out, resume=args.resume)
    if is_main_process():  # under torchrun only rank 0 reports
        print_json(
            {
                "out_dir": str(result.out_dir),
                "steps": result.step,
                "loss": result.loss,
                "steps_per_sec": result.steps_per_sec,
                "wall_time_s": result.wall_time,
            }
        )


def check_set_keys(args: argparse.Namespace, sections: tuple[str, ...], why: str) -> None:
    """Refuse a --set key outside `sections`: this command would silently ignore it."""
    for text in args.overrides:
        key = text.split("=", 1)[0].strip()
        if key.split(".", 1)[0] not in sections:
            used = ", ".join(s + ".*" for s in sections) or "none"
            raise ValueError(f"--set {key}: not used by {args.command} ({why}); expected keys: {used}")


def load_generator(args: argparse.Namespace, config: MoleculesConfig) -> ConformerGenerator:
    """The checkpoint's generator sampling with `config.sampler` (the stored run config with --set applied).

    A checkpoint without run_config.json (written before it existed) keeps its stored sampler settings, with
    the keys given by --set sampler.KEY replacing theirs.
    """
    if has_run_config(args.checkpoint):
        return ConformerGenerator.from_pretrained(args.checkpoint, device=args.device, config=config)
    gen = ConformerGenerator.from_pretrained(args.checkpoint, device=args.device)
    given = [t.split("=", 1)[0].strip().removeprefix("sampler.") for t in args.overrides if t.startswith("sampler.")]
    gen.config.sampler = dataclasses.replace(gen.sampler, **{k: getattr(config.sampler, k) for k in given})
    return gen


def run_generate(args: argparse.Namespace, config: MoleculesConfig) -> None:
    output_file(args.out, "--out")
    check_set_keys(args, ("sampler",), "the checkpoint fixes the model and its schedule")
    gen = load_generator(args, config)
    mols = gen.generate_many(args.smiles, [args.n] * len(args.smiles), progress=True)
    path = write_sdf(mols, args.out)
    print_json({"out": str(path), "molecules": len(mols), "conformers_per_molecule": args.n, "sampler": gen.sampler})


def run_evaluate(args: argparse.Namespace, config: MoleculesConfig) -> None:
    sections = ("sampler",) * bool(args.checkpoint) + ("data",) * (not args.sdf)
    check_set_keys(args, sections, "sampler.* needs --checkpoint, data.* applies without --sdf, the checkpoint "
                   "fixes the model")
    gen = load_generator(args, config) if args.checkpoint else None
    report = evaluation_report(
        gen,
        config,
        sdf=args.sdf,
        threshold=args.threshold,
        ratio=args.ratio,
        max_molecules=args.max_molecules,
        checkpoint=args.checkpoint,
        progress=True,
    )
    print_json(report)


def run_convert(args: argparse.Namespace, config: MoleculesConfig) -> None:
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
    elif args.split is not None:
        path = convert_geodiff_split(args.split, args.out, trust_pickle=True)
        mols = read_split_sdf(path)
        print_json({"out": str(path), "molecules": len(mols), "conformers": sum(m.GetNumConformers() for m in mols)})
    else:
        path = convert_geom_pickle(args.pickle, args.out, trust_pickle=True)
        print_json({"out": str(path), "conformers": read_sdf(path)[0].GetNumConformers()})


cli = AppCLI("omnidiffusion-molecules", "Molecular conformer generation (GeoDiff).", package=PACKAGE)
cli.add_command(
    "train",
    run_train,
    MoleculesConfig,
    help="train GeoDiff on conformer ensembles",
    default_config="default",
    out=("runs/molecules", "run directory (checkpoints, final weights, run_config.json)"),
    resume=True,
)
_generate = cli.add_command(
    "generate",
    run_generate,
    MoleculesConfig,
    help="generate conformers for SMILES into an SDF (sampler: the checkpoint's, or --set sampler.KEY=VALUE)",
    default_config="default",
    checkpoint="required",
    out=("conformers.sdf", "output SDF, one record per conformer"),
)
_generate.add_argument("--smiles", action="append", required=True, help="a molecule, repeatable")
_generate.add_argument("--n", type=count_arg(), default=10, help="conformers per molecule")
_evaluate = cli.add_command(
    "evaluate",
    run_evaluate,
    MoleculesConfig,
    help="COV/MAT of a checkpoint and the baselines (without --checkpoint: the baselines only)",
    default_config="default",
    checkpoint="optional",
)
_evaluate.add_argument(
    "--sdf",
    default=None,
    help="reference conformers, several records per molecule (default: GEOM's test molecules under data.root, "
    "else the bundled held-out set)",
)
_evaluate.add_argument(
    "--threshold",
    type=number_arg(low=0.0, low_open=True),
    default=None,
    help="COV threshold in Angstrom (default: the paper's, 0.5 for QM9 and the bundled set, 1.25 for Drugs)",
)
_evaluate.add_argument("--ratio", type=count_arg(), default=2, help="generated conformers per reference conformer")
_evaluate.add_argument(
    "--max-molecules", type=count_arg(minimum=0), default=0, help="score only the first N molecules (0: all)"
)
_convert = cli.add_command(
    "convert-geom",
    run_convert,
    MoleculesConfig,
    help="one-time, trusted conversion of GEOM / GeoDiff pickles to SDF",
    default_config="default",
    out=(None, "SDF file; with --root a folder (default: the root)"),
    device=False,
)
_convert.add_argument("--pickle", default=None, help="one GEOM rdkit_folder molecule pickle -> --out SDF")
_convert.add_argument(
    "--root",
    default=None,
    help="GEOM rdkit_folder: converts the molecules of GeoDiff's split (data.* settings) to <pickle>.sdf",
)
_convert.add_argument("--split-pickle", dest="split", default=None, help="a GeoDiff split .pkl -> --out SDF")
_convert.add_argument("--dataset", choices=GEOM_DATASETS, default=None, help="with --root (default: data.dataset)")
_convert.add_argument("--all", action="store_true", help="with --root: every summary entry, not only the split's")
_convert.add_argument(
    "--trust-pickle",
    action="store_true",
    help="required: GEOM files are pickles, which run code when loaded; only for trusted files",
)

main = cli.run

if __name__ == "__main__":
    main()
