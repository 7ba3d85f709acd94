"""The shipped calibration model: a small DDPM on scikit-learn's digits and its feature extractor.

The data are ``sklearn.datasets.load_digits`` (1797 grey 8x8 images, bundled with scikit-learn, so
nothing is downloaded), scaled from ``0 .. 16`` to ``[-1, 1]``.  :func:`train` fits

* a ``diffusers.UNet2DModel`` (about 0.7 M parameters, :data:`UNET_CONFIG`) with the DDPM loss
  (predict the noise, ``DDPMScheduler`` with :data:`TRAIN_TIMESTEPS` steps and DDPM's linear betas
  1e-4 ... 0.02, ``clip_sample=False``), weights kept as an exponential moving average, and
* a small CNN classifier of the ten digits (:class:`DigitsClassifier`) whose penultimate layer
  (:data:`FEATURE_DIM` features) is the feature space of the Frechet distance,

and saves both into a diffusers pipeline folder (``model_index.json``, ``unet/``, ``scheduler/``) plus
``classifier.safetensors``.  The folder shipped as package data (:func:`shipped_model_path`) was made by

    aigc-edge calibrate --train aigc_edge_env/calibrate/digits_model

(the run's numbers are in ``docs/results.md``).  Not the cosine schedule: its last timestep has
``alpha_bar = 2.4e-9``, so without clipping DDIM's first estimate of the clean image from pure noise
(trailing spacing starts there) multiplies the noise prediction's error by ``1/sqrt(alpha_bar) = 2e4``
and every sample saturates (a first training run did); the linear schedule's ``alpha_bar = 4e-5`` gives
157.  torch and diffusers are imported here at module level: import this module only through
:mod:`aigc_edge_env.calibrate`'s functions, never from the core.
"""

from __future__ import annotations

import copy
import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from torch import nn

from aigc_edge_env.calibrate.measure import progress
from aigc_edge_env.files import write_atomic

#: The diffusers ``UNet2DModel`` of the shipped model (8x8 grey images).
UNET_CONFIG: dict[str, Any] = {
    "sample_size": 8,
    "in_channels": 1,
    "out_channels": 1,
    "layers_per_block": 1,
    "block_out_channels": (32, 64),
    "down_block_types": ("DownBlock2D", "AttnDownBlock2D"),
    "up_block_types": ("AttnUpBlock2D", "UpBlock2D"),
    "norm_num_groups": 8,
}
#: Training steps of the forward process (the scheduler's ``num_train_timesteps``).
TRAIN_TIMESTEPS = 1000
#: Dimension of the classifier's penultimate layer (the Frechet distance's feature space).
FEATURE_DIM = 32
CLASSIFIER_FILE = "classifier.safetensors"
ModuleT = TypeVar("ModuleT")


def shipped_model_path() -> Path:
    """The folder of the shipped digits model (package data of ``aigc_edge_env.calibrate``)."""
    return Path(__file__).resolve().parent / "digits_model"


def load_images() -> tuple[np.ndarray, np.ndarray]:
    """The 1797 digits as ``float32 (n, 1, 8, 8)`` in ``[-1, 1]`` and their labels ``(n,)``."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = (digits.images.astype(np.float32) / 8.0 - 1.0)[:, None, :, :]
    return images, digits.target.astype(np.int64)


class DigitsClassifier(nn.Module):
    """Two 3x3 convolutions, a :data:`FEATURE_DIM`-unit layer (the features) and a 10-way output."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.SiLU(), nn.Conv2d(16, 32, 3, padding=1), nn.SiLU(), nn.AvgPool2d(2),
            nn.Flatten(), nn.Linear(32 * 4 * 4, FEATURE_DIM), nn.SiLU(),
        )
        self.head = nn.Linear(FEATURE_DIM, 10)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.body(images)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(images))


def load_classifier(path: Path) -> DigitsClassifier:
    from safetensors.torch import load_file

    model = DigitsClassifier()
    model.load_state_dict(load_file(str(Path(path) / CLASSIFIER_FILE)))
    return model.eval()


def feature_extractor(path: Path) -> Callable[[np.ndarray], np.ndarray]:
    """Images ``(n, 1, 8, 8)`` in ``[-1, 1]`` -> penultimate features ``(n, FEATURE_DIM)`` of the saved classifier."""
    model = load_classifier(path)

    def extract(images: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model.features(torch.as_tensor(images, dtype=torch.float32)).numpy().astype(np.float64)

    return extract


def _seeded_init(seed: int, build: Callable[[], ModuleT]) -> ModuleT:
    with torch.random.fork_rng(devices=[]):  # the global generator is restored afterwards
        torch.manual_seed(seed)
        return build()


def train_classifier(images: np.ndarray, labels: np.ndarray, seed: int, epochs: int = 40,
                     log: Callable[[str], None] = progress) -> tuple[DigitsClassifier, float]:
    """Fit :class:`DigitsClassifier` on 80% of the digits; returns it and its accuracy on the other 20%."""
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(images), generator=generator)
    split = int(0.8 * len(images))
    x, y = torch.as_tensor(images), torch.as_tensor(labels)
    train_idx, test_idx = order[:split], order[split:]
    model = _seeded_init(seed, DigitsClassifier)
    optimiser = torch.optim.Adam(model.parameters(), lr=2e-3)
    for epoch in range(epochs):
        for batch in torch.randperm(split, generator=generator).split(64):
            idx = train_idx[batch]
            loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        if (epoch + 1) % 10 == 0:
            log(f"classifier epoch {epoch + 1}/{epochs}: loss {loss.item():.4f}")
    model.eval()
    with torch.inference_mode():
        accuracy = float((model(x[test_idx]).argmax(1) == y[test_idx]).float().mean())
    return model, accuracy


def train(out: Path, iterations: int = 1500, batch_size: int = 128, seed: int = 0, threads: int = 1,
          log: Callable[[str], None] = progress) -> dict[str, Any]:
    """Train the digits U-Net and classifier and save them as a pipeline folder at ``out``; returns a summary."""
    from diffusers import DDIMPipeline, DDPMScheduler, UNet2DModel
    from safetensors.torch import save_file

    if iterations < 1:
        raise ValueError(f"train iterations = {iterations} is invalid: accepted an integer >= 1")
    torch.set_num_threads(threads)
    start = time.perf_counter()
    images, labels = load_images()
    classifier, accuracy = train_classifier(images, labels, seed, log=log)
    log(f"classifier: held-out accuracy {accuracy:.3f}")
    scheduler: Any = DDPMScheduler(num_train_timesteps=TRAIN_TIMESTEPS, beta_schedule="linear",
                              clip_sample=False)
    unet: Any = _seeded_init(seed, lambda: UNet2DModel(**UNET_CONFIG))
    ema = copy.deepcopy(unet).requires_grad_(False)
    optimiser = torch.optim.AdamW(unet.parameters(), lr=1e-3, weight_decay=0.0)
    warmup = max(1, iterations // 20)  # linear warm-up, then cosine decay to 0
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda i: min(1.0, (i + 1) / warmup) * 0.5 * (1.0 + math.cos(math.pi * i / iterations)))
    generator = torch.Generator().manual_seed(seed + 1)
    data = torch.as_tensor(images)
    for iteration in range(iterations):
        x0 = data[torch.randint(0, len(data), (batch_size,), generator=generator)]
        noise = torch.randn(x0.shape, generator=generator)
        t = torch.randint(0, TRAIN_TIMESTEPS, (batch_size,), generator=generator)
        loss = nn.functional.mse_loss(unet(scheduler.add_noise(x0, noise, t), t).sample, noise)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
        decay = min(0.999, (1 + iteration) / (10 + iteration))
        with torch.no_grad():
            for target, source in zip(ema.parameters(), unet.parameters(), strict=True):
                target.lerp_(source, 1.0 - decay)
        if (iteration + 1) % 200 == 0 or iteration + 1 == iterations:
            log(f"unet iteration {iteration + 1}/{iterations}: loss {loss.item():.4f} "
                f"({time.perf_counter() - start:.0f} s)")
    out = Path(out)
    # float16 on disk keeps the shipped weights under 2 MB; the sampler loads them as float32
    pipeline: Any = DDIMPipeline(unet=ema.eval().half(), scheduler=scheduler)
    pipeline.save_pretrained(str(out))
    save_file(classifier.state_dict(), str(out / CLASSIFIER_FILE))
    summary = {"iterations": iterations, "batch_size": batch_size, "seed": seed, "threads": threads,
               "unet_parameters": sum(p.numel() for p in unet.parameters()), "final_loss": float(loss.item()),
               "classifier_accuracy": accuracy, "wall_s": time.perf_counter() - start}
    write_atomic(out / "training.json", json.dumps(summary, indent=2) + "\n")
    log(f"saved the pipeline to {out} ({summary['wall_s']:.0f} s)")
    return summary
