"""The one log-mel function and the metrics, against hand computations in numpy and closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from omnidiffusion.audio import mel as mel_module
from omnidiffusion.audio.mel import MelConfig, check_mel, log_mel, num_frames
from omnidiffusion.audio.metrics import log_mel_distance, mr_stft_distance


def _htk_filterbank(cfg: MelConfig) -> np.ndarray:
    """Triangular HTK mel filters (n_freqs, n_mels), peaks at mel-spaced centres, no area normalisation."""

    def hz2mel(f):
        return 2595.0 * np.log10(1.0 + f / 700.0)

    def mel2hz(m):
        return 700.0 * (10 ** (m / 2595.0) - 1.0)

    freqs = np.linspace(0, cfg.sample_rate // 2, cfg.n_fft // 2 + 1)
    edges = mel2hz(np.linspace(hz2mel(cfg.f_min), hz2mel(cfg.top), cfg.n_mels + 2))
    fb = np.zeros((freqs.size, cfg.n_mels))
    for m in range(cfg.n_mels):
        lo, c, hi = edges[m], edges[m + 1], edges[m + 2]
        rising = (freqs - lo) / (c - lo)
        falling = (hi - freqs) / (hi - c)
        fb[:, m] = np.clip(np.minimum(rising, falling), 0, None)
    return fb


def _hand_log_mel(x: np.ndarray, cfg: MelConfig) -> np.ndarray:
    """Centre-padded (reflect) frames, periodic Hann window zero-padded to n_fft, |rfft|, mel filters, log."""
    pad = cfg.n_fft // 2
    xp = np.pad(x, pad, mode="reflect")
    n = np.arange(cfg.win_length)
    win = 0.5 - 0.5 * np.cos(2 * np.pi * n / cfg.win_length)
    left = (cfg.n_fft - cfg.win_length) // 2
    window = np.zeros(cfg.n_fft)
    window[left : left + cfg.win_length] = win
    frames = 1 + (xp.size - cfg.n_fft) // cfg.hop_length
    spec = np.stack(
        [np.abs(np.fft.rfft(xp[i * cfg.hop_length : i * cfg.hop_length + cfg.n_fft] * window)) for i in range(frames)],
        axis=1,
    )  # (n_freqs, frames)
    return np.log(np.maximum(_htk_filterbank(cfg).T @ spec, 1e-5))


@pytest.mark.parametrize("cfg", [MelConfig(), MelConfig.paper()], ids=["default", "paper"])
def test_log_mel_matches_hand_computation_on_a_sine(cfg):
    sr = cfg.sample_rate
    t = np.arange(int(0.3 * sr)) / sr
    x = 0.5 * np.sin(2 * np.pi * 440.0 * t)
    ours = log_mel(torch.tensor(x, dtype=torch.float32), cfg)[0].double().numpy()
    hand = _hand_log_mel(x, cfg)
    assert ours.shape == hand.shape == (cfg.n_mels, num_frames(x.size, cfg))
    loud = hand > math.log(1e-2)  # compare where float32 rounding is negligible against the value
    assert np.abs(ours[loud] - hand[loud]).max() < 1e-3
    # The band holding 440 Hz carries the most energy in the middle frame.
    centre = ours[:, ours.shape[1] // 2]
    assert abs(int(centre.argmax()) - int(hand[:, hand.shape[1] // 2].argmax())) == 0


def test_torch_fallback_equals_torchaudio():
    x = torch.randn(2, 5000)
    for cfg in (MelConfig(), MelConfig.paper()):
        ref = mel_module._transform(cfg)(x)
        alt = mel_module._TorchMel(cfg)(x)
        torch.testing.assert_close(alt, ref, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("n", [256 * 7, 256 * 7 + 1, 255, 100, 3])
def test_frame_count_for_any_length(n):
    assert log_mel(torch.randn(n) * 0.1).shape == (1, 80, n // 256 + 1)


def test_mel_input_errors():
    with pytest.raises(ValueError, match="mono"):
        log_mel(torch.randn(1, 2, 1000))
    with pytest.raises(ValueError, match="NaN"):
        log_mel(torch.full((1000,), float("nan")))
    with pytest.raises(ValueError, match="80 mel bands"):
        check_mel(torch.zeros(1, 64, 10), MelConfig())
    with pytest.raises(ValueError, match="f_max"):
        MelConfig(sample_rate=16000, f_max=12000.0)


def test_log_mel_distance_closed_forms():
    x = 0.3 * torch.randn(1, 22050, generator=torch.Generator().manual_seed(0))
    assert log_mel_distance(x, x).item() == 0.0
    # The mel is linear in amplitude: half amplitude shifts every unclamped log-mel value by log 2.
    assert log_mel_distance(x, 0.5 * x).item() == pytest.approx(math.log(2.0), abs=1e-4)
    # Trimmed to the shorter signal: padding the estimate changes nothing.
    padded = torch.cat([0.5 * x, torch.ones(1, 999)], dim=1)
    assert log_mel_distance(x, padded).item() == pytest.approx(math.log(2.0), abs=1e-4)
    # Silence sits at the 1e-5 floor: distance = mean(log mel_ref) - log(1e-5), computed independently.
    from torchaudio.transforms import MelSpectrogram

    m = MelSpectrogram(
        sample_rate=22050, n_fft=1024, win_length=1024, hop_length=256, n_mels=80, f_min=0, f_max=8000, power=1
    )(x)
    expected = (torch.log(m.clamp(min=1e-5)) - math.log(1e-5)).abs().mean().item()
    assert log_mel_distance(x, torch.zeros_like(x)).item() == pytest.approx(expected, rel=1e-5)


def _np_stft_mag(x: np.ndarray, n_fft: int, hop: int, win: int) -> np.ndarray:
    xp = np.pad(x, n_fft // 2, mode="reflect")
    w = np.zeros(n_fft)
    left = (n_fft - win) // 2
    w[left : left + win] = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(win) / win)
    frames = 1 + (xp.size - n_fft) // hop
    return np.maximum(np.stack([np.abs(np.fft.rfft(xp[i * hop : i * hop + n_fft] * w)) for i in range(frames)]), 1e-5)


def test_mr_stft_matches_numpy():
    g = torch.Generator().manual_seed(1)
    ref, est = 0.3 * torch.randn(1, 8000, generator=g), 0.3 * torch.randn(1, 8000, generator=g)
    total = 0.0
    for n_fft, hop, win in ((1024, 120, 600), (2048, 240, 1200), (512, 50, 240)):
        a, b = (
            _np_stft_mag(ref[0].double().numpy(), n_fft, hop, win),
            _np_stft_mag(est[0].double().numpy(), n_fft, hop, win),
        )
        total += np.linalg.norm(a - b) / np.linalg.norm(a) + np.abs(np.log(a) - np.log(b)).mean()
    assert mr_stft_distance(ref, est).item() == pytest.approx(total / 3, rel=1e-3)
    assert mr_stft_distance(ref, ref).item() == 0.0
