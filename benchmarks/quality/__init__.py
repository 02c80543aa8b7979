"""Quality: GAN sample quality at a fixed CPU budget (mnist_quality) and per technique (ablations)."""
