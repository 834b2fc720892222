import pytest
from transformers.utils import logging as hf_logging

from ose.finetuning.classifier import load_encoder
from ose.pipeline.loading import quietly


def test_quietly_silences_transformers_and_restores_its_level():
    hf_logging.set_verbosity_warning()
    with quietly():
        assert hf_logging.get_verbosity() == hf_logging.ERROR
    assert hf_logging.get_verbosity() == hf_logging.WARNING
    with pytest.raises(RuntimeError), quietly():
        raise RuntimeError("boom")
    assert hf_logging.get_verbosity() == hf_logging.WARNING


def test_a_sentence_encoder_loads_without_a_load_report(minilm_path, capfd):
    """The source's checkpoint has a pooler the encoder drops: by design, so no report is printed."""
    load_encoder(minilm_path)
    captured = capfd.readouterr()
    assert "LOAD REPORT" not in captured.out + captured.err
