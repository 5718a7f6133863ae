"""The trilemma's baselines: DDPM (with DDIM sampling) and StyleGAN2, loading their official checkpoints."""
