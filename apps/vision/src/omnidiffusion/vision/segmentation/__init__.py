"""Segmentation by diffusion: SegDiff / MedSegDiff-style mask diffusion and DDPM-Seg pixel classifiers.

Modules (imported on use, so `omnidiffusion-vision` stays light to start):
- `models`: `SegDiff` (mask denoiser with image-encoder features added after the first conv), `SegUNet` (baseline)
- `training`: `train` (the three tasks), `train_segdiff`, `train_seg_unet` (core `fit`)
- `ddpm_seg`: `train_ddpm_seg`, `compare_with_raw_pixels`
- `features`, `pixel_classifier`, `memory`: DDPM-Seg features streamed per image, the MLP ensemble, peak tensor bytes
- `pipeline`: `Segmenter.from_pretrained(dir).segment(image, n_samples)` -> (mask, uncertainty)
- `metrics`: Dice / IoU / mIoU; `baselines`: Otsu; `evaluation`: `evaluate_segmentation`
- `data`: bundled synthetic sets with exact masks, image/mask folder pairs; `cli`: the command-line wiring
"""
