"""The in-domain classifier: pure steps; modes train and classify."""
