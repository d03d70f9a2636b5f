"""Reading the reference data files (services/routing/data/) into a ``Bundle`` of plain rows.

A bundle is what the loader stores and what the service indexes: the same shape whether it came from
the files or back from the database, and its digest says whether anything changed.
"""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import yaml
from shapely.geometry import shape

from services.routing.domain.decision import ReferenceData
from services.routing.domain.refdata import Area, Category, Department, Grid, RuleSet, parse_rules

DATA_DIR = Path(__file__).resolve().parent / "data"


@dataclass(frozen=True)
class Bundle:
    """Rows of every reference table, JSON-ready."""

    label: str
    areas: list[dict[str, Any]]
    departments: list[dict[str, Any]]
    categories: list[dict[str, Any]]
    grids: list[dict[str, Any]]  # geometry as a GeoJSON dict
    rules: list[dict[str, Any]]

    def digest(self) -> str:
        body = {k: getattr(self, k) for k in ("areas", "departments", "categories", "grids", "rules")}
        return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()

    def reference_data(self, version: int) -> ReferenceData:
        return build_reference_data(self, version)


def _split(value: str | None) -> list[str]:
    return [v for v in (value or "").split("|") if v]


def _csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def read_bundle(data_dir: Path = DATA_DIR) -> Bundle:
    """Load the data folder, checking that every reference between tables resolves."""
    areas = [
        {
            "code": r["code"],
            "name": r["name"],
            "level": r["level"],
            "parent_code": r["parent_code"] or None,
            "aliases": _split(r["aliases"]),
            "source": r["source"],
        }
        for r in _csv(data_dir / "areas.csv")
    ]
    departments = [
        {k: r[k] for k in ("code", "name_zh", "name_en", "kind", "status", "source")}
        for r in _csv(data_dir / "departments.csv")
    ]
    categories = [
        {
            "code": r["code"],
            "name_zh": r["name_zh"],
            "scheme": r["scheme"],
            "source_code": r["source_code"],
            "source_file": r["source_file"],
            "aliases": _split(r["aliases"]),
            "keywords": _split(r["keywords"]),
        }
        for r in _csv(data_dir / "categories.csv")
    ]
    collection = json.loads((data_dir / "grids.geojson").read_text(encoding="utf-8"))
    grids = [
        {
            "code": f["properties"]["code"],
            "name": f["properties"]["name"],
            "community_code": f["properties"]["community_code"],
            "town_code": f["properties"]["town_code"],
            "synthetic": bool(f["properties"].get("synthetic", True)),
            "geometry": f["geometry"],
        }
        for f in collection["features"]
    ]
    matrix = yaml.safe_load((data_dir / "responsibility_matrix.yaml").read_text(encoding="utf-8"))
    rules = [
        {
            "id": str(r["id"]),
            "category": str(r["category"]),
            "level": str(r["level"]),
            "area": r.get("area"),
            "assignees": [str(a) for a in r["assignees"]],
        }
        for r in matrix["rules"]
    ]
    bundle = Bundle(str(matrix.get("label", "")), areas, departments, categories, grids, rules)
    validate(bundle)
    return bundle


def validate(bundle: Bundle) -> None:
    """Every code a row refers to exists; raise ValueError listing what does not."""
    problems: list[str] = []
    area_codes = {a["code"] for a in bundle.areas}
    department_codes = {d["code"] for d in bundle.departments}
    category_codes = {c["code"] for c in bundle.categories}
    for table, rows in (("areas", bundle.areas), ("departments", bundle.departments)):
        codes = [r["code"] for r in rows]
        if len(codes) != len(set(codes)):
            problems.append(f"duplicate codes in {table}")
    for d in bundle.departments:
        if d["status"] not in ("verified", "synthetic"):
            problems.append(f"department {d['code']}: status must be verified or synthetic")
    for g in bundle.grids:
        for key in ("community_code", "town_code"):
            if g[key] not in area_codes:
                problems.append(f"grid {g['code']}: unknown {key} {g[key]}")
    try:
        parse_rules(bundle.rules)
    except (ValueError, KeyError) as exc:
        problems.append(str(exc))
    for r in bundle.rules:
        if r["category"] not in category_codes:
            problems.append(f"rule {r['id']}: unknown category {r['category']}")
        if r.get("area") and r["area"] not in area_codes:
            problems.append(f"rule {r['id']}: unknown area {r['area']}")
        for a in r["assignees"]:
            if a != "grid" and a not in department_codes:
                problems.append(f"rule {r['id']}: unknown department {a}")
    if problems:
        raise ValueError("reference data is inconsistent: " + "; ".join(problems[:20]))


def build_reference_data(bundle: Bundle, version: int) -> ReferenceData:
    """Index a bundle for decisions (parses the grid polygons)."""
    return ReferenceData(
        areas={
            a["code"]: Area(a["code"], a["name"], a["level"], a["parent_code"], tuple(a["aliases"]))
            for a in bundle.areas
        },
        departments={
            d["code"]: Department(d["code"], d["name_zh"], d["kind"], d["status"]) for d in bundle.departments
        },
        categories={
            c["code"]: Category(
                c["code"], c["name_zh"], c["scheme"], tuple(c["aliases"]), tuple(c["keywords"])
            )
            for c in bundle.categories
        },
        grids=[
            Grid(
                g["code"],
                g["name"],
                g["community_code"],
                g["town_code"],
                shape(g["geometry"]),
                g["synthetic"],
            )
            for g in bundle.grids
        ],
        rule_set=RuleSet(version, bundle.label, parse_rules(bundle.rules)),
    )


def department_codes(data_dir: Path = DATA_DIR) -> list[str]:
    """Department codes in the data folder (cheap: for creating dispatch topics at start-up)."""
    return [r["code"] for r in _csv(data_dir / "departments.csv")]
