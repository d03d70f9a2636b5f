"""Zhangqiu's streets and towns (NBS 2023 division codes), to name a town code in answers and the console."""

from __future__ import annotations

TOWNS: dict[str, str] = {
    "370114001000": "明水街道",
    "370114002000": "双山街道",
    "370114003000": "枣园街道",
    "370114004000": "龙山街道",
    "370114005000": "埠村街道",
    "370114006000": "圣井街道",
    "370114007000": "普集街道",
    "370114008000": "绣惠街道",
    "370114009000": "相公庄街道",
    "370114010000": "文祖街道",
    "370114011000": "官庄街道",
    "370114012000": "高官寨街道",
    "370114013000": "白云湖街道",
    "370114014000": "宁家埠街道",
    "370114015000": "曹范街道",
    "370114016000": "刁镇街道",
    "370114017000": "黄河街道",
    "370114101000": "垛庄镇",
}


def town_name(code: str | None) -> str | None:
    """The Chinese name of a town or street code, if it is one of Zhangqiu's."""
    return TOWNS.get(code or "")
