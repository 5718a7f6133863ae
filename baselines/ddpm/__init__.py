"""DDPM (Ho et al. 2020) with DDIM sampling (Song et al. 2021): the diffusers-compatible UNet and schedules."""
