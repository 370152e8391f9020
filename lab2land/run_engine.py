"""The papermill engine of runs: nbclient's, with cheaper saves while the notebook runs.

papermill saves the whole notebook when it starts, before and after every cell and at the end,
each time through ``nbformat.writes`` (deep copy, schema validation, indented and sorted JSON):
~11 ms for the demo KPI notebook, 27 times, about a third of a warm run. Those saves exist so
that a run killed mid-way (``run_timeout``, a dead kernel) leaves the notebook as far as it
got, which lab2land reads to name the running cell and show the outputs so far. This engine
keeps every one of them but writes compact JSON (~0.5 ms), atomically (a kill mid-save leaves
the previous save, never half a file). papermill's final write, after the engine returns, is
its usual one, and the published notebook is written by lab2land from what it reads back.
"""

from __future__ import annotations

import json
import os

from papermill.engines import NBClientEngine, NotebookExecutionManager, papermill_engines

ENGINE = "lab2land"


class _RunManager(NotebookExecutionManager):
    def save(self, **kwargs) -> None:
        if kwargs.get("nb") is not None:  # as papermill's catch_nb_assignment does
            self.nb = kwargs["nb"]
        if not self.output_path:
            return super().save()
        tmp = f"{self.output_path}.saving"
        try:
            with open(tmp, "w", encoding="utf-8") as fh:
                fh.write(json.dumps(self.nb, ensure_ascii=False))  # one C call; json.dump streams in Python
        except (TypeError, ValueError):  # not plain JSON (never seen): papermill's own save
            return super().save()
        os.replace(tmp, self.output_path)
        self.last_save_time = self.now()


class RunEngine(NBClientEngine):
    """``NBClientEngine`` with :class:`_RunManager`; papermill's ``Engine.execute_notebook``
    otherwise (it names its manager class in the body, so the body is repeated here)."""

    @classmethod
    def execute_notebook(cls, nb, kernel_name, output_path=None, progress_bar=True, log_output=False,
                         autosave_cell_every=30, **kwargs):
        nb_man = _RunManager(nb, output_path=output_path, progress_bar=progress_bar, log_output=log_output,
                             autosave_cell_every=autosave_cell_every)
        nb_man.notebook_start()
        try:
            cls.execute_managed_notebook(nb_man, kernel_name, log_output=log_output, **kwargs)
        finally:
            nb_man.cleanup_pbar()
            nb_man.notebook_complete()
        return nb_man.nb


papermill_engines.register(ENGINE, RunEngine)
