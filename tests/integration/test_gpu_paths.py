"""The GPU paths on a CPU machine: ``trainer=gpu`` plans in a dry run, the speed-only keys reach the stage's
module, and a stage trained with ``train.compile=true`` resumes (with or without compile) to the weights of an
uninterrupted run, under the same stage hash."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import compose
from safetensors.torch import load_file

import cpt_experiments.pipeline.stage_runner as runner
from cpt_experiments.errors import ConfigError
from cpt_experiments.pipeline.failures import StageFailed
from cpt_experiments.train import train

ONE_STAGE = [
    "experiment=cpt",
    "experiment.union=null",
    "~experiment.stages.continual",
    "budget.pretrain_tokens=16384",
    "train.checkpoint_every_n_steps=8",
]  # 32 steps


def _cfg(tmp: Path, data_dir: Path, smoke_cache: Path, *overrides: str):
    return compose(
        "scale=smoke", f"paths.data_dir={data_dir}", f"paths.output_dir={tmp / 'out'}", f"paths.cache_dir={smoke_cache}",
        f"paths.results_dir={tmp / 'results'}", *overrides,
    )  # fmt: skip


@pytest.mark.parametrize("trainer", ["gpu", "ddp", "fsdp"])
def test_gpu_trainers_plan_in_a_dry_run_without_a_gpu(tmp_path, data_dir, smoke_cache, trainer):
    summary = train(
        _cfg(tmp_path, data_dir, smoke_cache, "experiment=quickstart", f"trainer={trainer}", "dry_run=true")
    )
    assert any(line.startswith("pretrain ") for line in summary.lines)
    if not torch.cuda.is_available():
        assert "no gpu on this machine: throughput not measured" in summary.lines[-1]
    assert not list((tmp_path / "out").glob("stages/*"))  # nothing trained


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is visible")
def test_gpu_trainer_without_a_gpu_fails_in_one_line_before_any_work(tmp_path, data_dir, smoke_cache):
    with pytest.raises(ConfigError, match=r"^trainer: cannot build pytorch_lightning.Trainer: ") as err:
        train(_cfg(tmp_path, data_dir, smoke_cache, "experiment=quickstart", "trainer=gpu"))
    assert "\n" not in str(err.value)


class _Crash(RuntimeError):
    pass


def _final(summary) -> dict[str, torch.Tensor]:
    return load_file(str(Path(summary.stages["pretrain"]["checkpoint"]) / "model.safetensors"))


def _train_killed_then_resumed(tmp, data_dir, smoke_cache, monkeypatch, first: list[str], then: list[str]):
    """Train ONE_STAGE with ``first`` overrides, crash after the step-16 checkpoint, resume with ``then``."""
    seen: list[dict] = []

    class Recording(runner.CausalLMModule):
        def __init__(self, *args, **kwargs):
            seen.append({k: kwargs[k] for k in ("attention", "compile", "gradient_checkpointing")})
            super().__init__(*args, **kwargs)

    class CrashingCheckpoint(runner.ResumeCheckpoint):
        def _save(self, trainer, step):
            super()._save(trainer, step)
            if step == 16:
                raise _Crash("simulated crash after the step-16 checkpoint")

    monkeypatch.setattr(runner, "CausalLMModule", Recording)
    monkeypatch.setattr(runner, "ResumeCheckpoint", CrashingCheckpoint)
    with pytest.raises(StageFailed) as failed:
        train(_cfg(tmp, data_dir, smoke_cache, *ONE_STAGE, *first))
    assert isinstance(failed.value.cause, _Crash)
    monkeypatch.setattr(runner, "ResumeCheckpoint", CrashingCheckpoint.__mro__[1])
    resumed = train(_cfg(tmp, data_dir, smoke_cache, *ONE_STAGE, *then))
    segments = [
        (s["start"], s["end"]) for s in runner.StageDir(Path(resumed.stages["pretrain"]["dir"])).summary()["segments"]
    ]
    assert segments == [(0, 16), (16, 32)]  # resumed from the checkpoint, not retrained
    return resumed, seen


def _eager_backend_compile(monkeypatch) -> list[torch.nn.Module]:
    """``nn.Module.compile`` through TorchDynamo with the ``eager`` backend: the compiled-forward path (graph
    capture, guards, recompiles in eval mode) in seconds instead of the minutes Inductor's C++ build takes."""
    compiled: list[torch.nn.Module] = []
    original = torch.nn.Module.compile

    def compile_eager(self, *args, **kwargs):
        compiled.append(self)
        return original(self, backend="eager")

    monkeypatch.setattr(torch.nn.Module, "compile", compile_eager)
    return compiled


def test_compiled_stage_resumes_without_compile_to_the_uninterrupted_weights(
    tmp_path, data_dir, smoke_cache, monkeypatch
):
    # The reference uses the same attention kernel: sdpa and eager differ in rounding, and Adam turns the pure
    # rounding noise of gradients that are zero in exact arithmetic (the key biases) into LR-sized steps.
    reference = train(_cfg(tmp_path / "ref", data_dir, smoke_cache, *ONE_STAGE, "train.attention=eager"))
    compiled = _eager_backend_compile(monkeypatch)
    first = ["train.compile=true", "train.attention=eager", "train.gradient_checkpointing=true"]
    resumed, seen = _train_killed_then_resumed(
        tmp_path / "run", data_dir, smoke_cache, monkeypatch, first, ["train.attention=eager"]
    )
    assert seen == [{"attention": "eager", "compile": True, "gradient_checkpointing": True},
                    {"attention": "eager", "compile": False, "gradient_checkpointing": False}]  # fmt: skip
    assert len(compiled) == 1  # only the first segment compiled the model
    assert resumed.stages["pretrain"]["hash"] == reference.stages["pretrain"]["hash"]
    for key, value in _final(reference).items():
        torch.testing.assert_close(_final(resumed)[key], value, rtol=0, atol=1e-6, msg=key)


@pytest.mark.slow
def test_inductor_compiled_stage_trains_and_resumes(tmp_path, data_dir, smoke_cache, monkeypatch):
    """The real thing (Inductor, as on a GPU; minutes of C++ compilation on 2 cores): a compiled stage, crashed
    and resumed compiled, ends at the weights of an uninterrupted compiled run (Inductor's kernels round
    differently from eager ones, so the reference is compiled too)."""
    compiled = ["train.compile=true"]
    reference = train(_cfg(tmp_path / "ref", data_dir, smoke_cache, *ONE_STAGE, *compiled))
    resumed, seen = _train_killed_then_resumed(tmp_path / "run", data_dir, smoke_cache, monkeypatch, compiled, compiled)
    assert [s["compile"] for s in seen] == [True, True]
    for key, value in _final(reference).items():
        torch.testing.assert_close(_final(resumed)[key], value, rtol=0, atol=1e-6, msg=key)
