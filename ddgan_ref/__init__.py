"""Reference Denoising Diffusion GAN (Xiao, Kreis, Vahdat, ICLR 2022), as NVlabs/denoising-diffusion-gan."""
