"""Fine-tuning tasks and modes: the one place these facts live (pure Python, no torch).

==========  ==============================================  ============  ===============
mode        inputs                                          reads Hi-C    loads pretrained
==========  ==============================================  ============  ===============
bimodal     epigenomic tracks + the Hi-C window              yes           yes (given one)
nonpre      the same, trained from scratch                   yes           never
infer       tracks; Hi-C tokens inferred from them           no            yes (given one)
epi         tracks only                                      no            yes (its epi
                                                                                encoder)
==========  ==============================================  ============  ===============

Task ``hic`` predicts the map, so only modes that do not read it (``infer``, ``epi``)
can learn it.
"""

from __future__ import annotations

__all__ = ["TASKS", "MODES", "HIC_INPUT_MODES", "HIC_TASK_MODES", "PRETRAINED_MODES",
           "check_task_mode", "observed_pixels"]

TASKS = ("hic", "loops", "cage")
MODES = ("bimodal", "nonpre", "infer", "epi")
HIC_INPUT_MODES = ("bimodal", "nonpre")  # the forward reads the Hi-C window
HIC_TASK_MODES = ("infer", "epi")  # modes that can learn task hic (the map is the target)
PRETRAINED_MODES = ("bimodal", "infer", "epi")  # load a given pretrained model


def check_task_mode(task: str, mode: str) -> None:
    """ValueError naming the field when ``task``/``mode`` is unknown or the pair cannot
    train (task hic in a mode that takes the map as input)."""
    if task not in TASKS:
        raise ValueError(f"task: unknown task {task!r}; choose one of {', '.join(TASKS)}")
    if mode not in MODES:
        raise ValueError(f"mode: unknown mode {mode!r}; choose one of {', '.join(MODES)}")
    if task == "hic" and mode not in HIC_TASK_MODES:
        raise ValueError(f"mode: task 'hic' predicts the map from epigenomic tracks; mode "
                         f"{mode!r} would take the target as input (use "
                         f"{' or '.join(HIC_TASK_MODES)})")


def observed_pixels(hic):
    """Which pixels of Hi-C windows were observed: (..., W, W) numpy array or torch tensor
    -> bool of the same shape (and kind).

    A prepared window stores a masked bin (NaN balancing weight: unmappable, filtered) as
    a row or column of zeros, indistinguishable from "no contact" by value. A row or
    column with no contact in the whole window is read as such a bin, and its pixels as
    unobserved: the ``hic`` task's loss, metrics and distance baseline leave them out
    rather than score a prediction against a zero that was never measured (on the real
    GM12878 case they are 4 % of the pixels and cut the distance baseline's Pearson from
    0.855 to 0.783)."""
    nonzero = hic != 0
    rows = nonzero.any(-1)  # (..., W): x-anchor bins with a contact
    cols = nonzero.any(-2)  # (..., W): y-anchor bins
    return rows[..., :, None] & cols[..., None, :]
