"""The one exception type a user should see: a bad value and what would be accepted."""


class UserError(ValueError):
  """Bad input from the command line, a config or a file; main.py prints it as one line."""
