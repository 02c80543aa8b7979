"""Config files: `get_config(preset)` functions read by main.py --config."""


def with_overrides(config, **overrides):
  """Sets dotted keys as --config.a.b=v would, for scripts that build configs in code; returns `config`."""
  for key, value in overrides.items():
    node = config
    *parents, leaf = key.split(".")
    for p in parents:
      node = node[p]
    node[leaf] = value
  return config
