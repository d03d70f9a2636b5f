"""The Open311 service catalogue (data/open311_services.yaml) and attribute answers' validation."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path

import yaml

CATALOGUE = Path(__file__).resolve().parent.parent / "data" / "open311_services.yaml"
DATATYPES = {"string", "number", "datetime", "text", "singlevaluelist", "multivaluelist"}


@dataclass(frozen=True)
class Attribute:
    code: str
    datatype: str
    required: bool
    description: str
    order: int
    values: tuple[tuple[str, str], ...] = ()
    variable: bool = True
    datatype_description: str = ""


@dataclass(frozen=True)
class Service:
    service_code: str
    service_name: str
    description: str
    group: str
    keywords: tuple[str, ...]
    attributes: tuple[Attribute, ...]

    @property
    def metadata(self) -> bool:
        return bool(self.attributes)


@lru_cache(maxsize=1)
def services() -> dict[str, Service]:
    """Services by code, in catalogue order."""
    data = yaml.safe_load(CATALOGUE.read_text(encoding="utf-8"))
    found: dict[str, Service] = {}
    for entry in data["services"]:
        attributes = tuple(
            Attribute(
                code=a["code"],
                datatype=a["datatype"],
                required=bool(a.get("required", False)),
                description=a["description"],
                order=index + 1,
                values=tuple((str(v["key"]), v["name"]) for v in a.get("values", ())),
            )
            for index, a in enumerate(entry.get("attributes", ()))
        )
        assert all(a.datatype in DATATYPES for a in attributes), entry["service_code"]
        found[str(entry["service_code"])] = Service(
            str(entry["service_code"]),
            entry["service_name"],
            entry["description"],
            entry.get("group", ""),
            tuple(entry.get("keywords", ())),
            attributes,
        )
    return found


class AttributeError_(ValueError):
    """An attribute answer the service definition does not allow (Open311 400)."""


def check_answers(service: Service, answers: dict[str, list[str]]) -> list[tuple[Attribute, list[str]]]:
    """Validate attribute[code] answers against the definition; returns (attribute, values) in order."""
    known = {a.code: a for a in service.attributes}
    unknown = sorted(set(answers) - set(known))
    if unknown:
        raise AttributeError_(
            f"attribute[{unknown[0]}] is not an attribute of service {service.service_code}"
        )
    checked = []
    for attribute in service.attributes:
        values = [v for v in answers.get(attribute.code, []) if v.strip()]
        if not values:
            if attribute.required:
                raise AttributeError_(f"attribute[{attribute.code}] is required")
            continue
        if attribute.datatype != "multivaluelist" and len(values) > 1:
            raise AttributeError_(f"attribute[{attribute.code}] takes one value")
        keys = {k for k, _ in attribute.values}
        for value in values:
            if attribute.datatype in {"singlevaluelist", "multivaluelist"} and value not in keys:
                raise AttributeError_(f"attribute[{attribute.code}] must be one of {sorted(keys)}")
            if attribute.datatype == "number":
                try:
                    float(value)
                except ValueError:
                    raise AttributeError_(f"attribute[{attribute.code}] must be a number") from None
            if attribute.datatype == "datetime":
                try:
                    datetime.fromisoformat(value)
                except ValueError:
                    raise AttributeError_(f"attribute[{attribute.code}] must be a W3C datetime") from None
            if len(value) > 1000:
                raise AttributeError_(f"attribute[{attribute.code}] is longer than 1000 characters")
        checked.append((attribute, values))
    return checked


def describe_answers(checked: list[tuple[Attribute, list[str]]]) -> str:
    """Answers as Chinese text lines for the case description (list keys shown by their names)."""
    lines = []
    for attribute, values in checked:
        names = dict(attribute.values)
        lines.append(f"{attribute.description}：{'、'.join(names.get(v, v) for v in values)}")
    return "\n".join(lines)
