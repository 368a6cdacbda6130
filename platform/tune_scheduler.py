"""When trials stop: an ASHA scheduler that survives ``Tuner.restore``, and the test hook
that interrupts a sweep. Public Ray Tune APIs only (the scheduler hooks and callbacks
documented for custom schedulers)."""

from __future__ import annotations

import json
import logging
import os
import signal
from pathlib import Path

from ray.tune import Callback as TuneCallback
from ray.tune.schedulers import ASHAScheduler, TrialScheduler

__all__ = ["ResumableASHA", "InterruptAfter"]

log = logging.getLogger(__name__)


class ResumableASHA(ASHAScheduler):
    """ASHA whose rungs survive ``Tuner.restore``: Tune saves the searcher's state but not
    the scheduler's, so the finished trials' results (their ``result.json``) are replayed
    through ASHA's own hooks when a restored sweep re-adds them, as if they had just run
    (every result before ``max_t``, then their completion); later trials are then cut
    against the same records as before the interruption.

    A trial that reaches ``max_t`` is left to end by itself (its fine-tuning has max_t
    epochs, see :func:`~mixhic.platform.tune_search.plan_sweep`): ASHA stops it there
    (``stop_last_trials``, or the rung at max_t), which killed it right after its last
    report, before its test evaluation, its final metrics and the end of its MLflow runs
    (left RUNNING)."""

    def __init__(self, *, time_attr: str = "training_iteration", max_t: int = 100,
                 **kwargs) -> None:
        super().__init__(time_attr=time_attr, max_t=max_t, **kwargs)
        self.time_attr, self.max_t = time_attr, max_t  # ours: ASHA keeps its copies private

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        if result.get(self.time_attr, 0) >= self.max_t:
            return TrialScheduler.CONTINUE
        return super().on_trial_result(tune_controller, trial, result)

    def on_trial_add(self, tune_controller, trial) -> None:
        super().on_trial_add(tune_controller, trial)
        if trial.status != "TERMINATED":
            return
        results = _saved_results(Path(trial.local_path or "") / "result.json")
        for result in results:  # what ASHA's on_trial_result saw while the trial ran
            if result.get(self.time_attr, 0) < self.max_t:
                super().on_trial_result(tune_controller, trial, result)
        if results:  # and its last result, as Tune hands it over when a trial completes
            super().on_trial_complete(tune_controller, trial, results[-1])


def _saved_results(path: Path) -> list[dict]:
    """The results a trial reported, from its ``result.json`` (one JSON object a line;
    unreadable lines skipped); [] when there is none."""
    if not path.is_file():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


class InterruptAfter(TuneCallback):
    """Test hook: interrupt the sweep (as Ctrl+C does) once ``n`` trials have finished;
    fires once per sweep directory (a marker file), so the resumed sweep runs through."""

    def __init__(self, n: int, marker: str) -> None:
        self.n, self.marker, self.done = n, marker, 0

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.done += 1
        if self.done >= self.n and not os.path.exists(self.marker):
            Path(self.marker).parent.mkdir(parents=True, exist_ok=True)
            Path(self.marker).write_text("interrupted\n")
            log.warning("run.interrupt_after_trials=%d: interrupting the sweep", self.n)
            os.kill(os.getpid(), signal.SIGUSR1)
