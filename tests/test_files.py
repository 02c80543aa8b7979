"""Whole-or-nothing writes, locally and on an object store (a gs:// bucket faked by a local folder)."""

import json
import os

import numpy as np
import pytest
from etils import epath
from etils.epath import gpath
from etils.epath import testing as epath_testing
from PIL import Image

from aigc_jax.core import files, images
from aigc_jax.core.checkpoint import Checkpoints
from aigc_jax.tasks.gan import sample


class Boom(Exception):
  pass


def _half_then_fail(f):
  f.write(b"partial")
  raise Boom


def test_local_write_replaces_whole_and_leaves_no_temporary(tmp_path):
  target = tmp_path / "sub" / "m.json"
  files.write_text(target, "one\n")
  files.write_text(target, "two\n")
  assert target.read_text() == "two\n"
  assert os.listdir(target.parent) == ["m.json"]


def test_local_failed_write_keeps_the_old_file_and_leaves_nothing_behind(tmp_path):
  target = tmp_path / "m.json"
  target.write_text("old\n")
  with pytest.raises(Boom):
    files.write_atomic(target, _half_then_fail)
  assert target.read_text() == "old\n"
  assert os.listdir(tmp_path) == ["m.json"]
  with pytest.raises(Boom):
    files.write_atomic(tmp_path / "new.png", _half_then_fail)
  assert os.listdir(tmp_path) == ["m.json"]


def test_append_line_adds_lines(tmp_path):
  target = tmp_path / "eval" / "metrics.jsonl"
  files.append_line(target, '{"step": 1}')
  files.append_line(target, '{"step": 2}')
  assert [json.loads(x)["step"] for x in target.read_text().splitlines()] == [1, 2]


def test_paths_keep_urls_and_expand_home():
  assert str(files.path("gs://bucket/run") / "config.json") == "gs://bucket/run/config.json"
  assert str(files.absolute("gs://bucket/run")) == "gs://bucket/run"  # epath's absolute() would give CWD/gs:/...
  assert str(files.absolute("rel")) == os.path.join(os.getcwd(), "rel")
  assert str(files.path("~/x")) == os.path.expanduser("~/x")
  assert files.is_remote("gs://b/x") and not files.is_remote("/tmp/x")


@pytest.fixture
def bucket(tmp_path, monkeypatch):
  """gs://bucket/... served from tmp_path/bucket/... through epath's own backend hooks; renames are refused,
  since on an object store a rename is a copy and not atomic."""
  monkeypatch.setattr(gpath, "_is_tf_installed", lambda: False)  # else epath sends gs:// to TF's GCS client
  local = lambda p: str(tmp_path / os.fspath(p).removeprefix("gs://")) if os.fspath(p).startswith("gs://") else p

  def on_local(original, path, *args, **kwargs):
    return original(local(path), *args, **kwargs)

  def no_rename(original, path, dst, *args, **kwargs):
    raise AssertionError(f"renamed {path} -> {dst} on an object store")

  hooks = dict(open=on_local, exists=on_local, isdir=on_local, listdir=on_local, makedirs=on_local, mkdir=on_local,
               remove=on_local, rmtree=on_local, stat=on_local, rename=no_rename, replace=no_rename)
  with epath_testing.mock_epath(**hooks):
    yield tmp_path / "bucket"


def test_object_store_writes_are_single_uploads(bucket):
  files.write_text("gs://bucket/run/config.json", "{}\n")
  assert (bucket / "run" / "config.json").read_text() == "{}\n"
  with pytest.raises(Boom):
    files.write_atomic("gs://bucket/run/config.json", _half_then_fail)
  with pytest.raises(Boom):
    files.write_atomic("gs://bucket/run/new.json", _half_then_fail)
  assert (bucket / "run" / "config.json").read_text() == "{}\n"
  assert os.listdir(bucket / "run") == ["config.json"]
  files.append_line("gs://bucket/run/eval/metrics.jsonl", "a")
  files.append_line("gs://bucket/run/eval/metrics.jsonl", "b")
  assert (bucket / "run" / "eval" / "metrics.jsonl").read_text() == "a\nb\n"


def test_run_outputs_go_to_the_bucket(bucket):
  grid = np.arange(48, dtype=np.uint8).reshape(4, 4, 3)
  images.save_png("gs://bucket/run/samples/step_0000001.png", grid)
  np.testing.assert_array_equal(np.asarray(Image.open(bucket / "run" / "samples" / "step_0000001.png")), grid)
  samples = np.zeros((3, 4, 4, 1), np.uint8)
  sample.write("gs://bucket/s.npz", samples)
  with np.load(bucket / "s.npz") as f:
    np.testing.assert_array_equal(f["images"], samples)
  sample.write("gs://bucket/pngs", samples)
  assert sorted(os.listdir(bucket / "pngs")) == ["0.png", "1.png", "2.png"]
  (bucket / "run" / "checkpoints").mkdir(parents=True)
  ckpt = Checkpoints("gs://bucket/run/checkpoints", read_only=True)
  assert isinstance(ckpt.directory, epath.Path) and str(ckpt.directory) == "gs://bucket/run/checkpoints"
  assert ckpt.directory.exists()


def test_workdir_and_output_refuse_a_file_in_the_way(tmp_path):
  from aigc_jax.core.errors import UserError

  (tmp_path / "f").write_text("keep me")
  (tmp_path / "d").mkdir()
  assert files.workdir(tmp_path / "d") == tmp_path / "d"
  assert files.workdir(tmp_path / "new" / "run") == tmp_path / "new" / "run"
  assert files.workdir("gs://bucket/f") == epath.Path("gs://bucket/f")  # never looked up: no such conflict there
  assert files.output(tmp_path / "f") == tmp_path / "f"  # replacing it is --overwrite's business
  assert files.output(tmp_path / "new" / "s.npz") == tmp_path / "new" / "s.npz"
  assert files.output("s.npz") == epath.Path("s.npz")
  with pytest.raises(UserError, match=r"^--workdir '.*/f' is a file, not a folder; give a folder") as e:
    files.workdir(tmp_path / "f")
  with pytest.raises(UserError, match=r"^--workdir '.*/f/sub/run' cannot be created: '.*/f' is a file"):
    files.workdir(tmp_path / "f" / "sub" / "run")
  for out in (tmp_path / "f" / "s.npz", tmp_path / "f" / "sub" / "pngs"):
    with pytest.raises(UserError, match=rf"^--output '{out}' cannot be written: '{tmp_path / 'f'}' is a file"):
      files.output(out)
  assert "\n" not in str(e.value)
  assert sorted(os.listdir(tmp_path)) == ["d", "f"] and (tmp_path / "f").read_text() == "keep me"
