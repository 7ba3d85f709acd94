"""Sampling a diffusers pipeline from a local folder with explicit sampler settings, and timing it.

:func:`load_sampler` opens a pipeline folder (``model_index.json``; ``local_files_only``, so nothing is
downloaded) and swaps its scheduler for the one asked, built from the pipeline's own scheduler config
with the settings of :class:`SamplerSettings` overriding it.  Two kinds of pipeline are sampled:

* unconditional ones whose ``unet`` is a ``UNet2DModel`` (``DDPMPipeline``, ``DDIMPipeline``, the shipped
  digits model): this module runs the reverse loop itself (``scale_model_input``, the U-Net, ``step``
  with ``eta`` and the generator where the scheduler takes them), so every scheduler works;
* text-to-image pipelines (a ``__call__`` with a ``prompt``, e.g. Stable Diffusion): the pipeline's own
  ``__call__`` with ``prompt``, ``num_inference_steps``, ``eta``, a generator and ``output_type="np"``.

Images come back in batches of ``float32 (b, channels, height, width)`` in ``[-1, 1]``.  torch and diffusers are
imported when a sampler is loaded, not when this module is.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

#: Short names of schedulers (any other diffusers scheduler class name is accepted as well).
SCHEDULERS = {"ddim": "DDIMScheduler", "ddpm": "DDPMScheduler", "dpm": "DPMSolverMultistepScheduler",
              "euler": "EulerDiscreteScheduler", "pndm": "PNDMScheduler"}
SPACINGS = ("trailing", "leading", "linspace")


@dataclass(frozen=True)
class SamplerSettings:
    """The sampler, stated explicitly and recorded in the report.

    ``clip_sample`` defaults to False: with diffusers' default (True) every step clips the predicted
    clean image to ``[-1, 1]``, which adds error at every step, so quality gets *worse* beyond about
    50 steps.  ``spacing`` defaults to ``"trailing"``: ``"leading"`` never visits the last training
    timestep, so very few steps (``s = 2``) start from a partly denoised level and come out far off.
    """

    scheduler: str = "ddim"
    eta: float = 0.0  # DDIM's stochasticity (0: deterministic); only for schedulers whose step takes it
    spacing: str = "trailing"  # the scheduler config's timestep_spacing
    clip_sample: bool = False
    prompt: str | None = None  # text-to-image pipelines only

    def __post_init__(self) -> None:
        if self.spacing not in SPACINGS:
            raise ValueError(f"spacing = {self.spacing!r} is invalid: accepted one of {SPACINGS}")
        if not 0.0 <= self.eta <= 1.0:
            raise ValueError(f"eta = {self.eta!r} is invalid: accepted a number in [0, 1]")

    @property
    def scheduler_class(self) -> str:
        return SCHEDULERS.get(self.scheduler, self.scheduler)


class Sampler:
    """A loaded pipeline with its scheduler set; :meth:`sample` draws images, :meth:`time_per_step` times it."""

    def __init__(self, path: Path, settings: SamplerSettings, threads: int | None = None, device: str = "cpu",
                 dtype: str = "float32") -> None:
        path = Path(path)
        if not (path / "model_index.json").is_file():
            raise ValueError(f"pipeline = {str(path)!r} is invalid: accepted a local diffusers pipeline folder "
                             "(with model_index.json, e.g. written by save_pretrained); nothing is downloaded")
        import diffusers
        import torch

        if threads is not None:
            torch.set_num_threads(threads)
        self.torch = torch
        self.settings = settings
        if dtype not in ("float32", "float16", "bfloat16"):
            raise ValueError(f"dtype = {dtype!r} is invalid: accepted 'float32', 'float16' or 'bfloat16'")
        self.device, self.dtype = torch.device(device), getattr(torch, dtype)
        self.pipeline = diffusers.DiffusionPipeline.from_pretrained(
            str(path), local_files_only=True, dtype=self.dtype, low_cpu_mem_usage=False).to(self.device)
        self.pipeline.set_progress_bar_config(disable=True)
        scheduler_class = getattr(diffusers, settings.scheduler_class, None)
        if scheduler_class is None or not hasattr(scheduler_class, "from_config"):
            raise ValueError(f"scheduler = {settings.scheduler!r} is invalid: accepted one of {sorted(SCHEDULERS)} "
                             "or a diffusers scheduler class name")
        base = dict(self.pipeline.scheduler.config)
        overrides: dict[str, Any] = {"timestep_spacing": settings.spacing}
        if "clip_sample" in scheduler_class.from_config(base).config:
            overrides["clip_sample"] = settings.clip_sample
        elif settings.clip_sample:
            raise ValueError(f"clip_sample = True is invalid for {settings.scheduler_class}: it has no clip_sample")
        self.scheduler = scheduler_class.from_config(base, **overrides)
        self.pipeline.scheduler = self.scheduler
        self.max_steps = int(self.scheduler.config.num_train_timesteps)
        self.text_to_image = "prompt" in inspect.signature(self.pipeline.__call__).parameters
        if self.text_to_image and settings.prompt is None:
            raise ValueError(f"prompt = None is invalid for {type(self.pipeline).__name__}: this pipeline takes a "
                             "text prompt; pass one")
        unet = getattr(self.pipeline, "unet", None)
        if not self.text_to_image and type(unet).__name__ != "UNet2DModel":
            raise ValueError(f"pipeline = {str(path)!r} is invalid: an unconditional pipeline needs a UNet2DModel "
                             f"as 'unet', got {type(unet).__name__}")
        self._step_takes = set(inspect.signature(self.scheduler.step).parameters)

    def recorded(self) -> dict[str, Any]:
        """The settings and the scheduler's full config, for the report."""
        return {**asdict(self.settings), "device": str(self.device), "dtype": str(self.dtype).removeprefix("torch."),
                "scheduler_class": type(self.scheduler).__name__,
                "pipeline_class": type(self.pipeline).__name__, "scheduler_config": dict(self.scheduler.config)}

    def check_steps(self, steps: Sequence[int], name: str = "steps") -> list[int]:
        """The step counts as ints, or a ValueError naming ``name`` and the scheduler's range."""
        values = list(steps)
        if not values:
            raise ValueError(f"{name} = [] is invalid: accepted a non-empty list of integers in [1, {self.max_steps}]")
        bad = [s for s in values if int(s) != s or not 1 <= s <= self.max_steps]
        if bad:
            raise ValueError(f"{name} = {values} is invalid: {bad} outside the scheduler's range; accepted integers "
                             f"in [1, {self.max_steps}] (its num_train_timesteps)")
        return [int(s) for s in values]

    def batches(self, n: int, steps: int, seed: int, batch_size: int) -> Iterator[np.ndarray]:
        """``n`` images with ``steps`` reverse steps, in batches ``(b, c, h, w)`` of float32 in ``[-1, 1]``.

        Batch ``i`` draws from a torch generator seeded with word ``i`` of ``SeedSequence(seed)``, so the same
        ``(seed, batch_size)`` gives the same initial noise at every step count."""
        seeds = np.random.SeedSequence(seed).generate_state(-(-n // batch_size))
        for index, start in enumerate(range(0, n, batch_size)):
            generator = self.torch.Generator().manual_seed(int(seeds[index]))
            yield self._batch(min(batch_size, n - start), steps, generator)

    def sample(self, n: int, steps: int, seed: int, batch_size: int) -> np.ndarray:
        """All of :meth:`batches` in one array."""
        return np.concatenate(list(self.batches(n, steps, seed, batch_size)))

    def _batch(self, n: int, steps: int, generator: Any) -> np.ndarray:
        torch = self.torch
        if self.text_to_image:
            kwargs = {"eta": self.settings.eta} if "eta" in self._step_takes else {}
            images = self.pipeline(prompt=[self.settings.prompt] * n, num_inference_steps=steps, generator=generator,
                                   output_type="np", **kwargs).images
            return np.transpose(np.asarray(images, dtype=np.float32), (0, 3, 1, 2)) * 2.0 - 1.0
        unet, scheduler = self.pipeline.unet, self.scheduler
        size = unet.config.sample_size
        size = (size, size) if isinstance(size, int) else tuple(size)
        step_kwargs: dict[str, Any] = {}
        if "eta" in self._step_takes:
            step_kwargs["eta"] = self.settings.eta
        if "generator" in self._step_takes:
            step_kwargs["generator"] = generator
        with torch.inference_mode():
            scheduler.set_timesteps(steps)
            x = torch.randn((n, unet.config.in_channels, *size), generator=generator).to(self.device, self.dtype)
            x = x * scheduler.init_noise_sigma
            for t in scheduler.timesteps:
                noise = unet(scheduler.scale_model_input(x, t), t).sample
                x = scheduler.step(noise, t, x, **step_kwargs).prev_sample
        return x.clamp(-1.0, 1.0).cpu().float().numpy()

    def time_per_step(self, batch_size: int, steps: tuple[int, int], repeats: int, seed: int) -> dict[str, float]:
        """Seconds per reverse step at ``batch_size``: the slope of the fastest of ``repeats`` wall times
        between the two step counts (so fixed costs, e.g. a VAE decode, fall into ``overhead_s``)."""
        low, high = steps
        if not 1 <= low < high:
            raise ValueError(f"timing steps = {steps} is invalid: accepted two integers 1 <= low < high")
        self.sample(min(batch_size, 4), low, seed, batch_size)  # warm-up
        walls = {}
        for s in (low, high):
            runs = []
            for _ in range(repeats):
                start = time.perf_counter()
                self.sample(batch_size, s, seed, batch_size)
                runs.append(time.perf_counter() - start)
            walls[s] = min(runs)
        per_step = (walls[high] - walls[low]) / (high - low)
        return {"batch_size": batch_size, "seconds_per_step": per_step,
                "ms_per_image_step": 1e3 * per_step / batch_size,
                "overhead_s": walls[low] - low * per_step, "wall_low_s": walls[low], "wall_high_s": walls[high],
                "steps_low": low, "steps_high": high, "repeats": repeats}
