"""One definition per concept: the params groups are the classes the code uses."""

import dataclasses
import typing

import pytest

from ose import configs
from ose.data import corpus, glue, tasks
from ose.params import Params, from_dict, render_profile
from ose.pipeline.checks import ConfigError


def test_name_lists_agree_with_their_implementations():
    assert configs.OWN_TASKS == tasks.OWN_TASKS
    assert configs.GLUE_TASKS == glue.GLUE_TASKS
    assert set(configs.CORPUS_NAMES) == set(corpus.CORPUS_NAMES)


def test_every_params_group_is_a_config_class():
    hints = typing.get_type_hints(Params)
    params = from_dict(render_profile("default"))
    for field in dataclasses.fields(Params):
        value = getattr(params, field.name)
        if dataclasses.is_dataclass(value):
            assert type(value).__module__ == "ose.configs", field.name
            assert type(value) is hints[field.name], field.name


def test_modules_reexport_the_same_classes():
    from ose.finetuning import classifier as finetune
    from ose.finetuning import comparison
    from ose.search import cost_model
    from ose.search import extraction as extract
    from ose.training import distill
    from ose.training import loop as training
    from ose.training import pretraining as pretrain
    from ose.training import source_model as teacher

    assert training.TrainConfig is configs.TrainConfig
    assert teacher.Teacher is configs.Teacher and pretrain.Pretrain is configs.Pretrain
    assert distill.KDWeights is configs.KDWeights and extract.Extract is configs.Extract
    assert cost_model.Costs is configs.Costs and comparison.FineTune is configs.FineTune
    assert finetune.FineTuneConfig is configs.FineTuneConfig


def test_a_config_error_names_the_field():
    with pytest.raises(ConfigError, match=r"^lr: must be in \(0, 1\], got 2.0$"):
        configs.TrainConfig(steps=3, lr=2.0)
    with pytest.raises(ConfigError, match=r"^batch_size: must be divisible by nproc \(3\), got 8$"):
        configs.Pretrain(steps=3, lr=1e-3, batch_size=8, nproc=3)


def test_finetune_group_gives_the_fit_configs():
    fine = from_dict(render_profile("default")).finetune
    source, student = fine.source_config(), fine.student_config()
    assert (source.lr, source.epochs, source.max_steps) == (fine.source_lr, fine.source_epochs, 120)
    assert student.max_steps is None, "a student trains its θ's epochs in full"
    assert student.eval_every == fine.eval_every
    for config in (source, student):
        assert (config.batch_size, config.max_len, config.dropout) == (
            fine.batch_size,
            fine.max_len,
            fine.dropout,
        )
