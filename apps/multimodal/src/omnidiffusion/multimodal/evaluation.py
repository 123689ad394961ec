"""Score a TextToImage model on prompts with known attributes: faithfulness, Frechet distance, diversity.

`evaluate(pipe, classifier, images, captions, ...)` generates `n_per_prompt` images for each of the distinct
captions, reads them with the attribute classifier (metrics.py), and compares classifier features of the
generations with those of the real images. Baselines, scored the same way: the unguided model (w = 0, the
unconditional network), the conditional model without guidance (w = 1), and the real images themselves
(faithfulness = classifier accuracy, the ceiling; Frechet distance between two halves of the real set, the
floor).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from omnidiffusion.core.checks import positive_int
from omnidiffusion.core.io import load_pretrained, save_pretrained

from .data import labels_of, parse_caption
from .metrics import AttributeClassifier, diversity, faithfulness, frechet_distance, train_classifier


def get_classifier(directory: str | Path | None, steps: int = 1200, seed: int = 0) -> tuple[AttributeClassifier, dict]:
    """The attribute classifier saved in `directory`/classifier, else trained now (and saved there if given)."""
    if directory is not None and (Path(directory) / "classifier" / "config.json").is_file():
        model = load_pretrained(Path(directory) / "classifier", cls=AttributeClassifier)
        return model, {"source": str(Path(directory) / "classifier")}
    t0 = time.perf_counter()
    steps = positive_int(steps, "classifier_steps")
    model, acc = train_classifier(n=min(6000, max(256, 32 * steps)), steps=steps, seed=seed)
    info = {"source": "trained", "steps": steps, "heldout_all_correct": acc, "wall_s": time.perf_counter() - t0}
    if directory is not None:
        save_pretrained(model, Path(directory) / "classifier", metadata=info)
    return model, info


def prompt_labels(captions: list[str]) -> Tensor:
    """(N, 7) labels of captions in the bundled grammar (ValueError names a caption outside it)."""
    return torch.tensor([labels_of(parse_caption(c)) for c in captions], dtype=torch.int64)


def score_images(classifier: AttributeClassifier, images: Tensor, captions: list[str], reference: Tensor,
                 groups: Tensor | None = None) -> dict[str, float]:
    """Faithfulness of `images` to `captions`, Frechet distance of their features to `reference` images', and
    (when `groups` gives the prompt of each image) the within-prompt diversity."""
    out = faithfulness(classifier.predict(images), prompt_labels(captions))
    feats = classifier.embed(images)
    out["frechet"] = frechet_distance(feats, classifier.embed(reference))
    if groups is not None:
        out["diversity"] = diversity(feats, groups)
    return out


def evaluate(
    pipe,
    classifier: AttributeClassifier,
    images: Tensor,
    captions: list[str],
    *,
    n_prompts: int = 64,
    n_per_prompt: int | None = None,
    guidance_scale: float | None = None,
    method: str | None = None,
    steps: int | None = None,
    seed: int | None = None,
    baselines: bool = True,
) -> dict[str, Any]:
    """{"model": metrics, "baselines": {name: metrics}, "protocol": {...}} for the first `n_prompts` distinct
    captions; the Frechet reference is all of `images`. None = the pipeline's `[sampler]` value (n_per_prompt:
    sampler.samples)."""
    if images.ndim != 4 or images.shape[0] != len(captions):
        raise ValueError(f"images, captions: expected (N, 3, 32, 32) and N captions, got {tuple(images.shape)} and "
                         f"{len(captions)}")
    prompt_labels(captions)  # refuse captions outside the grammar before any sampling
    prompts = list(dict.fromkeys(captions))[: positive_int(n_prompts, "n_prompts")]
    s = pipe.config.sampler
    n_per_prompt = s.samples if n_per_prompt is None else positive_int(n_per_prompt, "n_per_prompt")
    seed = s.seed if seed is None else seed
    expanded = [p for p in prompts for _ in range(n_per_prompt)]
    groups = torch.arange(len(prompts)).repeat_interleave(n_per_prompt)
    w = s.guidance_scale if guidance_scale is None else guidance_scale
    protocol = {
        "prompts": len(prompts), "n_per_prompt": n_per_prompt, "reference_images": int(images.shape[0]),
        "method": method or s.method, "steps": steps or s.steps, "guidance_scale": w, "seed": seed,
        "space": pipe.config.unet.space,
    }

    def run(scale: float) -> dict[str, float]:
        t0 = time.perf_counter()
        x = pipe.generate_tensor(prompts, n_per_prompt=n_per_prompt, guidance_scale=scale, method=method,
                                 steps=steps, seed=seed)
        wall = time.perf_counter() - t0
        out = score_images(classifier, x, expanded, images, groups)
        out["sampling_s_per_image"] = wall / x.shape[0]
        return out

    report: dict[str, Any] = {"model": run(w), "baselines": {}, "protocol": protocol}
    if baselines:
        for name, scale in (("unguided_w0", 0.0), ("conditional_w1", 1.0)):
            if scale != w:
                report["baselines"][name] = run(scale)
        half = images.shape[0] // 2
        if half >= 2:
            real = faithfulness(classifier.predict(images), prompt_labels(captions))
            real["frechet"] = frechet_distance(classifier.embed(images[:half]), classifier.embed(images[half:]))
            report["baselines"]["real_images"] = real
    return report
