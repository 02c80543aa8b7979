"""benchmarks/speed/compare_pytorch.py without torch: its options, one-line errors for bad ones or a missing torch."""

import importlib.util
import os
import subprocess
import sys

import pytest

from benchmarks.speed import compare_pytorch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_defaults_warm_both_sides_up_alike():
  args = compare_pytorch.parse_args([])
  assert args.warmup == 10 and args.rounds == 7 and args.resolutions == ["32", "64"]
  assert args.out == "runs/compare_pytorch" and args.torch_python == sys.executable
  assert compare_pytorch.parse_args(["--warmup", "3", "--steps", "0"]).warmup == 3


@pytest.mark.parametrize("option, value", [("--warmup", "0"), ("--rounds", "0"), ("--steps", "-1"),
                                           ("--batch_size", "0"), ("--threads", "0"), ("--features", "0")])
def test_bad_counts_exit_with_a_message(option, value):
  with pytest.raises(SystemExit, match=f"{option} must be >= .*got {value}"):
    compare_pytorch.parse_args([option, value])


def test_interpreter_without_torch_gives_one_line_error():
  if importlib.util.find_spec("torch") is not None:  # the script would run the whole comparison
    pytest.skip("this interpreter has torch")
  env = dict(os.environ, AIGC_HOST_MEMORY="off")
  proc = subprocess.run([sys.executable, "-m", "benchmarks.speed.compare_pytorch", "--torch_python", sys.executable,
                         "--resolutions", "32"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
  assert proc.returncode != 0
  last = proc.stderr.strip().splitlines()[-1]
  assert last.startswith("error: the torch worker") and "--torch_python" in last
