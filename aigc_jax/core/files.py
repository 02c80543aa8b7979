"""Files a run writes and reads, on a local disk or an object store (gs://, s3://) alike.

Paths go through `etils.epath`, as Orbax's do: pathlib would turn 'gs://bucket/run' into the
local folder 'gs:/bucket/run'. Writes are whole-or-nothing, so a crash, a preemption or a
concurrent reader never sees a half-written config, metrics file or PNG.
"""

import io
import os
import uuid

from etils import epath

from aigc_jax.core.errors import UserError


def path(p) -> epath.Path:
  """A local path ('~' expanded) or an object-store URL as one path type."""
  return epath.Path(os.fspath(p)).expanduser()


def is_remote(p) -> bool:
  return "://" in os.fspath(p)


def absolute(p) -> epath.Path:
  """Local paths made absolute (Orbax wants them so); URLs are already (and absolute() breaks them)."""
  p = path(p)
  return p if is_remote(p) else p.absolute()


def _file_in_the_way(p: epath.Path) -> epath.Path | None:
  """The nearest of `p` and its parents that exists, when that is not a folder: making `p` would fail on it.

  An object store has no such conflict (an object 'a' and objects under 'a/' live side by side), so
  URLs are never in the way.
  """
  if is_remote(p):
    return None
  q = absolute(p)
  while not q.exists() and q.parent != q:
    q = q.parent
  return q if q.exists() and not q.is_dir() else None


def workdir(p) -> epath.Path:
  """`p` as the run's folder, or a UserError when it, or a folder above it, is a file.

  Checked before anything is read or written, so the refusal is one line and nothing changes.
  """
  p = path(p)
  blocker = _file_in_the_way(p)
  if blocker is not None:
    if blocker == absolute(p):
      raise UserError(f"--workdir '{p}' is a file, not a folder; give a folder, or a new path to create one")
    raise UserError(f"--workdir '{p}' cannot be created: '{blocker}' is a file, not a folder")
  return p


def output(p) -> epath.Path:
  """`p` as a place to write a result (a file or a new folder), or a UserError when a file is in its way.

  Whether `p` itself may be replaced is each mode's to decide (--overwrite).
  """
  p = path(p)
  blocker = _file_in_the_way(p.parent)
  if blocker is not None:
    raise UserError(f"--output '{p}' cannot be written: '{blocker}' is a file, not a folder")
  return p


def write_atomic(target, write) -> epath.Path:
  """Writes `target` with `write(binary_file)`: afterwards it holds the old bytes or the new ones, never part.

  Locally the bytes go to a uniquely named file beside `target` that is renamed over it. An object
  store shows an object only once its upload completes, and renaming there is a copy, so the bytes
  are gathered in memory and uploaded in one call. An exception in `write` leaves `target` as it was.
  """
  target = path(target)
  target.parent.mkdir(parents=True, exist_ok=True)
  if is_remote(target):
    buf = io.BytesIO()
    write(buf)
    target.write_bytes(buf.getvalue())
    return target
  tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:12]}.tmp")
  try:
    with open(tmp, "xb") as f:
      write(f)
    os.replace(tmp, target)
  except BaseException:
    tmp.unlink(missing_ok=True)
    raise
  return target


def write_text(target, text: str) -> epath.Path:
  return write_atomic(target, lambda f: f.write(text.encode()))


def append_line(target, line: str) -> epath.Path:
  """Adds a line to a small log by rewriting it whole: object stores cannot append, and a crash
  mid-append would leave half a line."""
  target = path(target)
  old = target.read_text() if target.exists() else ""
  return write_text(target, old + line + "\n")


def check_output(output, overwrite: bool, *, suffixes: tuple[str, ...] = (), folder: bool = False) -> epath.Path:
  """The one --output check, made before any work: the path, or a UserError saying why not.

  An existing output is kept unless `overwrite` (an empty folder counts as absent when `folder`);
  `suffixes` are the accepted file endings, if any.
  """
  out = path(output)
  if suffixes and out.suffix.lower() not in suffixes:
    raise UserError(f"--output '{output}' must end in {' or '.join(suffixes)}")
  if folder and out.exists() and not out.is_dir():
    raise UserError(f"--output '{output}' is a file; give a folder")
  taken = out.exists() and (not folder or any(out.iterdir()))
  if taken and not overwrite:
    raise UserError(f"--output '{output}' exists; pass --overwrite to replace it or choose another --output")
  return out
