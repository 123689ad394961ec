"""omnidiffusion.core: the shared diffusion core (schedules, processes, samplers, losses, likelihood)."""
