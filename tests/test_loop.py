"""The training settings every trainer shares are checked once, with the same message for each kind of run."""

import jax
import pytest
from helpers import smoke_config, with_overrides

from aigc_jax.core.errors import UserError
from aigc_jax.tasks.classifier import train as cls_train
from aigc_jax.tasks.gan import train
from aigc_jax.tasks.image2image import train as i2i_train
from configs import classifier as classifier_configs
from configs import repair as repair_configs

TRAINERS = {
    "gan": (train.validate, smoke_config),
    "classifier": (cls_train.validate, lambda: classifier_configs.get_config("smoke")),
    "repair": (i2i_train.validate, lambda: repair_configs.get_config("smoke")),
}


@pytest.mark.parametrize("kind", TRAINERS)
@pytest.mark.parametrize("overrides,message", [
    ({"train.parallel": "vmap"}, "config.train.parallel='vmap' is not one of ('pmap', 'jit')"),
    ({"train.batch_size": 6}, "config.train.batch_size=6 is not a positive multiple of the 4 device(s); "
                              "use a multiple of 4"),
    ({"train.batch_size": 0}, "config.train.batch_size=0 is not a positive multiple of the 4 device(s)"),
    ({"train.num_steps": 0}, "config.train.num_steps=0 must be positive"),
    ({"train.log_every": 0}, "config.train.log_every=0 must be positive"),
    ({"train.checkpoint_every": -1}, "config.train.checkpoint_every=-1 must be positive"),
    ({"train.keep_checkpoints": 0}, "config.train.keep_checkpoints=0 must be positive"),
    ({"optim.schedule": "step"}, "config.optim.schedule='step' is not one of constant, cosine, linear"),
    ({"optim.schedule": "cosine", "optim.warmup_steps": 4, "train.num_steps": 4},
     "config.optim.warmup_steps=4 must be below config.train.num_steps=4"),
])
def test_shared_settings_are_refused_alike(kind, overrides, message):
  validate, config = TRAINERS[kind]
  validate(config(), 4)
  with pytest.raises(UserError) as e:
    validate(with_overrides(config(), **overrides), 4)
  assert str(e.value).startswith(message)


@pytest.mark.parametrize("kind", TRAINERS)
def test_batch_must_split_over_processes(kind, monkeypatch):
  validate, config = TRAINERS[kind]
  monkeypatch.setattr(jax, "process_count", lambda: 3)
  with pytest.raises(UserError, match=r"config.train.batch_size=8 does not split over 3 processes"):
    validate(with_overrides(config(), **{"train.batch_size": 8}), 4)


def test_trainer_specific_counts_must_be_positive():
  with pytest.raises(UserError, match=r"config.train.sample_every=0 must be positive"):
    train.validate(smoke_config(**{"train.sample_every": 0}), 4)
  with pytest.raises(UserError, match=r"config.train.sample_every=0 must be positive"):
    i2i_train.validate(with_overrides(repair_configs.get_config("smoke"), **{"train.sample_every": 0}), 4)
  classifier = classifier_configs.get_config("smoke")
  with pytest.raises(UserError, match=r"config.classifier.eval_every=0 must be positive"):
    cls_train.validate(with_overrides(classifier, **{"classifier.eval_every": 0}), 4)
  with pytest.raises(UserError, match=r"config.classifier.eval_batch_size=10 is not a positive multiple of the 4"):
    cls_train.validate(with_overrides(classifier_configs.get_config("smoke"), **{"classifier.eval_batch_size": 10}), 4)
