"""StyleGAN2 (Karras et al. 2020) as in NVlabs/stylegan2-ada-pytorch: networks and official-pickle loading."""
