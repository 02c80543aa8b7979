"""The tasks: GAN generation, the classifier, image-to-image repair and enhancement. Each owns its config
checks, its pure steps and its CLI modes; tasks never import each other."""
