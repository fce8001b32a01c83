"""What a storage holds and what a run records about it, without its credentials.

Each run is a study named after its run directory (``nas.searches.api``), so one storage
can hold many runs: ``list_runs`` lists them (``nas runs list --storage URL``). Storage
passwords never reach ``run.json``, the report or the command line recorded there
(``masked``); a resume takes the password from ``--storage`` or from PostgreSQL's
``PGPASSWORD``/``.pgpass``.
"""

from __future__ import annotations

import json
import re
from typing import Any

from nas.searches.store import (
    LOCK_PREFIX,
    open_storage,
)


def mask_text(text: str) -> str:
    """Every ``scheme://user:password@`` in ``text`` with the password masked."""
    return re.sub(r"(\w[\w+.-]*://[^:/@\s]+:)[^@\s]+@", r"\1***@", text)


def masked(info: dict[str, Any]) -> dict[str, Any]:
    """A copy of a run's info with every storage password masked."""
    return json.loads(mask_text(json.dumps(info, default=str)))


def list_runs(url: str) -> list[dict[str, Any]]:
    """The runs (studies) in a storage: name, trials by state, best value, owner."""
    import optuna

    storage = open_storage(url)
    studies = storage.get_all_studies()
    locks = {
        s.study_name[len(LOCK_PREFIX) :]: s
        for s in studies
        if s.study_name.startswith(LOCK_PREFIX)
    }
    rows = []
    for s in studies:
        if s.study_name.startswith(LOCK_PREFIX):
            continue
        trials = storage.get_all_trials(s._study_id, deepcopy=False)
        counts: dict[str, int] = {}
        for t in trials:
            counts[t.state.name.lower()] = counts.get(t.state.name.lower(), 0) + 1
        done = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE and t.values]
        sign = 1 if s.directions[0] == optuna.study.StudyDirection.MAXIMIZE else -1
        best = max((t.values[0] for t in done), key=lambda v: sign * v, default=None)
        lock = locks.get(s.study_name)
        owner = (lock.system_attrs.get("owner") or {}) if lock is not None else {}
        rows.append(
            {
                "run": s.study_name,
                "trials": len(trials),
                "states": counts,
                "best": best,
                "owner": f"pid {owner.get('pid')} on {owner.get('host')}" if owner else "",
            }
        )
    return rows
