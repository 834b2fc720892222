import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForMaskedLM, AutoTokenizer

from ose.arch import Arch, Embedding, build_model
from ose.data.prepare import load_blocks, save_blocks
from ose.training.loop import CHECKPOINT
from ose.training.pretraining import (
    HISTORY,
    PretrainJob,
    check_loads,
    final_evaluation,
    first_step_grad_ratio,
    initial_student,
    kd_step_loss,
    launch,
    write_job,
)
from ose.training.source_model import save_pretrained

EMB = Embedding(vocab_size=30522, max_positions=24, type_vocab_size=2)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, minilm_path):
    root = tmp_path_factory.mktemp("pretrain")
    tokenizer = AutoTokenizer.from_pretrained(minilm_path)
    teacher = build_model(Arch(2, 4, 16, 23), EMB, head="mlm", seed=0)
    save_pretrained(teacher, tokenizer, root / "teacher")
    ids = torch.randint(1000, 30522, (41, 13), generator=torch.Generator().manual_seed(0))
    ids[:, 0], ids[:, -1] = tokenizer.cls_token_id, tokenizer.sep_token_id
    save_blocks(root / "corpus", {"train": ids[:33], "heldout": ids[33:]}, {"source": "random ids"})
    return root


def make_job(root, name, steps=6, beta=0.5, init="random"):
    return PretrainJob(
        # the inherited ξ keeps the teacher's head size (16 / 4 = 12 / 3): 3 of its 4 heads
        arch="D1-A3-H12-I7" if init == "inherited" else "D1-A3-H15-I7",
        embedding=asdict(EMB),
        teacher_dir=str(root / "teacher"),
        corpus_dir=str(root / "corpus"),
        out_dir=str(root / name / "student"),
        checkpoint_dir=str(root / name / "checkpoints"),
        config={
            "steps": steps,
            "batch_size": 4,
            "lr": 2e-3,
            "warmup_steps": 1,
            "checkpoint_every": 2,
            "eval_every": 3,
            "eval_blocks": 8,
        },
        seed=5,
        weights={"alpha": 0.1, "beta": beta, "temperature": 2.0},
        threads=1,
        init=init,
        inherit={"layers": "bottom", "every": None, "calibration_blocks": 5} if init == "inherited" else None,
    )


def weights(job):
    return load_file(os.path.join(job.out_dir, "model.safetensors"))


def test_pretraining_saves_a_loadable_student(workdir):
    job = make_job(workdir, "plain")
    history = launch(job, progress=False)
    assert check_loads(job.out_dir) == Arch(1, 3, 15, 7)
    assert [h["step"] for h in history if "masked_acc" in h] == [3, 6]
    assert final_evaluation(history)["masked_tokens"] > 0
    assert first_step_grad_ratio(history) > 0  # recorded before training, kept by a cached re-run
    assert first_step_grad_ratio(launch(job, progress=False)) == first_step_grad_ratio(history)
    untimed = [{k: v for k, v in h.items() if k != "seconds"} for h in history]
    assert json.loads((workdir / "plain" / "student" / HISTORY).read_text()) == untimed
    assert json.loads((workdir / "plain" / "checkpoints" / HISTORY).read_text()) == history


def student_files(job) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(Path(job.out_dir).iterdir())}


def test_identical_retrain_gives_identical_student_folder(workdir):
    """The student folder is a dependency of later stages: no wall-clock time may enter it."""
    first = make_job(workdir, "retrain_a")
    launch(first, progress=False)
    again = replace(first, checkpoint_dir=str(workdir / "retrain_b" / "checkpoints"))
    shutil.rmtree(first.out_dir)
    launch(again, progress=False)  # from scratch: another checkpoint folder
    a = student_files(again)
    launch(first, progress=False)  # resumes the first run's final checkpoint
    assert student_files(first) == a


def test_a_changed_teacher_retrains_the_student(workdir, capsys):
    """A checkpoint distilled from another teacher is never resumed (it once was, silently)."""
    root = workdir / "teacher_change"
    shutil.copytree(workdir / "teacher", root / "teacher")
    job = replace(make_job(workdir, "teacher_change", steps=4), teacher_dir=str(root / "teacher"))
    launch(job, progress=False)
    old = weights(job)
    tokenizer = AutoTokenizer.from_pretrained(job.teacher_dir)
    other = build_model(Arch(2, 4, 16, 23), EMB, head="mlm", seed=1)
    save_pretrained(other, tokenizer, job.teacher_dir)
    capsys.readouterr()
    history = launch(job, progress=False)
    assert "starting over" in capsys.readouterr().out
    assert [h["step"] for h in history if "loss" in h] == [1, 2, 3, 4]
    fresh = replace(job, checkpoint_dir=str(root / "fresh"), out_dir=str(root / "fresh_student"))
    launch(fresh, progress=False)
    assert any(not torch.equal(old[k], weights(job)[k]) for k in old)
    for key, value in weights(fresh).items():
        torch.testing.assert_close(weights(job)[key], value, rtol=0, atol=0, msg=key)


def test_mlm_only_arm_ignores_the_teacher_weights(workdir, capsys):
    """The MLM-only control does not read the teacher's weights, so a new teacher does not reset it."""
    root = workdir / "mlm_keep"
    shutil.copytree(workdir / "teacher", root / "teacher")
    job = replace(make_job(workdir, "mlm_keep", steps=4, beta=0.0), teacher_dir=str(root / "teacher"))
    launch(job, progress=False)
    tokenizer = AutoTokenizer.from_pretrained(job.teacher_dir)
    save_pretrained(build_model(Arch(2, 4, 16, 23), EMB, head="mlm", seed=1), tokenizer, job.teacher_dir)
    capsys.readouterr()
    launch(job, progress=False)
    assert "resuming" in capsys.readouterr().out


def test_mlm_only_baseline_never_calls_the_teacher(workdir, monkeypatch):
    """The MLM-only control trains without a teacher: no teacher model is loaded, none runs."""
    import ose.training.pretraining as pretraining

    loaded = []
    real = pretraining.AutoModelForMaskedLM.from_pretrained
    monkeypatch.setattr(
        pretraining.AutoModelForMaskedLM,
        "from_pretrained",
        lambda *a, **k: loaded.append(a) or real(*a, **k),
    )
    job = make_job(workdir, "mlm_only", beta=0.0)
    assert not job.uses_teacher
    history = launch(job, progress=False)
    assert loaded == [] and any("loss" in h for h in history)
    kd = make_job(workdir, "kd_loads", steps=1)
    launch(kd, progress=False)
    assert len(loaded) == 1  # the check can fail: a KD arm loads its teacher through the same call


def test_batch_must_split_over_processes():
    with pytest.raises(ValueError, match="divisible by the number of processes 3"):
        kd_step_loss(torch.zeros(4, 5, dtype=torch.long), 4, None, 10, None, None, rank=0, world=3)


@pytest.mark.slow
@pytest.mark.parametrize("init", ["random", "inherited"])
def test_killed_run_resumes_to_the_same_student(workdir, init):
    straight = make_job(workdir, f"straight-{init}", steps=40, init=init)
    launch(straight, progress=False)

    killed = make_job(workdir, f"killed-{init}", steps=40, init=init)
    job_path = write_job(killed, workdir / f"killed-{init}.json")
    process = subprocess.Popen(
        [sys.executable, "-m", "ose.training.pretraining", str(job_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    checkpoint = workdir / f"killed-{init}" / "checkpoints" / CHECKPOINT
    deadline = time.monotonic() + 120
    while not checkpoint.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait()
    step = torch.load(checkpoint, weights_only=False)["step"]
    assert step < 40, "the run must have been interrupted"
    assert not (workdir / f"killed-{init}" / "student").exists()
    launch(killed, progress=False)  # resumes from the checkpoint
    a, b = weights(straight), weights(killed)
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)


def test_inherited_arm_starts_from_the_teacher_and_saves_a_loadable_student(workdir):
    """The inherited init is the teacher's slice (not the random init), deterministic, and trains."""
    teacher = AutoModelForMaskedLM.from_pretrained(workdir / "teacher")
    job = make_job(workdir, "inherited", init="inherited")
    train_blocks = load_blocks(job.corpus_dir)[0]["train"]
    first = initial_student(job, teacher, train_blocks, EMB)
    again = initial_student(job, teacher, train_blocks, EMB)
    random_init = initial_student(replace(job, init="random", inherit=None), teacher, train_blocks, EMB)
    word = "bert.embeddings.word_embeddings.weight"
    torch.testing.assert_close(first.state_dict()[word], again.state_dict()[word], rtol=0, atol=0)
    assert not torch.equal(first.state_dict()[word], random_init.state_dict()[word])
    # the word embedding's columns are a subset of the teacher's columns (one set of H dimensions)
    teacher_columns = {tuple(col.tolist()) for col in teacher.state_dict()[word][:50].T}
    assert all(tuple(col.tolist()) in teacher_columns for col in first.state_dict()[word][:50].T)
    history = launch(job, progress=False)
    assert [h["step"] for h in history if "masked_acc" in h] == [3, 6]
    assert check_loads(job.out_dir) == Arch.parse(job.arch)


def test_unknown_init_is_refused(workdir):
    job = make_job(workdir, "bad", init="pruned")
    with pytest.raises(ValueError, match="init must be 'random' or 'inherited'"):
        initial_student(job, None, torch.zeros(3, 4, dtype=torch.long), EMB)


@pytest.mark.slow
def test_two_processes_train_with_ddp(workdir):
    job = replace(make_job(workdir, "ddp", steps=4), threads=1)
    history = launch(job, nproc=2, progress=False)
    assert check_loads(job.out_dir) == Arch(1, 3, 15, 7)
    assert [h["step"] for h in history if "loss" in h] == [1, 2, 3, 4]


def test_kd_arms_share_the_teachers_states_without_changing_a_bit(workdir):
    """The second KD arm reads the teacher's encoder states the first computed, step by step, and
    trains exactly the student a cold run trains (the teacher runs once per step for both)."""
    from ose.training import pretraining as pretrain

    pretrain.TEACHER_STATES.__init__()
    launch(make_job(workdir, "share_random"), progress=False)
    assert pretrain.TEACHER_STATES.hits == 1  # step 0, first computed for the gradient-norm ratio
    second = make_job(workdir, "share_inherited", init="inherited")
    launch(second, progress=False)
    assert pretrain.TEACHER_STATES.hits == 1 + 7  # the ratio's step 0 and every step of the second arm
    shared = weights(second)
    pretrain.TEACHER_STATES.__init__()
    cold = replace(
        second,
        out_dir=str(workdir / "share_cold" / "student"),
        checkpoint_dir=str(workdir / "share_cold" / "checkpoints"),
    )
    launch(cold, progress=False)
    assert pretrain.TEACHER_STATES.hits == 1
    cold_weights = weights(cold)
    assert cold_weights.keys() == shared.keys()
    assert all(torch.equal(cold_weights[k], shared[k]) for k in shared)


def test_other_batches_do_not_read_the_shared_states(workdir):
    from ose.training import pretraining as pretrain

    pretrain.TEACHER_STATES.__init__()
    launch(make_job(workdir, "share_seed5"), progress=False)
    other = replace(make_job(workdir, "share_seed6"), seed=6)
    launch(other, progress=False)
    assert pretrain.TEACHER_STATES.hits == 1  # its own step 0, computed for its gradient-norm ratio
