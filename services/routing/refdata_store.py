"""Reference data in routing's database: load a bundle as a new rule-set version (audited), read the
active one back, and keep an indexed copy in memory that follows the active version."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

import sqlalchemy as sa
import structlog
from sqlalchemy.ext.asyncio import AsyncConnection

from services.routing.domain.decision import ReferenceData
from services.routing.refdata_files import Bundle, build_reference_data, validate
from services.routing.tables import (
    areas,
    categories,
    departments,
    grids,
    refdata_audit,
    rule_sets,
    rules,
)

log = structlog.get_logger(__name__)
_LOCK_KEY = 0x524F555445  # "ROUTE": one loader at a time


@dataclass(frozen=True)
class LoadResult:
    version: int
    created: bool
    changes: dict[str, Any]


def _diff(old: Bundle | None, new: Bundle) -> dict[str, Any]:
    """What a new version changes, table by table (ids added, removed, changed)."""

    def keyed(rows: list[dict[str, Any]], key: str) -> dict[str, dict[str, Any]]:
        return {str(r[key]): r for r in rows}

    changes: dict[str, Any] = {}
    for table, key in (("rules", "id"), ("departments", "code"), ("categories", "code"), ("areas", "code")):
        before = keyed(getattr(old, table), key) if old else {}
        after = keyed(getattr(new, table), key)
        entry = {
            "added": sorted(set(after) - set(before)),
            "removed": sorted(set(before) - set(after)),
            "changed": sorted(k for k in set(after) & set(before) if after[k] != before[k]),
        }
        changes[table] = {
            k: v if len(v) <= 50 else [*v[:50], f"… {len(v) - 50} more"] for k, v in entry.items()
        }
    before_grids = keyed(old.grids, "code") if old else {}
    after_grids = keyed(new.grids, "code")
    changes["grids"] = {
        "added": len(set(after_grids) - set(before_grids)),
        "removed": len(set(before_grids) - set(after_grids)),
        "changed": sum(1 for k in set(after_grids) & set(before_grids) if after_grids[k] != before_grids[k]),
    }
    return changes


def bundle_from_json(data: dict[str, Any]) -> Bundle:
    return Bundle(**data)


async def active_bundle(conn: AsyncConnection) -> tuple[int, Bundle] | None:
    row = (
        await conn.execute(sa.select(rule_sets.c.version, rule_sets.c.bundle).where(rule_sets.c.active))
    ).first()
    return (row.version, bundle_from_json(row.bundle)) if row else None


async def active_version(conn: AsyncConnection) -> int | None:
    return (await conn.execute(sa.select(rule_sets.c.version).where(rule_sets.c.active))).scalar()


async def load_refdata(conn: AsyncConnection, bundle: Bundle, actor: str) -> LoadResult:
    """Make ``bundle`` the active rule set: a new version if its content differs, else nothing new.

    Either way the attempt is recorded in ``refdata_audit``.
    """
    await conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_LOCK_KEY)))
    current = await active_bundle(conn)
    digest = bundle.digest()
    if current is not None and current[1].digest() == digest:
        await _audit(conn, actor, "unchanged", current[0], {"digest": digest})
        return LoadResult(current[0], False, {})
    existing = (
        await conn.execute(sa.select(rule_sets.c.version).where(rule_sets.c.digest == digest))
    ).scalar()
    changes = _diff(current[1] if current else None, bundle)
    await conn.execute(sa.update(rule_sets).where(rule_sets.c.active).values(active=False))
    if existing is not None:  # going back to an earlier version re-activates it
        version = int(existing)
        await conn.execute(sa.update(rule_sets).where(rule_sets.c.version == version).values(active=True))
    else:
        version = (
            int(
                (
                    await conn.execute(sa.select(sa.func.coalesce(sa.func.max(rule_sets.c.version), 0)))
                ).scalar()
            )
            + 1
        )
        await conn.execute(
            sa.insert(rule_sets).values(
                version=version,
                label=bundle.label,
                digest=digest,
                active=True,
                loaded_by=actor,
                bundle=asdict(bundle),
            )
        )
        await conn.execute(
            sa.insert(rules),
            [
                {
                    "rule_set_version": version,
                    "id": r["id"],
                    "category": r["category"],
                    "level": r["level"],
                    "area": r.get("area"),
                    "assignees": r["assignees"],
                }
                for r in bundle.rules
            ],
        )
    for table, rows in (
        (areas, bundle.areas),
        (departments, bundle.departments),
        (categories, bundle.categories),
        (grids, bundle.grids),
    ):
        await conn.execute(sa.delete(table))
        await conn.execute(sa.insert(table), rows)
    await _audit(
        conn, actor, "loaded", version, {"digest": digest, "label": bundle.label, "changes": changes}
    )
    log.info("routing.refdata_loaded", version=version, actor=actor, label=bundle.label)
    return LoadResult(version, True, changes)


async def load_rules(
    conn: AsyncConnection, rules: list[dict[str, Any]], label: str, actor: str
) -> LoadResult:
    """Make a changed responsibility matrix active, keeping the active version's other tables.

    Same content as the active version: no new version. Same as an earlier one: that one is re-activated.
    Raises ReferenceDataMissing when nothing is loaded yet, ValueError when a rule names an unknown
    category, area or department.
    """
    await conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_LOCK_KEY)))  # re-entrant in this transaction
    current = await active_bundle(conn)
    if current is None:
        raise ReferenceDataMissing("no rule set loaded: run `python -m services.routing load-refdata`")
    bundle = replace(current[1], label=label, rules=rules)
    validate(bundle)
    return await load_refdata(conn, bundle, actor)


async def _audit(conn: AsyncConnection, actor: str, action: str, version: int | None, detail: dict) -> None:
    await conn.execute(
        sa.insert(refdata_audit).values(actor=actor, action=action, rule_set_version=version, detail=detail)
    )


async def is_empty(conn: AsyncConnection) -> bool:
    return (await conn.execute(sa.select(sa.func.count()).select_from(rule_sets))).scalar_one() == 0


class ReferenceDataMissing(ConnectionError):
    """No rule set is loaded yet. A ConnectionError, so the consumer loop waits and retries instead of
    dead-lettering good events."""


class RefDataCache:
    """The active rule set, indexed once per version.

    The first ``get`` in a transaction asks the database which version is active (one query on a table
    of a few rows), so a decision uses the version active when its transaction began: a rule set loaded
    by any process applies to the next batch of every running replica, with no restart. Later calls in
    the same transaction (the other events of a consumer batch) reuse the answer. The indexed copy is
    rebuilt only when the version changes.
    """

    def __init__(self) -> None:
        self._ref: ReferenceData | None = None
        self._checked_in: object | None = None  # the transaction that last asked (held, so never reused)

    async def get(self, conn: AsyncConnection) -> ReferenceData:
        transaction = conn.sync_connection.get_transaction() if conn.sync_connection else None
        if self._ref is not None and transaction is not None and transaction is self._checked_in:
            return self._ref
        version = await active_version(conn)
        if version is None:
            raise ReferenceDataMissing("no rule set loaded: run `python -m services.routing load-refdata`")
        if self._ref is None or self._ref.rule_set.version != version:
            loaded = await active_bundle(conn)
            if loaded is None:
                raise ReferenceDataMissing("no rule set is active")
            self._ref = build_reference_data(loaded[1], loaded[0])
            log.info("routing.refdata_active", version=loaded[0], grids=len(self._ref.grids))
        self._checked_in = transaction
        return self._ref
