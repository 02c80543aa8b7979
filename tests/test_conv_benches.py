"""benchmarks.speed.conv_forms / conv_step / matmul_orientation: what they write and their one-line errors
(tiny shapes, one repeat: no timing is checked)."""

import json
import subprocess
import sys

from conftest import ROOT

from aigc_jax.models import cpu_convs
from benchmarks.speed import conv_forms, matmul_orientation


def test_conv_forms_writes_every_form_beside_autos_pick(tmp_path):
  conv_forms.main(["--resolutions", "32", "--batch", "2", "--features", "4", "--reps", "1", "--out", str(tmp_path)])
  result = json.loads((tmp_path / "results.json").read_text())
  assert result["benchmark"] == "conv_forms" and result["command"].endswith(f"--out {tmp_path}")
  assert [r["layer"] for r in result["downconv"]] == ["D 32x32x3 -> 4", "D 16x16x4 -> 8", "D 8x8x8 -> 16"]
  assert [r["layer"] for r in result["upconv_forward"]] == ["G 4x4x16 -> 8", "G 8x8x8 -> 4", "G 16x16x4 -> 3"]
  image = result["downconv"][0]
  assert list(image["auto"].values()) == list(cpu_convs.downconv_forms((2, 32, 32, 3)))
  assert len(image["ms"]) == 4 * 3 and image["fastest"]["forward"] in cpu_convs.DOWNCONV_FORMS
  assert [r["auto"] for r in result["upconv_forward"]] == ["col2im"] * 3
  table = (tmp_path / "results.md").read_text()
  assert "| D 32x32x3 -> 4 | kernel_grad |" in table and "| layer | xla | col2im | phase | auto | fastest |" in table


def test_matmul_orientation_names_the_form_cpu_convs_takes():
  kept = matmul_orientation.kept_form
  assert kept(4096, 512, 64, threads=2) == "barrier(barrier(dY^T) P)^T"
  assert kept(4096, 512, 64, threads=1) == "barrier(dY^T P)^T"
  assert kept(16384, 1024, 128, threads=2) == "barrier(dY^T P)^T"  # over the dY^T limit
  assert kept(16384, 48, 64, threads=2) == "P^T dY"


def test_conv_step_rejects_an_unknown_impl_in_one_line():
  proc = subprocess.run([sys.executable, "-m", "benchmarks.speed.conv_step", "--impls", "xla,fast"], cwd=ROOT,
                        capture_output=True, text=True)
  assert proc.returncode == 1
  assert proc.stderr.strip().splitlines()[-1] == "error: --impls: config.conv_impl='fast' is not one of auto, xla, cpu"
