"""``lab2land rollback`` and ``lab2land unpin``: move a variant's latest without running anything.

Both take the publish lock (a build cannot interleave), write the report's pins atomically and
rewrite the site pages that show the latest (the report's pages, the index, the catalog): no
kernel starts and no version folder is written.
"""

from __future__ import annotations

from dataclasses import dataclass

from .build import write_site
from .cache import State
from .config import Config
from .errors import UsageError
from .pins import MAX_REASON, Pin, choose, current_user, latest_with_pins, read_pins, variant_of, write_pins
from .plan import report_variants
from .store import LOCK_WAIT_S, Store


@dataclass
class Rolled:
    """What a rollback did: ``variant`` of ``report`` now shows ``pin.version`` (was ``was``)."""

    report: str
    variant: str
    pin: Pin
    was: str | None


def _report(config: Config, name: str):
    if name not in config.reports:
        raise UsageError(f"unknown report {name!r} (valid: {', '.join(config.reports) or 'none defined'})")
    return config.reports[name]


def rollback(config: Config, report: str, version_id: str | None = None, *, variant: str | None = None,
             reason: str = "", wait_s: float = LOCK_WAIT_S) -> Rolled:
    """Pin ``version_id`` (default: the good version before the current latest) as the latest of
    its variant.

    Raises:
        UsageError: unknown report, variant or version; a failed version; nothing to roll back to.
        PublishLocked: a publish held the site for ``wait_s`` seconds.
    """
    settings = _report(config, report)
    if len(reason) > MAX_REASON:
        raise UsageError(f"--reason: at most {MAX_REASON} characters, got {len(reason)}")
    keys = [key for key, _, _ in report_variants(settings)]
    store = Store(config.output_dir)
    with store.lock(wait_s):
        versions, pins = store.versions(report), read_pins(store, report)
        key = variant_of(versions, keys, version_id, variant, report)
        current = latest_with_pins(versions, settings.promote_degraded, pins).get(key)
        chosen = choose(versions, current, key, version_id, report, settings.promote_degraded)
        pins[key] = Pin(version=chosen.version_id, by=current_user(), reason=reason)
        write_pins(store, report, pins)
        _rewrite(config, store)
    return Rolled(report, key, pins[key], current.version_id if current else None)


def unpin(config: Config, report: str, *, variant: str | None = None, wait_s: float = LOCK_WAIT_S) -> list[str]:
    """Return ``variant`` (every pinned variant by default) to "the newest good version";
    returns the variants unpinned.

    Raises:
        UsageError: unknown report or variant, or the variant is not pinned.
    """
    settings = _report(config, report)
    keys = [key for key, _, _ in report_variants(settings)]
    if variant is not None and variant not in keys:
        raise UsageError(f"{report}: unknown variant {variant!r} (valid: {', '.join(keys)})")
    store = Store(config.output_dir)
    with store.lock(wait_s):
        pins = read_pins(store, report)
        if variant is not None and variant not in pins:
            raise UsageError(f"{report}/{variant} is not pinned (pinned: {', '.join(pins) or 'none'})")
        gone = [variant] if variant is not None else sorted(pins)
        for key in gone:
            del pins[key]
        write_pins(store, report, pins)
        if gone:
            _rewrite(config, store)
    return gone


def _rewrite(config: Config, store: Store) -> None:
    state = State(config.project_dir)
    write_site(config, store, state, prune=False)
    state.save()
