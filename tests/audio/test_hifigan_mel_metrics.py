"""The 'hifigan' mel preset against a NumPy oracle of HiFi-GAN's mel_spectrogram, and WaveGrad's objective
metrics (LS-MSE, MCD, FFE) against closed forms: a gain change, a known cepstral difference, known tones."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.fft
import torch
from torchaudio.functional import melscale_fbanks

from omnidiffusion.audio.mel import MelConfig, log_mel, num_frames, slaney_filterbank
from omnidiffusion.audio.metrics import MCD_SCALE, dct_ii, ls_mse, mcd_from_log_mels, mel_cepstral_distortion
from omnidiffusion.audio.pipeline import WaveGrad
from omnidiffusion.audio.pitch import f0_frame_error, track_f0
from omnidiffusion.audio.wavegrad import WaveGradNet

SR = 22050


def hifigan_mel_oracle(x: np.ndarray) -> np.ndarray:
    """HiFi-GAN's mel written out in NumPy: reflect pad 384, frames of 1024 every 256, periodic Hann, rfft,
    sqrt(|X|^2 + 1e-9), torchaudio's Slaney filterbank, log(max(., 1e-5))."""
    n_fft, hop = 1024, 256
    pad = (n_fft - hop) // 2
    y = np.pad(x.astype(np.float64), pad, mode="reflect")
    count = (y.size - n_fft) // hop + 1
    frames = np.stack([y[k * hop : k * hop + n_fft] for k in range(count)])  # (F, n_fft)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)
    spec = np.fft.rfft(frames * window, axis=-1)
    mag = np.sqrt(spec.real**2 + spec.imag**2 + 1e-9)  # (F, 513)
    fb = melscale_fbanks(513, 0.0, 8000.0, 80, SR, norm="slaney", mel_scale="slaney").double().numpy()  # (513, 80)
    return np.log(np.maximum(mag @ fb, 1e-5)).T  # (80, F)


@pytest.mark.parametrize("n", [256, 300, 1000, 5 * 256, 4000])
def test_hifigan_mel_matches_oracle(n):
    rng = np.random.default_rng(n)
    x = (0.3 * np.sin(2 * np.pi * 220 * np.arange(n) / SR) + 0.05 * rng.standard_normal(n)).astype(np.float32)
    cfg = MelConfig.hifigan()
    ours = log_mel(torch.from_numpy(x), cfg)[0].double().numpy()
    assert ours.shape == (80, n // 256) and num_frames(n, cfg) == n // 256
    if n > 384:  # reflect padding of 384 needs a longer clip; shorter ones are zero-padded first
        np.testing.assert_allclose(ours, hifigan_mel_oracle(x), atol=2e-4)
    fb = melscale_fbanks(513, 0.0, 8000.0, 80, SR, norm="slaney", mel_scale="slaney").T.double()
    torch.testing.assert_close(slaney_filterbank(cfg), fb, atol=1e-6, rtol=1e-5)


def test_hifigan_preset_and_style_checks():
    cfg = MelConfig.hifigan()
    assert (cfg.sample_rate, cfg.n_fft, cfg.win_length, cfg.hop_length, cfg.n_mels, cfg.f_min, cfg.f_max) == (
        22050, 1024, 1024, 256, 80, 0.0, 8000.0
    )  # fmt: skip
    assert log_mel(torch.zeros(2048), cfg).min() == pytest.approx(math.log(1e-5))
    with pytest.raises(ValueError, match="MelConfig.style: expected one of"):
        MelConfig(style="librosa")
    with pytest.raises(ValueError, match="at least hop_length = 256 samples"):
        log_mel(torch.zeros(200), cfg)


@pytest.mark.parametrize("n", [1000])
def test_hifigan_vocoder_returns_every_sample(n):
    torch.manual_seed(0)
    net = WaveGradNet(
        n_mels=80, factors=(4, 4, 4, 2, 2), mel_channels=8, up_channels=(8, 8, 8, 8, 8), down_channels=(4, 4, 4, 4, 8)
    )
    out = WaveGrad(net, MelConfig.hifigan()).resynthesize(0.1 * torch.randn(n), iterations=6)
    assert out.shape == (n,) and torch.isfinite(out).all()


def _noise(n=SR, seed=0):
    return 0.3 * torch.randn(n, generator=torch.Generator().manual_seed(seed))


def test_ls_mse_and_mcd_of_a_gain_change():
    x = _noise()
    # Halving the amplitude shifts every (unclamped) log-mel bin by log 2: LS-MSE = (log 2)^2, and only the
    # cepstral level c0 moves, so MCD (coefficients 1..13) is 0.
    assert float(ls_mse(x[None], 0.5 * x[None])[0]) == pytest.approx(math.log(2) ** 2, rel=1e-4)
    assert float(mel_cepstral_distortion(x[None], 0.5 * x[None])[0]) == pytest.approx(0.0, abs=1e-3)
    assert float(mel_cepstral_distortion(x[None], _noise(seed=1)[None])[0]) > 1.0


@pytest.mark.parametrize(("k", "expected"), [(1, 1.0), (7, 1.0), (13, 1.0), (14, 0.0), (0, 0.0)])
def test_mcd_of_a_known_cepstral_difference(k, expected):
    unit = np.zeros(80)
    unit[k] = 1.0
    pattern = torch.from_numpy(scipy.fft.idct(unit, norm="ortho"))  # log-mel difference whose DCT is e_k
    a = torch.zeros(2, 80, 5, dtype=torch.float64)
    b = 0.7 * pattern[None, :, None].expand(2, 80, 5)
    torch.testing.assert_close(
        mcd_from_log_mels(a, b), torch.full((2,), 0.7 * expected * MCD_SCALE, dtype=torch.float64)
    )
    x = torch.randn(3, 80, 4, dtype=torch.float64)
    torch.testing.assert_close(dct_ii(x, dim=1), torch.from_numpy(scipy.fft.dct(x.numpy(), axis=1, norm="ortho")))


def _tone(f, n=SR // 2, amp=0.5):
    return amp * torch.sin(2 * math.pi * f * torch.arange(n) / SR)


@pytest.mark.parametrize("f", [80.0, 123.4, 480.0])
def test_f0_of_tones_and_harmonics(f):
    f0, voiced = track_f0(_tone(f), SR)
    inner = slice(4, -4)  # frames away from the zero-padded ends
    assert voiced[0, inner].all()
    torch.testing.assert_close(f0[0, inner], torch.full_like(f0[0, inner], f), rtol=2e-3, atol=0)
    harmonics = sum(_tone(f * k, amp=0.3 / k) for k in range(1, 6) if f * k < SR / 2)
    f0, voiced = track_f0(harmonics, SR)
    assert voiced[0, inner].all() and (f0[0, inner] / f - 1).abs().max() < 5e-3


def test_noise_and_silence_are_unvoiced():
    assert track_f0(_noise(), SR)[1].float().mean() < 0.05
    assert not track_f0(torch.zeros(SR // 2), SR)[1].any()


def test_f0_frame_error_closed_forms():
    a, b = _tone(200.0), _tone(300.0)  # 300 / 200 - 1 = 50 % > 20 %: a gross pitch error in every voiced frame
    assert float(f0_frame_error(a, a)[0]) == 0.0
    assert float(f0_frame_error(a, _tone(210.0))[0]) == 0.0  # 5 % apart: within the 20 % tolerance
    assert float(f0_frame_error(a, b)[0]) > 0.95
    assert float(f0_frame_error(a, torch.zeros(a.numel()))[0]) > 0.95  # voicing errors
    half = a.clone()
    half[a.numel() // 2 :] = 0
    assert float(f0_frame_error(a, half)[0]) == pytest.approx(0.5, abs=0.03)
