"""Applications: repair and enhancement networks measured beside classical tools, and the photo crops they train on."""
