"""Segmentation by diffusion: SegDiff / MedSegDiff-style mask diffusion and DDPM-Seg pixel classifiers."""
