"""Paired image-to-image GANs: repair (inpainting, denoising) and enhancement (super-resolution)."""
