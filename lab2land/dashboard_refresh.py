"""Fresh data for a running ``serve``: new viewers get the snapshots the latest build published.

Every ``REFRESH_S`` the server reads each dashboard report's newest version manifest. When a
build published since the server started names data snapshots other than the ones the
dashboard runs with, the dashboard's default
notebook is prepared again with them (written atomically: Voila never reads half a notebook)
and its preheated pool is replaced by kernels that run the new notebook. A snapshot is named by
a manifest only once the build committed that version, after the snapshot was written, so no
viewer gets a half-loaded one. Viewers already connected keep their kernels, and their data.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
from pathlib import Path

from lab2land import dashboards as dash
from lab2land.config import Config

log = logging.getLogger("lab2land.serve")
REFRESH_S = float(os.environ.get("LAB2LAND_REFRESH_SECONDS", "5"))


def published_snapshots(config: Config, report: str) -> dict[str, str]:
    """Source name -> absolute snapshot path, as the report's newest version recorded them."""
    newest, newest_key = None, ""
    for manifest in (config.output_dir / report).glob("*/manifest.json"):
        try:
            data = json.loads(manifest.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # being replaced, or not a manifest: the next look will see it
        key = str(data.get("finished") or data.get("created") or "")
        if isinstance(data, dict) and data.get("sources") and key > newest_key:
            newest, newest_key = data, key
    snapshots = {}
    for record in (newest or {}).get("sources") or []:
        path = config.project_dir / str(record.get("path", ""))
        if isinstance(record.get("name"), str) and path.exists():
            snapshots[record["name"]] = str(path)
    return snapshots


class Refresher:
    """Watches the site and refreshes dashboards (module docstring); runs on the server's loop."""

    def __init__(self, config: Config, dashboards: dict[str, dash.Dashboard], runtime_dir: Path, kernel_manager):
        self.config, self.dashboards, self.runtime_dir = config, dashboards, runtime_dir
        self.kernel_manager = kernel_manager
        self._task: asyncio.Task | None = None
        # What the site held when the server started: the dashboards loaded their sources then,
        # so only a build published after that changes what they run with.
        self.seen = {name: self._published(name) for name in dashboards}

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(REFRESH_S)
            try:
                await self.refresh()
            except Exception:  # a bad manifest or a full disk must not stop the server
                log.exception("refreshing the dashboards' data failed")

    async def refresh(self) -> list[str]:
        """Refresh every dashboard whose published snapshots changed; return their names."""
        changed = []
        for name, dashboard in list(self.dashboards.items()):
            wanted = self._published(name)
            if not wanted or wanted == self.seen.get(name):
                continue
            self.seen[name] = wanted
            if all(dashboard.defaults.get(s) == p for s, p in wanted.items()):
                continue
            fresh = dataclasses.replace(dashboard, defaults={**dashboard.defaults, **wanted})
            dash.write_default(fresh, self.runtime_dir)
            self.dashboards[name] = fresh  # the handlers read this same dict
            await self._replace_pool(fresh.default_path)
            log.info("dashboard %r: new viewers get the data of the latest build", name)
            changed.append(name)
        return changed

    def _published(self, name: str) -> dict[str, str]:
        sources = self.dashboards[name].sources
        return {s: p for s, p in published_snapshots(self.config, name).items() if s in sources}

    async def _replace_pool(self, notebook: str) -> None:
        km = self.kernel_manager
        pools = getattr(km, "_pools", None)
        if pools is None or notebook not in pools:
            return
        old = pools.pop(notebook)
        km.fill_if_needed(delay=0, notebook_name=notebook)  # preheats with the new notebook
        for task in old:
            with contextlib.suppress(Exception):  # a kernel that failed to start: nothing to stop
                kernel_id = (await task)["kernel_id"]
                if kernel_id in km:
                    await km.shutdown_kernel(kernel_id)
