"""The ``mri-genprior`` command: one console script, one sub-parser per command.

Every user error (bad file, bad setting) is printed as one ``error: ...`` line and the
process exits with status 2; a ``reconstruct`` run over several files goes on past a
failed file and exits with status 1 if any failed.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import List, Optional

from . import MriGenpriorError, __version__
from .masks import MASK_TYPES

log = logging.getLogger("mri_genprior")


def _key_value(text: str):
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    key, value = text.split("=", 1)
    return key.strip(), value.strip()


def _ensure_writable_dir(path: Path) -> Path:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise MriGenpriorError(f"cannot create output directory {path}: {err.strerror}") from err
    if not os.access(path, os.W_OK):
        raise MriGenpriorError(f"output directory {path} is not writable")
    return path


def _input_files(paths: List[Path]) -> List[Path]:
    files: List[Path] = []
    for p in paths:
        if p.is_dir():
            found = sorted(p.glob("*.h5"))
            if not found:
                raise MriGenpriorError(f"{p}: directory holds no .h5 files")
            files.extend(found)
        elif p.exists():
            files.append(p)
        else:
            raise MriGenpriorError(f"{p}: no such file or directory")
    return files


def add_mask_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("retrospective undersampling (files without their own mask)")
    group.add_argument("--mask", default="random", choices=MASK_TYPES,
                       help="mask type: fastMRI's mask functions or 2-D Poisson disc (default: random)")
    group.add_argument("--accel", type=float, default=4.0, help="nominal acceleration (default: 4)")
    group.add_argument("--center-fraction", type=float, default=0.08,
                       help="fraction of fully sampled centre lines (default: 0.08)")
    group.add_argument("--mask-seed", type=int, default=None,
                       help="mask seed (default: fastMRI's per-file seed from the file name)")


def _mask_spec(args):
    from .recon import MaskSpec

    return MaskSpec(args.mask, args.accel, args.center_fraction, args.mask_seed)


def cmd_reconstruct(args) -> int:
    from .recon import reconstruct_file
    from .solvers import make_method

    params = dict(args.param or [])
    if args.prior:
        params["prior"] = args.prior
    method = make_method(args.method, **params)
    files = _input_files(args.inputs)
    out_dir = _ensure_writable_dir(args.output)
    failures = 0
    for path in files:
        target = out_dir / path.name
        if target.exists() and not args.overwrite:
            print(f"skip {path.name}: {target} exists (use --overwrite)")
            continue
        try:
            written = reconstruct_file(path, out_dir, method, _mask_spec(args), args.device, args.batch_size,
                                       progress=not args.quiet)
            print(f"wrote {written}")
        except MriGenpriorError as err:
            failures += 1
            print(f"error: {err}", file=sys.stderr)
        except Exception as err:  # keep going with the other files; -v shows the traceback
            failures += 1
            log.debug("traceback", exc_info=True)
            print(f"error: {path.name}: internal error {type(err).__name__}: {err}", file=sys.stderr)
    return 1 if failures else 0


def cmd_evaluate(args) -> int:
    from .metrics import evaluate_dirs, format_table, summarize

    results = evaluate_dirs(args.target_dir, args.pred_dir, args.acquisition)
    if args.per_volume:
        for name, values in results.items():
            print(name, " ".join(f"{k}={v:.4g}" for k, v in values.items()))
    print(format_table(summarize(results)))
    if args.json:
        args.json.write_text(json.dumps({"volumes": results, "summary": summarize(results)}, indent=2))
    return 0


def cmd_synth(args) -> int:
    from .synthetic import write_synthetic_dataset

    _ensure_writable_dir(args.output)
    paths = write_synthetic_dataset(args.output, args.files, args.slices, (args.size, args.size), args.coils,
                                    args.noise, args.seed)
    for p in paths:
        print(f"wrote {p}")
    return 0


def cmd_demo(args) -> int:
    from .demo import run_demo

    run_demo(args.output, device=args.device)
    return 0


def build_parser() -> argparse.ArgumentParser:
    from .solvers import METHODS, describe

    parser = argparse.ArgumentParser(prog="mri-genprior", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"mri_genprior {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("reconstruct", help="reconstruct fastMRI files into submission files",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog="method parameters (-p KEY=VALUE):\n  " + "\n  ".join(describe(m) for m in METHODS))
    p.add_argument("inputs", nargs="+", type=Path, help="fastMRI .h5 files or directories of them")
    p.add_argument("-o", "--output", type=Path, required=True, help="output directory")
    p.add_argument("--method", default="l1-wavelet", choices=list(METHODS), help="default: l1-wavelet")
    p.add_argument("--prior", help="generator checkpoint for csgm, sign-flip, image-adaptive, sparse-gen")
    p.add_argument("-p", "--param", action="append", type=_key_value, metavar="KEY=VALUE",
                   help="method hyper-parameter (repeatable); see the list below")
    add_mask_arguments(p)
    p.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda, cuda:1, ...")
    p.add_argument("--batch-size", type=int, default=4, help="slices solved together (default: 4)")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs (default: skip them)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_reconstruct)

    p = sub.add_parser("evaluate", help="fastMRI metrics (NMSE, PSNR, SSIM) of predictions against targets")
    p.add_argument("--target-dir", type=Path, required=True, help="files with reconstruction_rss/_esc")
    p.add_argument("--pred-dir", type=Path, required=True, help="files with reconstruction (same names)")
    p.add_argument("--acquisition", help="only targets with this acquisition attribute (e.g. CORPD_FBK)")
    p.add_argument("--per-volume", action="store_true", help="also print each volume's metrics")
    p.add_argument("--json", type=Path, help="write all metrics to this JSON file")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("synth", help="write synthetic fastMRI-format multi-coil brain files (MNI152 anatomy)")
    p.add_argument("-o", "--output", type=Path, required=True)
    p.add_argument("--files", type=int, default=2)
    p.add_argument("--slices", type=int, default=4)
    p.add_argument("--size", type=int, default=64, help="recon matrix (square); readout is 2x oversampled")
    p.add_argument("--coils", type=int, default=8)
    p.add_argument("--noise", type=float, default=0.01, help="noise std relative to k-space RMS")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_synth)

    p = sub.add_parser("demo", help="synthetic data -> several methods -> metrics table and figure (~2 min on CPU)")
    p.add_argument("-o", "--output", type=Path, default=Path("mri_genprior_demo"))
    p.add_argument("--device", default="auto")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except MriGenpriorError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as err:
        if args.verbose:
            raise
        print(f"error: internal error {type(err).__name__}: {err} (run with -v for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
