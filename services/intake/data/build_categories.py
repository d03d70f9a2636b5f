"""Rebuild categories.csv (Gridline's unified category table) from the shared reference data.

Run from the repository root: ``python -m services.intake.data.build_categories [../shared/data]``.
Each source row keeps its own code and its source line; the ``category`` column is Gridline's coarse
category (the major class every source's codes map into). Rows whose major class has no mapping here go
to ``unclassified`` (triage), never to an error.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

# Gridline's unified categories: code -> Chinese name.
CATEGORIES: dict[str, str] = {
    "municipal_facility": "市政公用设施",
    "transport_facility": "交通设施",
    "sanitation_facility": "市容环卫设施",
    "greening_facility": "园林绿化设施",
    "housing_land": "房屋土地",
    "other_facility": "其他管理部件",
    "city_appearance": "市容环境",
    "advertising": "宣传广告",
    "construction": "施工管理",
    "street_order": "街面秩序",
    "emergency": "突发事件",
    "dispute": "矛盾纠纷",
    "public_safety": "治安、安全隐患",
    "livelihood": "民生服务",
    "noise": "噪声扰民",
    "fees": "乱收费",
    "labour": "劳动社保",
    "utilities": "水电暖气等公用事业",
    "property_management": "物业管理",
    "education": "教育",
    "government_affairs": "政务综合",
    "other": "其他事项",
    "unclassified": "未分类（待人工分拨）",
}

# National catalogue (GB/T 47678.5-2026, S1) and legacy lists (S2, S3): 2-digit major class -> category.
DCM_COMPONENT_MAJOR = {
    "01": "municipal_facility",
    "02": "transport_facility",
    "03": "sanitation_facility",
    "04": "greening_facility",
    "05": "other_facility",
    "21": "other_facility",
}
DCM_EVENT_MAJOR = {
    **DCM_COMPONENT_MAJOR,
    "06": "city_appearance",
    "07": "advertising",
    "08": "construction",
    "09": "street_order",
    "10": "other",
}
DCM_LEGACY_MAJOR = {  # S2 (Beijing Chaoyang, 4-digit major ids)
    "1001": "municipal_facility",
    "1002": "transport_facility",
    "1003": "sanitation_facility",
    "1004": "greening_facility",
    "1005": "housing_land",
    "2001": "city_appearance",
    "2002": "advertising",
    "2003": "construction",
    "2004": "emergency",
    "2005": "street_order",
    "2007": "other",
}
GRID_MAJOR = {
    "矛盾纠纷": "dispute",
    "治安、安全隐患": "public_safety",
    "民生服务": "livelihood",
    "其他": "other",
}
HOTLINE_CLASS = {
    "9001": "noise",
    "9002": "fees",
    "9003": "labour",
    "9004": "utilities",
    "9005": "housing_land",
    "9006": "utilities",
    "9007": "utilities",
    "9008": "public_safety",
    "9009": "street_order",
    "9010": "street_order",
    "901701": "property_management",
    "9012": "livelihood",
    "9013": "utilities",
    "9014": "education",
    "9015": "property_management",
    "9016": "property_management",
    "901702": "city_appearance",
    "901703": "utilities",
    "901705": "livelihood",
    "901707": "city_appearance",
    "901708": "labour",
    "901711": "street_order",
    "901712": "government_affairs",
    "901714": "street_order",
    "901715": "labour",
    "901716": "education",
    "901717": "street_order",
    "901719": "housing_land",
    # tianque content classes (named, no codes)
    "政治综合": "government_affairs",
    "经济综合": "government_affairs",
    "宣传舆论": "government_affairs",
    "纪检监察": "government_affairs",
    "政法": "public_safety",
    "劳动社保": "labour",
    "教育": "education",
    "卫生计生": "livelihood",
    "科技文体": "livelihood",
    "组织人事": "government_affairs",
    "交通能源环保": "utilities",
    "民政": "livelihood",
    "农村农业": "livelihood",
    "国土资源水利农业": "housing_land",
    "城乡建设": "construction",
    "信息产业": "other",
    "商贸旅游": "other",
    "其他": "other",
}

FIELDS = ["source", "kind", "source_code", "source_name", "category", "category_name", "reference"]


def build(shared: Path) -> list[dict[str, str]]:
    rows: list[dict[str, str]] = []

    def add(source: str, kind: str, code: str, name: str, category: str, reference: str) -> None:
        rows.append(
            {
                "source": source,
                "kind": kind,
                "source_code": code,
                "source_name": name,
                "category": category,
                "category_name": CATEGORIES[category],
                "reference": reference,
            }
        )

    for row in csv.DictReader((shared / "dcm_categories.csv").open(encoding="utf-8")):
        code, kind, ref = row["code"], row["kind"], row["source"]
        if ref.startswith("S1 "):
            table = DCM_EVENT_MAJOR if kind == "event" else DCM_COMPONENT_MAJOR
            add("dcm", kind, code, row["name_zh"], table.get(code[:2], "unclassified"), ref)
        elif ref.startswith("S2 ") and code:
            add("dcm", kind, code, row["name_zh"], DCM_LEGACY_MAJOR.get(code[:4], "unclassified"), ref)
        elif ref.startswith("S3 ") and code:
            add("dcm", kind, code, row["name_zh"], DCM_COMPONENT_MAJOR.get(code[2:4], "unclassified"), ref)
        # S4/S5 carry no stable codes (ids restart per major class or are absent): not keyed here.

    for row in csv.DictReader((shared / "grid_event_categories.csv").open(encoding="utf-8")):
        if not row["scheme"].startswith("tianque grid 事件模块 (core)"):
            continue
        ref = f"grid_event_categories.csv: {row['scheme']}"
        if row["level"] == "major":
            add("grid", "event", row["name_zh"], row["name_zh"], GRID_MAJOR.get(row["name_zh"], "other"), ref)
        else:
            # minor ids restart per major class in the source, so the key is "<major>/<minor id>"
            parent = row["parent_name"]
            add(
                "grid",
                "event",
                f"{parent}/{row['code']}",
                row["name_zh"],
                GRID_MAJOR.get(parent, "other"),
                ref,
            )

    seen: set[str] = set()
    for row in csv.DictReader((shared / "hotline_appeal_types.csv").open(encoding="utf-8")):
        if row["dimension"] == "appeal_type":
            continue  # appeal types are a separate dimension (CaseReceived.appeal_type), not a topic
        key = row["code"] or row["name_zh"]
        if key in seen:
            continue
        seen.add(key)
        parent = row["parent_code"] or key
        category = HOTLINE_CLASS.get(parent, HOTLINE_CLASS.get(key, "unclassified"))
        add(
            "hotline",
            row["dimension"],
            key,
            row["name_zh"],
            category,
            f"hotline_appeal_types.csv: {row['source']}",
        )
    return rows


def main() -> None:
    shared = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE.parents[3].parent / "shared" / "data"
    rows = build(shared)
    with (HERE / "categories.csv").open("w", encoding="utf-8", newline="") as out:
        writer = csv.DictWriter(out, FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {len(rows)} rows to {HERE / 'categories.csv'}")


if __name__ == "__main__":
    main()
