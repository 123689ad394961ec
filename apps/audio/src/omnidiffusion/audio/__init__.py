"""omnidiffusion.audio: the WaveGrad diffusion vocoder (Chen et al. 2021) on the omnidiffusion core.

Modules: mel (the one log-mel function), data (wav/flac folders, LJSpeech layout, random segments), demo_data
(espeak-ng sentences, synthetic harmonic signals), wavegrad (the network), noise (training levels and inference
schedules, schedule search), task (loss, sampling through omnidiffusion.core.sample), metrics (log-mel distance,
multi-resolution STFT, real-time factor, Griffin-Lim), pipeline (`WaveGrad.from_pretrained(dir).vocode(mel)`),
cli (`omnidiffusion-audio train | vocode | evaluate | search-schedule`).
"""

from .mel import MelConfig, log_mel, num_frames
from .metrics import griffin_lim, log_mel_distance, mr_stft_distance, real_time_factor
from .noise import inference_betas, training_betas, training_levels
from .pipeline import WaveGrad
from .wavegrad import WaveGradNet

__version__ = "0.1.0"

__all__ = [
    "MelConfig",
    "WaveGrad",
    "WaveGradNet",
    "griffin_lim",
    "inference_betas",
    "log_mel",
    "log_mel_distance",
    "mr_stft_distance",
    "num_frames",
    "real_time_factor",
    "training_betas",
    "training_levels",
]
