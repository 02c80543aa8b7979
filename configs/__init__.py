"""Config files: `get_config(preset)` functions read by main.py --config."""
