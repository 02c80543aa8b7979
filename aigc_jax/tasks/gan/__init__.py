"""GANs: losses, regularizers, augmentation, EMA, the pure train step; modes train, sample, eval, probe, explore,
and GAN-inversion inpainting."""
