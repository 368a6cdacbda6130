"""Task and mode facts live in ``mixhic.models.tasks`` only, and every layer agrees."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from mixhic.models import tasks

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("task,mode,field", [
    ("hicc", "bimodal", "task"), ("loops", "bimodal2", "mode"), ("hic", "bimodal", "mode"),
    ("hic", "nonpre", "mode"),
])
def test_check_task_mode_names_the_field(task, mode, field):
    with pytest.raises(ValueError, match=rf"^{field}:"):
        tasks.check_task_mode(task, mode)


def test_every_trainable_pair_passes():
    ok = [(t, m) for t in tasks.TASKS for m in tasks.MODES
          if t != "hic" or m in tasks.HIC_TASK_MODES]
    for t, m in ok:
        tasks.check_task_mode(t, m)
    assert len(ok) == 3 * 4 - 2


def test_layers_agree_with_the_facts():
    from mixhic.core.config import load_config
    from mixhic.models import FinetuneModel, get_preset
    from mixhic.platform.train_config import FinetuneConfig
    from mixhic.serve.engine import MODES_WITH_HIC

    cfg = get_preset("tiny", window_bins=20, epi_bins=40, n_tracks=1)
    for mode in tasks.MODES:
        assert FinetuneModel(cfg, "loops", mode).uses_hic == (mode in tasks.HIC_INPUT_MODES)
        fc = load_config("demo-finetune", FinetuneConfig,
                         {"mode": mode, "pretrained": "/models/pre", "data.data_dir": "/d"})
        assert fc.uses_pretrained == (mode in tasks.PRETRAINED_MODES)
    assert MODES_WITH_HIC == tasks.HIC_INPUT_MODES


def test_no_other_module_spells_the_facts_out():
    """A literal tuple of the task names or of a mode set anywhere else is a second copy
    of a rule that will drift."""
    facts = {tasks.TASKS, tasks.MODES, tasks.HIC_INPUT_MODES, tasks.HIC_TASK_MODES,
             tasks.PRETRAINED_MODES}
    copies = []
    for folder in ("models", "platform", "pipelines", "serve"):
        for path in (ROOT / folder).rglob("*.py"):
            if path.name == "tasks.py" and path.parent.name == "models":
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Tuple) and all(
                        isinstance(e, ast.Constant) for e in node.elts):
                    value = tuple(e.value for e in node.elts)
                    if value in facts:
                        copies.append(f"{path.relative_to(ROOT)}:{node.lineno} {value}")
    assert not copies, copies
