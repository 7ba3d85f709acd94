"""Measure a sampler's steps-versus-error curve (``aigc-edge calibrate``), or make the digits model (``--train DIR``).

Examples::

    aigc-edge calibrate --quick --out results/calibrate/quick      # shipped digits model, ~1 min
    aigc-edge calibrate --fit-min-steps 5 --out results/calibrate/digits  # docs/results.md's run
    aigc-edge calibrate --refit results/calibrate/digits --form table    # another fit, no sampling
    aigc-edge calibrate --train aigc_edge_env/calibrate/digits_model  # retrain the shipped model
    aigc-edge calibrate --pipeline PATH --reference ref.npy --features mymod:extractor \\
        --prompt "a photo of a cat" --steps 5 10 20 50 --out results/calibrate/mine

``--reference`` is ``digits`` (scikit-learn's digits) or a ``.npy`` of images ``(n, c, h, w)`` in ``[-1, 1]``
or of their features ``(n, d)``;
``--features`` is ``digits-cnn`` (the shipped classifier's penultimate layer), ``pixels`` (flattened
images) or ``module:function``, a function of no arguments returning a callable from such an image array
to a feature array ``(n, d)``.
"""

from __future__ import annotations

import argparse
import importlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from aigc_edge_env.calibrate.measure import FORMS, FULL_STEPS, QUICK_STEPS, MeasureSettings
from aigc_edge_env.calibrate.sampler import SPACINGS, SamplerSettings
from aigc_edge_env.cli.common import UsageError, check_device, check_output_dir, count, finite_float, seed

#: The quick mode (CI-sized): its settings replace the full run's defaults.
QUICK = {"steps": QUICK_STEPS, "n_samples": 128, "sample_batch_size": 128, "timing_batch_sizes": (128,),
         "timing_repeats": 1, "n_bootstrap": 50}


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--train", type=Path, default=None, metavar="DIR",
                        help="train the digits model into DIR instead of measuring")
    parser.add_argument("--train-iterations", type=count, default=None, help="with --train (default 1500)")
    parser.add_argument("--pipeline", type=Path, default=None,
                        help="local diffusers pipeline folder (default: the shipped digits model)")
    parser.add_argument("--reference", default=None,
                        help="'digits' (default) or a .npy of images (n, c, h, w) in [-1, 1]")
    parser.add_argument("--features", default=None, help="'digits-cnn' (default), 'pixels' or 'module:function'")
    parser.add_argument("--scheduler", default=None,
                        help="ddim (default), ddpm, dpm, euler, pndm or a diffusers class name")
    parser.add_argument("--eta", type=finite_float, default=None, help="the scheduler's eta (default 0)")
    parser.add_argument("--spacing", choices=SPACINGS, default=None, help="timestep spacing (default trailing)")
    parser.add_argument("--clip-sample", action="store_true", help="clip the predicted clean image (default off)")
    parser.add_argument("--prompt", default=None, help="text prompt (text-to-image pipelines)")
    parser.add_argument("--quick", action="store_true",
                        help=f"CI-sized: {QUICK['n_samples']} samples, steps {' '.join(map(str, QUICK_STEPS))}")
    parser.add_argument("--steps", type=count, nargs="*", default=None,
                        help=f"step counts (default {' '.join(map(str, FULL_STEPS))})")
    parser.add_argument("--n-samples", type=count, default=None, help="samples per step count (default 1000)")
    parser.add_argument("--batch-size", type=count, default=None, help="sampling batch (default 500)")
    parser.add_argument("--timing-batch-sizes", type=count, nargs="*", default=None,
                        help="batch sizes timed (default 1 100 500; none: no timing)")
    parser.add_argument("--timing-repeats", type=count, default=None)
    parser.add_argument("--bootstrap", type=count, default=None, help="bootstrap resamples (default 200)")
    parser.add_argument("--form", choices=FORMS, default=None, help="spec form written to spec.json (default power)")
    parser.add_argument("--fit-min-steps", type=count, default=None,
                        help="fit only the points with at least this many steps (default 1: all)")
    parser.add_argument("--refit", type=Path, default=None, metavar="DIR",
                        help="fit a finished run's report.json in DIR again (--form, --fit-min-steps); no sampling")
    parser.add_argument("--seed", type=seed, default=None, help="seed of the sampling or the training (default 0)")
    parser.add_argument("--threads", type=count, default=None, help="torch CPU threads (default torch's)")
    parser.add_argument("--device", default=None, help="torch device, e.g. cuda (default cpu)")
    parser.add_argument("--dtype", default=None, choices=("float32", "float16", "bfloat16"),
                        help="the pipeline's dtype (default float32)")
    parser.add_argument("--out", type=Path, default=None, help="output folder of a measurement (default "
                        "results/calibrate; --train writes to its DIR, --refit rewrites its DIR)")


def load_reference(name: str) -> np.ndarray:
    """The reference images ``(n, c, h, w)`` in ``[-1, 1]``, or their features ``(n, d)`` (a 2-D ``.npy``)."""
    if name == "digits":
        from aigc_edge_env.calibrate.digits import load_images

        return load_images()[0]
    path = Path(name)
    if path.suffix != ".npy" or not path.is_file():
        raise ValueError(f"reference = {name!r} is invalid: accepted 'digits' or an existing .npy file")
    data = np.load(path, mmap_mode="r")  # large image sets stay on disk; features are taken batch by batch
    if data.ndim not in (2, 4):
        raise ValueError(f"reference = {name!r} is invalid: accepted images (n, c, h, w) in [-1, 1] or features "
                         f"(n, d), got shape {data.shape}")
    if data.ndim == 4 and (data[:64].min() < -1 or data[:64].max() > 1):
        raise ValueError(f"reference = {name!r} is invalid: images must lie in [-1, 1] (the first 64 do not)")
    return data


def load_features(name: str, pipeline: Path) -> Callable[[np.ndarray], np.ndarray]:
    if name == "digits-cnn":
        from aigc_edge_env.calibrate.digits import CLASSIFIER_FILE, feature_extractor

        if not (pipeline / CLASSIFIER_FILE).is_file():
            raise ValueError(f"features = 'digits-cnn' needs {CLASSIFIER_FILE} in the pipeline folder {pipeline}; "
                             "pass --features pixels or module:function for other models")
        return feature_extractor(pipeline)
    if name == "pixels":
        return lambda images: np.asarray(images, dtype=np.float64).reshape(len(images), -1)
    check_features_name(name)
    module, _, function = name.partition(":")
    try:
        make = getattr(importlib.import_module(module), function)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"features = {name!r} is invalid: cannot import {function} from {module} ({exc})") from None
    return make()


def check_features_name(name: str) -> None:
    """Raise ``ValueError`` unless ``name`` has the form of a features extractor (before anything loads)."""
    module, _, function = name.partition(":")
    if name not in ("digits-cnn", "pixels") and not (module and function):
        raise ValueError(f"features = {name!r} is invalid: accepted 'digits-cnn', 'pixels' or 'module:function'")


#: The options each mode reads (a measurement, ``--train``, ``--refit``), with the defaults of those the parser
#: leaves ``None`` so that an option given to a mode that does not read it is refused, not ignored.
MEASURING = ("quick", "steps", "n_samples", "batch_size", "timing_batch_sizes", "timing_repeats", "bootstrap",
             "pipeline", "prompt", "out", "reference", "features", "scheduler", "eta", "spacing", "clip_sample",
             "form", "fit_min_steps", "seed", "threads", "device", "dtype")
MODE_OPTIONS = {None: MEASURING, "train": ("train_iterations", "seed", "threads"), "refit": ("form", "fit_min_steps")}
DEFAULTS = {"train_iterations": 1500, "reference": "digits", "features": "digits-cnn", "scheduler": "ddim",
            "eta": 0.0, "spacing": "trailing", "form": "power", "fit_min_steps": 1, "seed": 0, "device": "cpu",
            "dtype": "float32", "out": Path("results/calibrate")}


def _check(args: argparse.Namespace) -> None:
    """Every argument that can be checked before any work (the pipeline, reference and features load later)."""
    if args.train is not None and args.refit is not None:
        raise UsageError("--train and --refit are two modes: give one")
    mode = "train" if args.train is not None else "refit" if args.refit is not None else None
    options = {name for names in MODE_OPTIONS.values() for name in names}
    ignored = [f"--{name.replace('_', '-')}" for name in sorted(options - set(MODE_OPTIONS[mode]))
               if getattr(args, name) is not None and getattr(args, name) is not False]  # 0 is given (0 == False)
    if ignored:
        what = f"--{mode}" if mode is not None else "a measurement (without --train or --refit)"
        raise UsageError(f"{what} takes none of {', '.join(ignored)}: accepted "
                         + ", ".join(f"--{name.replace('_', '-')}" for name in MODE_OPTIONS[mode]))
    for name, default in DEFAULTS.items():
        if getattr(args, name) is None:
            setattr(args, name, default)
    check_device(args.device)
    check_features_name(args.features)
    if args.train is not None:
        check_output_dir(args.train, "--train")
    elif args.refit is not None:
        if not (args.refit / "report.json").is_file():
            raise UsageError(f"--refit {args.refit}: accepted a folder with a calibration's report.json")
    else:
        check_output_dir(args.out)


def run(args: argparse.Namespace) -> int:
    try:  # bad input: a usage error naming the parameter, not a traceback
        _check(args)
        work = _prepare(args)
    except ValueError as error:
        raise UsageError(str(error)) from None
    return work()  # an error during the work keeps its traceback (docs/cli.md)


def _prepare(args: argparse.Namespace) -> Callable[[], int]:
    """Everything that can refuse the request (the pipeline, the steps, the reference, the features, a report to
    refit), then the work as a function of no arguments."""
    if args.train is not None:
        from aigc_edge_env.calibrate.digits import train

        def train_digits() -> int:
            train(args.train, iterations=args.train_iterations, seed=args.seed, threads=args.threads or 1)
            return 0

        return train_digits
    if args.refit is not None:
        from aigc_edge_env.calibrate.measure import refit

        report = refit(args.refit, args.form, args.fit_min_steps)  # reads and fits a report: no long work
        print(f"rewrote {args.refit}: spec {report['spec']}")
        return lambda: 0
    from aigc_edge_env.calibrate.digits import shipped_model_path
    from aigc_edge_env.calibrate.measure import calibrate
    from aigc_edge_env.calibrate.sampler import Sampler

    start = time.perf_counter()
    chosen: dict[str, Any] = dict(QUICK) if args.quick else {}
    given = {"steps": args.steps, "n_samples": args.n_samples, "sample_batch_size": args.batch_size,
             "timing_batch_sizes": args.timing_batch_sizes, "timing_repeats": args.timing_repeats,
             "n_bootstrap": args.bootstrap}
    chosen.update({k: tuple(v) if isinstance(v, list) else v for k, v in given.items() if v is not None})
    pipeline = args.pipeline or shipped_model_path()
    settings = MeasureSettings(**chosen, form=args.form, fit_min_steps=args.fit_min_steps, seed=args.seed,
                               extra={"pipeline": str(pipeline), "reference": args.reference,
                                      "features": args.features, "quick": args.quick, "threads": args.threads})
    sampler_settings = SamplerSettings(args.scheduler, args.eta, args.spacing, args.clip_sample, args.prompt)
    sampler = Sampler(pipeline, sampler_settings, threads=args.threads, device=args.device, dtype=args.dtype)
    sampler.check_steps(settings.steps)  # before the reference and features load
    reference, features = load_reference(args.reference), load_features(args.features, pipeline)

    def measure() -> int:
        report = calibrate(sampler, reference, features, settings, args.out)
        print(f"total wall time {time.perf_counter() - start:.1f} s; spec {report['spec']}")
        return 0

    return measure
