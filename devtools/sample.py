"""A small, deterministic sample of hotline appeals for the local run and the tests.

Street and town names are Zhangqiu's real ones (NBS 2023 division list, ../shared/data/zhangqiu_areas.csv);
callers, phone numbers and texts are synthetic.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import httpx

DEV_HOTLINE_KEY = "dev-hotline-key"  # deploy/local/api-keys.dev.yaml (development only)

STREETS = [
    "明水街道", "双山街道", "枣园街道", "龙山街道", "埠村街道", "圣井街道", "普集街道", "绣惠街道",
    "相公庄街道", "文祖街道", "官庄街道", "高官寨街道", "白云湖街道", "宁家埠街道", "曹范街道",
    "刁镇街道", "黄河街道", "垛庄镇",
]  # fmt: skip
APPEALS = [
    ("投诉", "{street}{road}路灯不亮已经一周，晚上行人很不安全。"),
    ("投诉", "{street}{road}附近工地夜间施工噪音扰民，希望尽快处理。"),
    ("求助", "{street}{road}小区供暖不热，室温只有十四度。"),
    ("举报", "{street}{road}有人占道经营，堵塞人行道。"),
    ("咨询", "想咨询{street}城乡居民医保缴费的时间和地点。"),
    ("建议", "建议在{street}{road}路口增设红绿灯。"),
    ("投诉", "{street}{road}垃圾桶满溢无人清运，气味很大。"),
    ("求助", "{street}{road}自来水管破裂，路面积水结冰。"),
]
ROADS = ["百脉泉路", "汇泉路", "明水路", "山泉路", "唐王山路", "绣水大街", "双山大街", "龙泉路"]
SURNAMES = "王李张刘陈杨赵黄周吴徐孙马朱胡郭何高林罗"


def hotline_order(index: int, *, seed: int = 2026, now: datetime | None = None) -> dict:
    """The ``index``-th synthetic 12345 work order (same index and seed, same order)."""
    rng = random.Random(seed * 1_000_003 + index)
    appeal_type, template = rng.choice(APPEALS)
    street = rng.choice(STREETS)
    road = rng.choice(ROADS)
    called_at = (now or datetime.now(UTC)) - timedelta(minutes=rng.randint(1, 120))
    return {
        "order_no": f"12345-{seed}-{index:07d}",
        "called_at": called_at.isoformat(),
        "caller_name": rng.choice(SURNAMES) + rng.choice("先生女士"),
        "caller_phone": f"13{rng.randint(0, 9)}{rng.randint(10_000_000, 99_999_999)}",
        "appeal_type": appeal_type,
        "content": template.format(street=street, road=road),
        "address": f"章丘区{street}{road}",
        "urgency": "紧急" if rng.random() < 0.05 else "一般",
        "reply_required": rng.random() < 0.9,
    }


def post_hotline_case(client: httpx.Client, index: int, *, seed: int = 2026) -> str:
    """Post one sample order through intake and return its case id."""
    response = client.post(
        "/v1/intake/hotline", json=hotline_order(index, seed=seed), headers={"X-API-Key": DEV_HOTLINE_KEY}
    )
    response.raise_for_status()
    return response.json()["case_id"]
