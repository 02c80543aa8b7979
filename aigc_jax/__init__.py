"""aigc-jax: functional JAX/Flax GANs for image generation, repair, enhancement and recognition."""

__version__ = "0.1.0"
