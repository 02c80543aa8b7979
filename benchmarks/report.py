"""What every benchmark writes into its --out folder:

  results.json  {"benchmark", "command", "machine", "date", ...the script's numbers}
  results.md    the script's markdown table under a header with the command that regenerates it
                (run from the repository root), the machine it ran on and the date

so that a table in the docs is pasted from results.md, not typed. Imports only the standard library
at module level (compare_pytorch's torch worker imports this module in an interpreter without JAX).
"""

import datetime
import json
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def cpu_model() -> str:
  """The CPU's model name from /proc/cpuinfo (Linux), else what `platform` knows."""
  try:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
      if line.startswith("model name"):
        return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or platform.machine()


def usable_cores() -> int:
  """The CPUs this process may run on (fewer than the machine's under taskset or a container)."""
  if hasattr(os, "sched_getaffinity"):
    return len(os.sched_getaffinity(0))
  return os.cpu_count() or 1


def commit() -> str:
  """The checkout's commit, '-dirty' when it has uncommitted changes; '' outside a git checkout."""
  try:
    out = subprocess.run(["git", "describe", "--always", "--dirty", "--abbrev=10"], cwd=ROOT, capture_output=True,
                         text=True, timeout=10)
  except (OSError, subprocess.SubprocessError):
    return ""
  return out.stdout.strip() if out.returncode == 0 else ""


def machine() -> dict:
  """CPU model, cores, OS, Python, and JAX's version and backend where JAX is imported."""
  info = {"cpu": cpu_model(), "cores": os.cpu_count(), "usable_cores": usable_cores(),
          "os": platform.platform(), "python": platform.python_version()}
  jax = sys.modules.get("jax")
  if jax is not None:
    info["jax"] = jax.__version__
    info["backend"] = jax.default_backend()
    if info["backend"] != "cpu":
      info["device"] = f"{jax.device_count()} x {jax.devices()[0].device_kind}"
  return info


def command(argv=None) -> str:
  """The command line that ran this process, as `python -m <module> ...` when it was started with -m."""
  argv = sys.argv[1:] if argv is None else list(argv)
  main = sys.modules.get("__main__")
  spec = getattr(main, "__spec__", None)
  head = ["python", "-m", spec.name] if spec is not None and spec.name != "__main__" else ["python", sys.argv[0]]
  return shlex.join(head + argv)


def describe(info: dict) -> str:
  text = f"{info['cpu']}, {info['cores']} cores"
  if info.get("usable_cores") != info.get("cores"):
    text += f" ({info['usable_cores']} usable)"
  text += f", {info['os']}, Python {info['python']}"
  if "jax" in info:
    text += f", jax {info['jax']} ({info['backend']}{', ' + info['device'] if 'device' in info else ''})"
  return text


def markdown_table(head, rows) -> str:
  """A markdown table of `head` (column titles) and `rows` (lists of cells, written with str())."""
  lines = ["| " + " | ".join(map(str, head)) + " |", "|" + "---|" * len(head)]
  lines += ["| " + " | ".join(map(str, row)) + " |" for row in rows]
  return "\n".join(lines)


def _write_text(path: Path, text: str):
  tmp = path.with_name(path.name + ".tmp")
  tmp.write_text(text)
  tmp.replace(path)


def write(out, benchmark: str, title: str, result: dict, table: str, notes=(), argv=None) -> dict:
  """Writes OUT/results.json and OUT/results.md (created with OUT); returns what results.json holds.

  `result` is the script's numbers, `table` its markdown table, `notes` paragraphs printed under it;
  `argv`: the script's arguments, if not sys.argv[1:] (a script's main called in-process).
  """
  out = Path(out)
  out.mkdir(parents=True, exist_ok=True)
  info = machine()
  head = {"benchmark": benchmark, "command": command(argv), "commit": commit(), "machine": info,
          "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}
  record = {**head, **result}
  _write_text(out / "results.json", json.dumps(record, indent=1) + "\n")
  lines = [f"# {title}", "",
           f"- Command (from the repository root): `{head['command']}`",
           f"- Machine: {describe(info)}",
           *([f"- Commit: {head['commit']}"] if head["commit"] else []),
           f"- Date: {head['date']}", "", table.rstrip("\n"), ""]
  for note in notes:
    lines += [note, ""]
  _write_text(out / "results.md", "\n".join(lines))
  return record


def read(out) -> dict:
  """OUT/results.json of an earlier invocation, or {} when there is none."""
  path = Path(out) / "results.json"
  return json.loads(path.read_text()) if path.exists() else {}
