"""omnidiffusion.audio: the WaveGrad diffusion vocoder (Chen et al. 2021) on the omnidiffusion core.

Modules: settings (AudioConfig: [mel], [model], [data], [schedule], [train], [sampler]), mel (the one log-mel
function; the 'hifigan' preset), data (wav/flac folders, random segments, read in memory or from disk), ljspeech
(the LJSpeech layout and HiFi-GAN's split files), demo_data (espeak-ng sentences, synthetic harmonic signals),
wavegrad (the network), noise (training levels and inference schedules, schedule search), task (loss, sampling
through omnidiffusion.core.sample), training (`train(config, out_dir)`), metrics (log-mel distance,
multi-resolution STFT, LS-MSE, MCD, real-time factor, Griffin-Lim), pitch (YIN f0, F0 frame error), evaluation
(model vs Griffin-Lim, the schedule search on clips), pipeline (`WaveGrad.from_pretrained(dir).vocode(mel)`), cli
(`omnidiffusion-audio train | vocode | evaluate | search-schedule`).
"""

from .ljspeech import LJSpeechClip, ljspeech_split, read_ljspeech
from .mel import MelConfig, log_mel, num_frames
from .metrics import griffin_lim, log_mel_distance, ls_mse, mel_cepstral_distortion, mr_stft_distance, real_time_factor
from .noise import inference_betas, training_betas, training_levels
from .pipeline import WaveGrad
from .pitch import f0_frame_error, track_f0
from .settings import AudioConfig
from .wavegrad import WaveGradNet

__version__ = "0.1.0"

__all__ = [
    "AudioConfig",
    "LJSpeechClip",
    "MelConfig",
    "WaveGrad",
    "WaveGradNet",
    "f0_frame_error",
    "griffin_lim",
    "inference_betas",
    "ljspeech_split",
    "log_mel",
    "log_mel_distance",
    "ls_mse",
    "mel_cepstral_distortion",
    "mr_stft_distance",
    "num_frames",
    "read_ljspeech",
    "real_time_factor",
    "track_f0",
    "training_betas",
    "training_levels",
]
