"""Audio files and folders, training segments, the pipeline on clips of any length, and bad input."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from omnidiffusion.audio.data import SegmentDataset, find_audio, read_audio
from omnidiffusion.audio.demo_data import synthetic_clip, synthetic_corpus
from omnidiffusion.audio.evaluation import search_model_schedule
from omnidiffusion.audio.mel import MelConfig, log_mel
from omnidiffusion.audio.pipeline import WaveGrad
from omnidiffusion.audio.wavegrad import WaveGradNet

TINY = dict(
    n_mels=80, factors=(4, 4, 4, 2, 2), mel_channels=16, up_channels=(16, 16, 8, 8, 8), down_channels=(4, 8, 8, 8, 16)
)


@pytest.fixture
def model():
    torch.manual_seed(0)
    return WaveGrad(WaveGradNet(**TINY), MelConfig())


def test_read_audio_formats_and_errors(tmp_path):
    x = 0.25 * np.sin(np.linspace(0, 200, 8000)).astype(np.float32)
    sf.write(tmp_path / "a.wav", x, 22050, subtype="FLOAT")
    sf.write(tmp_path / "b.flac", x, 16000)
    sf.write(tmp_path / "stereo.wav", np.stack([x, -x], 1), 22050)
    (tmp_path / "broken.wav").write_bytes(b"RIFF\x00\x00not audio")
    np.testing.assert_allclose(read_audio(tmp_path / "a.wav", 22050).numpy(), x)
    up = read_audio(tmp_path / "b.flac", 22050)  # resampled 16 kHz -> 22.05 kHz
    assert up.numel() == pytest.approx(8000 * 22050 / 16000, abs=2)
    with pytest.raises(ValueError, match="expected sample rate 22050 Hz, got 16000"):
        read_audio(tmp_path / "b.flac", 22050, resample_to_rate=False)
    with pytest.raises(ValueError, match="mono.*2 channels"):
        read_audio(tmp_path / "stereo.wav", 22050)
    assert read_audio(tmp_path / "stereo.wav", 22050, mix_to_mono=True).abs().max() < 1e-4  # 16-bit rounding
    with pytest.raises(ValueError, match="not a readable audio file"):
        read_audio(tmp_path / "broken.wav", 22050)
    with pytest.raises(FileNotFoundError):
        read_audio(tmp_path / "missing.wav", 22050)


def test_find_audio_ljspeech_and_plain_folders(tmp_path):
    lj = tmp_path / "lj"
    (lj / "wavs").mkdir(parents=True)
    for name in ("LJ002", "LJ001"):
        sf.write(lj / "wavs" / f"{name}.wav", np.zeros(100, np.float32), 22050)
    (lj / "metadata.csv").write_text("LJ002|Second.|Second.\nLJ001|First.|First.\n")
    assert [p.stem for p in find_audio(lj)] == ["LJ002", "LJ001"]  # the metadata's order
    plain = tmp_path / "plain"
    (plain / "sub").mkdir(parents=True)
    sf.write(plain / "z.wav", np.zeros(100, np.float32), 22050)
    sf.write(plain / "sub" / "a.flac", np.zeros(100, np.float32), 22050)
    (plain / "notes.txt").write_text("x")
    assert [p.name for p in find_audio(plain)] == ["a.flac", "z.wav"]
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="no .wav or .flac"):
        find_audio(empty)


def test_segments_align_audio_and_mel():
    cfg = MelConfig()
    clips = [synthetic_clip(22050, 0.5, 150.0, generator=torch.Generator().manual_seed(0)), torch.zeros(300)]
    ds = SegmentDataset(clips, cfg, segment_frames=6)
    torch.manual_seed(0)
    for _ in range(5):
        item = ds[0]
        assert item["audio"].shape == (1, 6 * 256) and item["mel"].shape == (80, 6)
        # The segment's mel is a slice of the whole clip's mel: find where it starts and check the audio there.
        full = log_mel(clips[0], cfg)[0]
        start = int((full[0, : full.shape[1] - 5] - item["mel"][0, 0]).abs().argmin())
        torch.testing.assert_close(item["mel"], full[:, start : start + 6])
        torch.testing.assert_close(item["audio"][0], clips[0][start * 256 : (start + 6) * 256])
    short = ds[1]  # shorter than one segment: zero-padded
    assert short["audio"].shape == (1, 6 * 256) and short["audio"].abs().sum() == 0


@pytest.mark.parametrize("n", [256 * 9, 256 * 9 + 1, 1000])
def test_clips_of_any_length_vocode_and_search(model, n):
    clip = synthetic_clip(22050, n / 22050, 200.0, generator=torch.Generator().manual_seed(1))
    assert clip.numel() == n
    out = model.resynthesize(clip, iterations=6)
    assert out.shape == (n,) and torch.isfinite(out).all()
    if n % 256 == 0:
        # The schedule search runs on such clips (the reference's search crashes on an exact multiple of the hop).
        res = search_model_schedule(model, [clip], steps=1, progress=False)
        assert len(res["betas"]) == 1 and np.isfinite(res["score"]) and 9 <= len(res["trials"]) <= 10


def test_pipeline_round_trip_and_errors(model, tmp_path):
    model.schedules[6] = [1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 0.7]
    model.save_pretrained(tmp_path / "ckpt")
    again = WaveGrad.from_pretrained(tmp_path / "ckpt")
    assert again.mel_config == model.mel_config and again.schedules == model.schedules
    mel = model.mel(synthetic_corpus("test", 22050, count=1, seconds=0.2)[0])
    torch.testing.assert_close(again.vocode(mel[0], seed=3), model.vocode(mel[0], seed=3))
    assert again.vocode(mel, seed=3).shape == (1, mel.shape[-1] * 256)
    with pytest.raises(ValueError, match="80 mel bands"):
        model.vocode(torch.zeros(64, 10))
    with pytest.raises(ValueError, match="NaN"):
        model.vocode(torch.full((80, 10), float("nan")))
    with pytest.raises(ValueError, match="betas"):
        model.vocode(mel, betas=[0.1, 1.5])
    with pytest.raises(ValueError, match="mono"):
        model.resynthesize(torch.zeros(1, 2, 1000))
    with pytest.raises(FileNotFoundError):
        WaveGrad.from_pretrained(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="hop"):
        WaveGrad(WaveGradNet(**TINY), MelConfig.paper())
