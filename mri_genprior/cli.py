"""The ``mri-genprior`` command: one console script, one sub-parser per command.

Every user error (bad file, bad setting) is printed as one ``error: ...`` line and the
process exits with status 2; a ``reconstruct`` run over several files goes on past a
failed file and exits with status 1 if any failed.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
from pathlib import Path
from typing import Dict, List, Optional

from . import MriGenpriorError, __version__
from .io import input_files, writable_dir
from .masks import MASK_TYPES


def _key_value(text: str):
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    key, value = text.split("=", 1)
    return key.strip(), value.strip()


def _at_least(low, kind=int):
    """An argparse type: a ``kind`` number >= ``low``."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {kind.__name__} >= {low}, got {text!r}") from None
        if not value >= low:
            raise argparse.ArgumentTypeError(f"expected {kind.__name__} >= {low}, got {text!r}")
        return value
    return parse


def add_mask_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("retrospective undersampling (files without their own mask)")
    group.add_argument("--mask", default="random", choices=MASK_TYPES,
                       help="mask type: fastMRI's mask functions or 2-D Poisson disc (default: random)")
    group.add_argument("--accel", type=float, default=4.0, help="nominal acceleration (default: 4)")
    group.add_argument("--center-fraction", type=float, default=0.08,
                       help="fraction of fully sampled centre lines (default: 0.08)")
    group.add_argument("--mask-seed", type=int, default=None,
                       help="mask seed (default: fastMRI's per-file seed from the file name; <stem>.h5 for "
                            "other input formats)")


def add_calibration_arguments(parser: argparse.ArgumentParser) -> None:
    from .physics import DEFAULT_MAPS, MAPS

    parser.add_argument("--maps", default=DEFAULT_MAPS, choices=MAPS,
                        help=f"coil-map estimate from the calibration region (default: {DEFAULT_MAPS}); "
                             "see docs/real_data.md")
    parser.add_argument("--no-prewhiten", dest="prewhiten", action="store_false",
                        help="do not whiten the coil noise (by default its covariance is estimated from the "
                             "k-space corners and the coils are prewhitened; see docs/real_data.md)")
    parser.add_argument("--no-noise-floor", dest="noise_floor", action="store_false",
                        help="write the RSS of the data-consistent coil images without the noise power that "
                             "the unmeasured samples would have added (see docs/formats.md)")


def _options(args, mask, **fields):
    """The :class:`~mri_genprior.recon.ReconOptions` of a command's arguments."""
    from .recon import ReconOptions

    return ReconOptions(mask, maps=args.maps, prewhiten=args.prewhiten, noise_floor=args.noise_floor,
                        device=args.device, batch_size=args.batch_size, progress=not args.quiet, **fields)


def cmd_reconstruct(args) -> int:
    from .scaleout import Job, reconstruct_all

    params = dict(args.param or [])
    if args.prior:
        params["prior"] = args.prior
    from .readers import input_paths
    from .writers import output_path

    files = input_paths(args.inputs)
    from .recon import MaskSpec

    mask = MaskSpec(args.mask, args.accel, args.center_fraction, args.mask_seed)
    job = Job(args.method, params, _options(args, mask, fmt=args.format))
    report = reconstruct_all(files, args.output, job, workers=args.workers, scheduler=args.scheduler,
                             overwrite=args.overwrite, progress=not args.quiet)
    for path in report.skipped:
        print(f"skip {path.name}: {output_path(args.format, args.output, path)} exists (use --overwrite)")
    for path in report.written:
        print(f"wrote {path}")
    for name, error in report.failed:
        print(f"error: {name}: {error}", file=sys.stderr)
    return 1 if report.failed else 0


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
    from .experiments.synthetic import write_synthetic_dataset

    writable_dir(args.output)
    paths = write_synthetic_dataset(args.output, args.files, args.slices, (args.size, args.size), coils=args.coils,
                                    noise=args.noise, seed=args.seed)
    for p in paths:
        print(f"wrote {p}")
    return 0


def _method_params(pairs) -> dict:
    """``METHOD:KEY=VALUE`` pairs -> ``{method: {key: value}}``."""
    params: dict = {}
    for key, value in pairs or []:
        if ":" not in key:
            raise MriGenpriorError(f"study parameters are METHOD:KEY=VALUE, got {key}={value}")
        method, name = key.split(":", 1)
        params.setdefault(method, {})[name] = value
    return params


def _float_list(text: str) -> List[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"accelerations must be >= 1, got {text!r}")
    return values


def cmd_study(args) -> int:
    from .experiments.study import StudySpec, format_summary, run_study, summarize_rows

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    params = _method_params(args.param)
    unknown = set(params) - set(methods)
    if unknown:
        raise MriGenpriorError(f"parameters given for methods not in --methods: {', '.join(sorted(unknown))}")
    from .recon import MaskSpec

    options = _options(args, MaskSpec(args.mask, args.accels[0], args.center_fraction))
    spec = StudySpec(methods, args.accels, params, args.prior, options)
    rows = run_study(args.data, args.output, spec, progress=not args.quiet)
    print(format_summary(summarize_rows(rows)), end="")
    print(f"study written to {args.output} (results.csv, summary.md, metrics_vs_accel.png, examples.png)")
    return 0


def add_dataclass_options(parser: argparse.ArgumentParser, cls, presets: Dict[str, dict]) -> None:
    """One ``--option`` per field of the dataclass ``cls``, with the field's type, ``choices``,
    ``flag`` and ``help`` metadata. Every default is None, so the settings given on the
    command line can be told apart; the help shows the real default and each preset's."""
    for f in dataclasses.fields(cls):
        default = f.default_factory() if f.default is dataclasses.MISSING else f.default
        shown = f"default {default}" + "".join(f"; {name}: {values[f.name]}" for name, values in presets.items()
                                               if f.name in values)
        flag = f.metadata.get("flag", "--" + f.name.replace("_", "-"))
        text = f"{f.metadata['help']} ({shown})"
        if isinstance(default, list):
            parser.add_argument(flag, dest=f.name, action="append", help=text)
        else:
            parser.add_argument(flag, dest=f.name, type=type(default), choices=f.metadata.get("choices"), help=text)


def cmd_train(args) -> int:
    from .priors.train import PRESETS, TrainConfig, train
    from .recon import resolve_device

    explicit = [f.name for f in dataclasses.fields(TrainConfig) if getattr(args, f.name) is not None]
    config = dataclasses.replace(TrainConfig(**PRESETS[args.preset]),
                                 **{name: getattr(args, name) for name in explicit})
    data = input_files(args.data) if args.data else []
    if not args.resume:
        writable_dir(args.output)
    summary = train(config, data, args.output, resolve_device(args.device), args.resume, explicit,
                    progress=not args.quiet)
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"trained {summary['model']} for {summary['steps']} steps ({summary['train_seconds']:.0f} s); "
              f"prior: {summary['generator']}")
    return 0


def cmd_demo(args) -> int:
    from .experiments.demo import run_demo

    run_demo(args.output, device=args.device)
    return 0


def cmd_serve(args) -> int:
    from .recon import resolve_device
    from .server import make_server

    server = make_server(args.host, args.port, args.workers, resolve_device(args.device))
    host, port = server.server_address[:2]
    print(f"mri-genprior serve: listening on {host}:{port} (MRD streaming protocol; Ctrl-C stops)", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0


def cmd_send(args) -> int:
    from .client import send_file

    config = None
    if args.prior or args.param:
        config = {"method": args.method, "parameters": dict(args.param or []), "prior": args.prior}
    out = send_file(args.input, args.host, args.port, args.output, args.method, config)
    print(f"wrote {out}")
    return 0


def _with_prior() -> str:
    from .solvers import METHODS

    return ", ".join(name for name, entry in METHODS.items() if entry.takes_prior)


def _add_reconstruct(sub) -> None:
    """The ``reconstruct`` subcommand."""
    from .solvers import METHODS, describe
    from .writers import OUTPUT_FORMATS

    p = sub.add_parser("reconstruct", help="reconstruct k-space files (fastMRI, ISMRMRD, BART, .npy) into "
                                           "submission files, NIfTI or PNG previews",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog="method parameters (-p KEY=VALUE):\n  " + "\n  ".join(describe(m) for m in METHODS))
    p.add_argument("inputs", nargs="+", type=Path,
                   help="k-space files (fastMRI or ISMRMRD .h5, BART .cfl/.hdr, .npy; format detected from the "
                        "content) or directories of them")
    p.add_argument("-o", "--output", type=Path, required=True, help="output directory")
    p.add_argument("--format", default="h5", choices=OUTPUT_FORMATS,
                   help="h5: fastMRI submission file (default); nifti: NIfTI-1 .nii.gz with a JSON sidecar; "
                        "png: per-slice previews and a contact sheet")
    p.add_argument("--method", default="l1-wavelet", choices=list(METHODS), help="default: l1-wavelet")
    p.add_argument("--prior", help=f"generator checkpoint for {_with_prior()}")
    p.add_argument("-p", "--param", action="append", type=_key_value, metavar="KEY=VALUE",
                   help="method hyper-parameter (repeatable); see the list below")
    add_mask_arguments(p)
    add_calibration_arguments(p)
    p.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda, cuda:1, ...")
    p.add_argument("--batch-size", type=_at_least(1), default=4, help="slices solved together (default: 4)")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs (default: skip them)")
    p.add_argument("--workers", type=_at_least(0), default=0,
                   help="volumes in parallel on a local Dask cluster of this many worker processes "
                        "(default 0: one after another in this process; needs the 'dask' extra)")
    p.add_argument("--scheduler", help="address of an existing Dask scheduler (e.g. tcp://host:8786) to run on")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_reconstruct)


def _add_evaluate(sub) -> None:
    """The ``evaluate`` subcommand."""
    p = sub.add_parser("evaluate", help="fastMRI metrics (NMSE, PSNR, SSIM) of predictions against targets")
    p.add_argument("--target-dir", type=Path, required=True, help="files with reconstruction_rss/_esc")
    p.add_argument("--pred-dir", type=Path, required=True, help="files with reconstruction (same names)")
    p.add_argument("--acquisition", help="only targets with this acquisition attribute (e.g. CORPD_FBK)")
    p.add_argument("--per-volume", action="store_true", help="also print each volume's metrics")
    p.add_argument("--json", type=Path, help="write all metrics to this JSON file")
    p.set_defaults(func=cmd_evaluate)


def _add_synth(sub) -> None:
    """The ``synth`` subcommand."""
    p = sub.add_parser("synth", help="write synthetic fastMRI-format multi-coil brain files (MNI152 anatomy)")
    p.add_argument("-o", "--output", type=Path, required=True)
    p.add_argument("--files", type=_at_least(1), default=2)
    p.add_argument("--slices", type=_at_least(1), default=4)
    p.add_argument("--size", type=_at_least(16), default=64, help="recon matrix (square); readout is 2x oversampled")
    p.add_argument("--coils", type=_at_least(1), default=8, help="1 writes a single-coil file")
    p.add_argument("--noise", type=_at_least(0.0, float), default=0.01, help="noise std relative to k-space RMS")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_synth)


def _add_study(sub) -> None:
    """The ``study`` subcommand."""
    from .solvers import METHODS

    p = sub.add_parser("study", help="compare methods across acceleration factors: CSV, Markdown table, figures",
                       description="Reconstruct every file with every method at every acceleration (skipping "
                                   "cells already in the study directory), then write results.csv, summary.md, "
                                   "metrics_vs_accel.png and examples.png.")
    p.add_argument("--data", nargs="+", type=Path, required=True, help="fastMRI .h5 files or directories (need "
                   "reconstruction_rss)")
    p.add_argument("-o", "--output", type=Path, required=True, help="study directory")
    p.add_argument("--methods", default="zero-filled,l1-wavelet",
                   help=f"comma-separated, from: {', '.join(METHODS)} (default: zero-filled,l1-wavelet)")
    p.add_argument("--accels", type=_float_list, default=[2.0, 4.0, 8.0], help="comma-separated (default: 2,4,8)")
    p.add_argument("--prior", help=f"generator checkpoint for {_with_prior()}")
    p.add_argument("-p", "--param", action="append", type=_key_value, metavar="METHOD:KEY=VALUE",
                   help="a method's hyper-parameter, e.g. csgm:restarts=8 (repeatable)")
    p.add_argument("--mask", default="random", choices=MASK_TYPES, help="default: random")
    p.add_argument("--center-fraction", type=float, default=0.08, help="default: 0.08")
    add_calibration_arguments(p)
    p.add_argument("--device", default="auto")
    p.add_argument("--batch-size", type=_at_least(1), default=4, help="slices solved together (default: 4)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_study)


def _add_train(sub) -> None:
    """The ``train`` subcommand."""
    from .priors.models import TRAINABLE
    from .priors.train import PRESETS, TrainConfig

    p = sub.add_parser("train", help="train a generative prior on fastMRI files; torchrun for DDP",
                       description=f"Train a prior ({', '.join(TRAINABLE)}; see mri_genprior.priors.models). "
                                   "Run under `torchrun --nproc_per_node N -m mri_genprior.cli train ...` for "
                                   "DistributedDataParallel (gloo on CPU, NCCL on CUDA).")
    p.add_argument("--data", nargs="+", type=Path, help="fastMRI .h5 files or directories (not needed with --resume)")
    p.add_argument("-o", "--output", type=Path, required=True, help="run directory")
    p.add_argument("--preset", default="default", choices=list(PRESETS),
                   help="base settings; 'small' = 64x64, 300 steps, fits a CPU in minutes (default: default)")
    add_dataclass_options(p, TrainConfig, {k: v for k, v in PRESETS.items() if v})
    p.add_argument("--resume", action="store_true", help="continue the run in --output exactly where it stopped")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda (under torchrun: cuda:LOCAL_RANK)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_train)


def _add_serve(sub) -> None:
    """The ``serve`` subcommand."""
    p = sub.add_parser("serve", help="a reconstruction server on the MRD streaming protocol (Gadgetron, FIRE, "
                                     "python-ismrmrd-server's client)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=_at_least(0), default=9002, help="TCP port (default: 9002; 0: any free port)")
    p.add_argument("--workers", type=_at_least(1), default=1, help="slices reconstructed at a time, over all "
                                                                   "connections (default: 1)")
    p.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda, cuda:1, ...")
    p.set_defaults(func=cmd_serve)


def _add_send(sub) -> None:
    """The ``send`` subcommand."""
    from .solvers import METHODS

    p = sub.add_parser("send", help="stream an ISMRMRD raw file to an MRD server; write the images it returns")
    p.add_argument("input", type=Path, help="ISMRMRD raw .h5 file")
    p.add_argument("-o", "--output", type=Path, required=True, help="ISMRMRD image file to write")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=_at_least(1), default=9002)
    p.add_argument("--method", default="l1-wavelet", choices=list(METHODS), help="default: l1-wavelet")
    p.add_argument("--prior", help="checkpoint path on the server")
    p.add_argument("-p", "--param", action="append", type=_key_value, metavar="KEY=VALUE",
                   help="method hyper-parameter (repeatable)")
    p.set_defaults(func=cmd_send)


def _add_demo(sub) -> None:
    """The ``demo`` subcommand."""
    p = sub.add_parser("demo", help="synthetic data -> a prior trained on the spot -> a short study "
                                    "(about 3 minutes on 2 CPU cores)")
    p.add_argument("-o", "--output", type=Path, default=Path("mri_genprior_demo"))
    p.add_argument("--device", default="auto")
    p.set_defaults(func=cmd_demo)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mri-genprior", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"mri_genprior {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (_add_reconstruct, _add_evaluate, _add_synth, _add_study, _add_train, _add_serve, _add_send, _add_demo):
        add(sub)
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
    except BrokenPipeError:  # stdout piped into e.g. `head`, which stopped reading
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as err:
        if args.verbose:
            raise
        print(f"error: internal error {type(err).__name__}: {err} (run with -v for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
