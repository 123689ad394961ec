"""omnidiffusion.multimodal: text-to-image latent diffusion with classifier-free guidance (LDM, GLIDE).

Submodules: data (bundled captioned scenes with a compositional split, captions.csv folders), text (tokenizers
word-level tokenizer, transformers encoder), models (cross-attention UNet + text encoder), training (`train`),
pipeline (`TextToImage`), metrics (attribute classifier, faithfulness, Frechet distance, diversity), evaluation,
cli. The latent space itself (autoencoder, LatentDenoiser) lives in omnidiffusion.core.latent.
"""
