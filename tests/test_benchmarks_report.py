"""benchmarks/report.py: what every benchmark writes into --out."""

import json
import sys

from benchmarks import report


def test_write_names_command_machine_and_date(tmp_path, monkeypatch):
  monkeypatch.setattr(sys, "argv", ["/somewhere/train_step.py", "--out", "runs/x y", "--steps", "2"])
  table = report.markdown_table(["a", "b"], [[1, "x"], [2.5, "y"]])
  assert table.splitlines() == ["| a | b |", "|---|---|", "| 1 | x |", "| 2.5 | y |"]
  record = report.write(tmp_path / "out", "demo", "A demo", {"rows": [1, 2]}, table, ["A note."])
  saved = json.loads((tmp_path / "out" / "results.json").read_text())
  assert saved == record and saved["benchmark"] == "demo" and saved["rows"] == [1, 2]
  assert saved["command"].endswith("--out 'runs/x y' --steps 2")
  assert {"cpu", "cores", "usable_cores", "os", "python"} <= set(saved["machine"]) and saved["date"].endswith("UTC")
  assert saved["machine"]["cores"] >= saved["machine"]["usable_cores"] >= 1
  md = (tmp_path / "out" / "results.md").read_text().splitlines()
  assert md[0] == "# A demo" and md[2] == f"- Command (from the repository root): `{saved['command']}`"
  assert md[3].startswith(f"- Machine: {saved['machine']['cpu']}, {saved['machine']['cores']} cores")
  assert f"- Date: {saved['date']}" in md and table.splitlines()[-1] in md and md[-1] == "A note."
  assert report.read(tmp_path / "out") == saved and report.read(tmp_path / "nothing") == {}


def test_command_is_a_module_command_when_run_with_dash_m(monkeypatch):
  class Spec:
    name = "benchmarks.speed.train_step"

  monkeypatch.setattr(sys.modules["__main__"], "__spec__", Spec(), raising=False)
  assert report.command(["--out", "o"]) == "python -m benchmarks.speed.train_step --out o"
