"""One calibration run: quality per step count, seconds per step, the fit, the spec and the report.

:func:`calibrate` samples ``n_samples`` images at each step count (the same seed, so the same initial
noise, for every count), measures the Frechet distance of their features to the reference set's with a
bootstrap interval over samples (:func:`~aigc_edge_env.calibrate.metrics.bootstrap_interval`), times the
sampler at each batch size asked, fits the env's error curve (:mod:`aigc_edge_env.calibrate.fit`) and
writes, into ``out``:

* ``spec.json``: the curve in the form asked, as the config accepts it (``edge_error_curve`` or
  ``device_error_curve``: ``make_config(overrides={"edge_error_curve": json.load(...)})``);
* ``report.json`` (everything, including the sampler settings and the scheduler's config),
  ``report.md`` (the tables), ``curve.png`` (measured points with intervals and the fit, residuals)
  and ``samples.png`` (a grid of samples per step count).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from aigc_edge_env.calibrate.fit import curve_spec, fit_convex_table, fit_power_law
from aigc_edge_env.calibrate.metrics import bootstrap_interval, frechet_distance
from aigc_edge_env.calibrate.sampler import Sampler
from aigc_edge_env.files import write_atomic
from aigc_edge_env.plotting import pyplot, save_figure

FORMS = ("power", "table")
QUICK_STEPS = (2, 5, 10, 20, 50)
FULL_STEPS = (2, 3, 5, 10, 20, 50, 100, 200)


def progress(message: str) -> None:
    """Print a progress line at once (also when stdout is a file)."""
    print(message, flush=True)


@dataclass(frozen=True)
class MeasureSettings:
    """What is measured (the sampler's own settings are :class:`SamplerSettings`)."""

    steps: tuple[int, ...] = FULL_STEPS
    n_samples: int = 1000
    sample_batch_size: int = 500
    timing_batch_sizes: tuple[int, ...] = (1, 100, 500)
    timing_steps: tuple[int, int] = (10, 50)
    timing_repeats: int = 3
    n_bootstrap: int = 200
    confidence: float = 0.95
    seed: int = 0
    form: str = "power"
    fit_min_steps: int = 1  # fit only the points with at least this many steps (all are measured and reported)
    grid_samples: int = 10  # samples per step count in samples.png
    extra: dict[str, Any] = field(default_factory=dict)  # recorded as is (e.g. the feature extractor's name)

    def __post_init__(self) -> None:
        checks = [
            ("n_samples", self.n_samples, self.n_samples >= 2, "an integer >= 2"),
            ("sample_batch_size", self.sample_batch_size, self.sample_batch_size >= 1, "an integer >= 1"),
            ("timing_batch_sizes", self.timing_batch_sizes, all(b >= 1 for b in self.timing_batch_sizes),
             "integers >= 1 (empty: no timing)"),
            ("timing_repeats", self.timing_repeats, self.timing_repeats >= 1, "an integer >= 1"),
            ("n_bootstrap", self.n_bootstrap, self.n_bootstrap >= 1, "an integer >= 1"),
            ("confidence", self.confidence, 0 < self.confidence < 1, "a number in (0, 1)"),
            ("form", self.form, self.form in FORMS, f"one of {FORMS}"),
            ("fit_min_steps", self.fit_min_steps, self.fit_min_steps >= 1, "an integer >= 1"),
            ("steps", list(self.steps), len(self.steps) >= 1 and all(int(s) == s >= 1 for s in self.steps),
             "a non-empty list of integers >= 1 (and at most the scheduler's num_train_timesteps)"),
        ]
        for name, value, ok, accepted in checks:
            if not ok:
                raise ValueError(f"{name} = {value!r} is invalid: accepted {accepted}")
        fitted = {s for s in self.steps if s >= self.fit_min_steps}
        if len(fitted) < (3 if self.form == "power" else 2):
            raise ValueError(f"steps = {list(self.steps)} is invalid for form {self.form!r} with fit_min_steps = "
                             f"{self.fit_min_steps}: accepted >= {3 if self.form == 'power' else 2} distinct counts "
                             "at or above fit_min_steps (the fit's parameters)")


def calibrate(sampler: Sampler, reference: np.ndarray, features: Callable[[np.ndarray], np.ndarray],
              settings: MeasureSettings, out: Path, log: Callable[[str], None] = progress) -> dict[str, Any]:
    """Run the measurement (see the module docstring); returns the report's dict.

    ``reference`` is images ``(m, c, h, w)`` in ``[-1, 1]`` (their features are taken in batches of
    ``sample_batch_size``) or, 2-D, the reference's features ``(m, d)`` already."""
    steps = sorted(set(sampler.check_steps(settings.steps)))
    start = time.perf_counter()
    if reference.ndim == 2:
        reference_features = np.asarray(reference, dtype=np.float64)
    else:
        size = settings.sample_batch_size
        reference_features = np.concatenate([features(np.asarray(reference[i:i + size], dtype=np.float32))
                                             for i in range(0, len(reference), size)])
    rng = np.random.default_rng(settings.seed)
    rows, grids = [], []
    for s in steps:
        sample_s, parts = 0.0, []  # type: float, list[np.ndarray]
        batches = sampler.batches(settings.n_samples, s, settings.seed, settings.sample_batch_size)
        while True:  # features batch by batch: only they are kept (and the first images for the grid)
            t0 = time.perf_counter()
            images = next(batches, None)
            sample_s += time.perf_counter() - t0
            if images is None:
                break
            if not parts:
                grids.append(images[: settings.grid_samples])
            parts.append(features(images))
        feats = np.concatenate(parts)
        value = frechet_distance(feats, reference_features)
        low, high = bootstrap_interval(feats, reference_features, settings.n_bootstrap, settings.confidence, rng)
        rows.append({"steps": s, "error": value, "low": low, "high": high, "sample_wall_s": sample_s})
        log(f"s = {s:4d}: FD {value:.4g} [{low:.4g}, {high:.4g}]  ({sample_s:.1f} s to sample {settings.n_samples})")
    timings = []
    for batch in settings.timing_batch_sizes:
        timing = sampler.time_per_step(batch, settings.timing_steps, settings.timing_repeats, settings.seed)
        timings.append(timing)
        log(f"batch {batch:4d}: {timing['seconds_per_step'] * 1e3:.2f} ms per step, "
            f"{timing['ms_per_image_step']:.3f} ms per image per step")
    report: dict[str, Any] = {"measure": asdict(settings), "sampler": sampler.recorded(), "points": rows,
                              "timings": timings, "n_reference": int(len(reference))}
    fit_report(report, settings.form, settings.fit_min_steps)
    report["wall_s"] = time.perf_counter() - start
    write_report(report, out, grids)
    log(f"wrote {out}/spec.json, report.json, report.md, curve.png, samples.png ({report['wall_s']:.1f} s)")
    return report


def fit_report(report: dict[str, Any], form: str, fit_min_steps: int) -> None:
    """Fit the report's points with ``steps >= fit_min_steps``: sets ``power_law`` (3 points or more),
    ``table`` and ``spec`` (the form asked)."""
    if form not in FORMS:
        raise ValueError(f"form = {form!r} is invalid: accepted one of {FORMS}")
    points = [p for p in report["points"] if p["steps"] >= fit_min_steps]
    if len(points) < (3 if form == "power" else 2):
        raise ValueError(f"fit_min_steps = {fit_min_steps} is invalid: it leaves {len(points)} measured points, "
                         f"form {form!r} needs {3 if form == 'power' else 2}")
    steps, errors = [p["steps"] for p in points], [p["error"] for p in points]
    report["measure"].update(form=form, fit_min_steps=fit_min_steps)
    report.pop("power_law", None)
    if len(points) >= 3:
        power = fit_power_law(steps, errors)
        report["power_law"] = {**curve_spec(power.curve), "fitted_steps": steps,
                               "relative_residuals": list(power.relative_residuals),
                               "max_relative_residual": power.max_relative_residual,
                               "rms_relative_residual": power.rms_relative_residual}
    report["table"] = curve_spec(fit_convex_table(steps, errors))
    report["spec"] = ({k: report["power_law"][k] for k in ("eps_inf", "a", "b")} if form == "power"
                      else report["table"])


def write_report(report: dict[str, Any], out: Path, grids: Sequence[np.ndarray] | None = None) -> None:
    """``spec.json``, ``report.json``, ``report.md``, ``curve.png`` and, given the sample grids, ``samples.png``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / "spec.json", json.dumps(report["spec"], indent=2) + "\n")
    write_atomic(out / "report.json", json.dumps(report, indent=2, default=str) + "\n")
    write_atomic(out / "report.md", markdown_report(report))
    plot_curve(report, out / "curve.png")
    if grids is not None:
        plot_samples([p["steps"] for p in report["points"]], grids, out / "samples.png")


def refit(out: Path, form: str, fit_min_steps: int) -> dict[str, Any]:
    """Fit a finished run's points again (another form or ``fit_min_steps``) and rewrite its files but
    ``samples.png``; nothing is sampled."""
    path = Path(out) / "report.json"
    if not path.is_file():
        raise ValueError(f"refit = {str(out)!r} is invalid: accepted a folder with a calibration's report.json")
    report = json.loads(path.read_text())
    fit_report(report, form, fit_min_steps)
    write_report(report, out)
    return report


def markdown_report(report: dict[str, Any]) -> str:
    """The report's tables (points with intervals and the fit's residuals, timings, settings) as Markdown."""
    measure, sampler = report["measure"], report["sampler"]
    lines = ["# Error-curve calibration", "",
             f"Sampler: {sampler['pipeline_class']} with {sampler['scheduler_class']}, eta {sampler['eta']}, "
             f"spacing '{sampler['spacing']}', clip_sample {sampler['clip_sample']}. "
             f"{measure['n_samples']} samples per step count against {report['n_reference']} reference images, "
             f"seed {measure['seed']}; {int(100 * measure['confidence'])}% basic bootstrap intervals of the population "
             f"distance ({measure['n_bootstrap']} resamples of both sets; the plug-in error, which is fitted, is "
             "biased upward, so at few samples the interval lies below it).", ""]
    power = report.get("power_law")
    if power:
        lines += [f"Fit on s >= {measure['fit_min_steps']}: eps(s) = {power['eps_inf']:.4g} + {power['a']:.4g} "
                  f"s^-{power['b']:.4g} (largest relative residual {100 * power['max_relative_residual']:.1f}%, "
                  f"rms {100 * power['rms_relative_residual']:.1f}%).", ""]
    lines += ["| steps | error | interval | power-law fit | residual | convex table | sampling wall (s) |",
              "|---:|---:|---|---:|---:|---:|---:|"]
    residuals = dict(zip(power["fitted_steps"], power["relative_residuals"], strict=True)) if power else {}
    table = dict(zip(report["table"]["steps"], report["table"]["errors"], strict=True))
    for row in report["points"]:
        fit = f"{power['eps_inf'] + power['a'] * row['steps'] ** -power['b']:.4g}" if power else "-"
        residual = f"{100 * residuals[row['steps']]:+.1f}%" if row["steps"] in residuals else "not fitted"
        tabulated = f"{table[row['steps']]:.4g}" if row["steps"] in table else "-"
        lines.append(f"| {row['steps']} | {row['error']:.4g} | [{row['low']:.4g}, {row['high']:.4g}] | {fit} | "
                     f"{residual} | {tabulated} | {row['sample_wall_s']:.2f} |")
    if report["timings"]:
        lines += ["", "| batch | ms per step | ms per image per step | fixed overhead (s) |", "|---:|---:|---:|---:|"]
        for t in report["timings"]:
            lines.append(f"| {t['batch_size']} | {1e3 * t['seconds_per_step']:.3f} | {t['ms_per_image_step']:.4f} | "
                         f"{t['overhead_s']:.4f} |")
    lines += ["", f"Spec (`edge_error_curve` / `device_error_curve`, form '{measure['form']}'):", "",
              f"    {json.dumps(report['spec'])}", "", f"Wall time: {report['wall_s']:.1f} s.", ""]
    return "\n".join(lines)


def plot_curve(report: dict[str, Any], path: Path) -> None:
    plt = pyplot()

    points = report["points"]
    s = np.array([p["steps"] for p in points], dtype=float)
    y = np.array([p["error"] for p in points])
    low, high = np.array([p["low"] for p in points]), np.array([p["high"] for p in points])
    fig, (ax, res_ax) = plt.subplots(1, 2, figsize=(11, 4))
    ax.errorbar(s, y, yerr=[np.maximum(y - low, 0), np.maximum(high - y, 0)], fmt="o", capsize=3, label="measured")
    grid = np.geomspace(s.min(), s.max(), 200)
    power = report.get("power_law")
    if power:
        ax.plot(grid, power["eps_inf"] + power["a"] * grid ** -power["b"], "-",
                label=f"fit (s >= {report['measure']['fit_min_steps']}) {power['eps_inf']:.3g} + {power['a']:.3g} "
                      f"s^-{power['b']:.3g}")
        res_ax.plot(power["fitted_steps"], 100 * np.array(power["relative_residuals"]), "o-", label="power law")
    ax.plot(report["table"]["steps"], report["table"]["errors"], "--", lw=1, label="convex table")
    ax.set_yscale("log")
    ax.set_xlabel("reverse steps s")
    ax.set_ylabel("Frechet distance to the reference")
    ax.legend()
    ax.grid(alpha=0.3, which="both")
    res_ax.axhline(0, color="k", lw=0.8)
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    for axis in (ax, res_ax):
        axis.set_xscale("log")
        axis.set_xticks(s)
        axis.xaxis.set_major_formatter(ScalarFormatter())
        axis.xaxis.set_minor_formatter(NullFormatter())
    res_ax.set_xlabel("reverse steps s")
    res_ax.set_ylabel("fit / measured - 1 (%)")
    res_ax.grid(alpha=0.3)
    sampler = report["sampler"]
    fig.suptitle(f"{sampler['scheduler_class']}, eta {sampler['eta']}, spacing {sampler['spacing']}, "
                 f"clip_sample {sampler['clip_sample']}; {report['measure']['n_samples']} samples per point")
    fig.tight_layout()
    save_figure(fig, path, dpi=110, bbox_inches=None)


def plot_samples(steps: Sequence[float], grids: Sequence[np.ndarray], path: Path) -> None:
    """One row of samples per step count (the same initial noise in every row)."""
    plt = pyplot()

    columns = max(len(g) for g in grids)
    fig, axes = plt.subplots(len(grids), columns, figsize=(0.8 * columns + 0.8, 0.8 * len(grids)), squeeze=False)
    for row, (s, images) in enumerate(zip(steps, grids, strict=True)):
        for col in range(columns):
            ax = axes[row, col]
            ax.set_xticks([])
            ax.set_yticks([])
            if col < len(images):
                image = np.transpose((images[col] + 1.0) / 2.0, (1, 2, 0))
                ax.imshow(image[..., 0] if image.shape[-1] == 1 else np.clip(image, 0, 1), cmap="gray", vmin=0,
                          vmax=1)
            if col == 0:
                ax.set_ylabel(f"s={s:g}", rotation=0, ha="right", va="center")
    fig.tight_layout()
    save_figure(fig, path, dpi=100, bbox_inches=None)
