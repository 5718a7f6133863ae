"""Reference Denoising Diffusion GAN (Xiao, Kreis, Vahdat, ICLR 2022), compatible with NVlabs/denoising-diffusion-gan."""
