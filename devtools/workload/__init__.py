"""Realistic synthetic traffic for Zhangqiu: the appeals of a district, seedable and deterministic.

    from devtools.workload import Workload
    for submission in Workload(seed=7).take(100): ...
    python -m devtools.workload --count 5          # print a few submissions as JSON lines

- ``places``: towns weighted by (synthetic) population, committees, grid points, addresses
- ``topics``: what appeals are about, with each feed's category code, appeal types and Chinese templates
- ``generator``: ``Workload`` (the stream: source mix, daily/weekly curves, duplicates, follow-up plans)
- ``followups``: ``FollowUpDriver`` (carries plans out over HTTP: 签收, 退单, 延期, 答复, 回访评价)

Used by ``make run``'s demo trickle (devtools/run.py) and by ``bench/e2e.py``.
"""

from devtools.workload.generator import (
    CST,
    Extension,
    Feedback,
    FollowUpPlan,
    Submission,
    Workload,
    WorkloadMix,
)

__all__ = ["CST", "Extension", "Feedback", "FollowUpPlan", "Submission", "Workload", "WorkloadMix"]
