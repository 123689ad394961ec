"""Point-cloud diffusion: DDPM over (B, N, 3) point sets, generation and PVD-style shape completion."""
