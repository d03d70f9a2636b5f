"""The stream: arrivals on daily and weekly curves, each a payload in its feed's own shape, with a plan.

``Workload(seed=...)`` yields ``Submission``s forever, in simulated time from ``start``. One seeded
``random.Random`` drives everything in order, so the same seed (and mix, start, run tag) gives the same
stream, byte for byte. Arrivals are a non-homogeneous Poisson process (thinning) whose rate follows each
source's hour-of-day and day-of-week profile; profiles are normalised to a weekly mean of 1, so over a week
the source shares and the daily volume are the configured ones.
"""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from itertools import islice
from typing import Any
from zoneinfo import ZoneInfo

from devtools.workload.places import Places, Spot
from devtools.workload.topics import (
    DUPLICATE_OPENERS,
    EXTENSION_REASONS,
    FEEDBACK_COMMENTS,
    RETURN_REASONS,
    TOPICS,
    Topic,
    in_season,
)

CST = ZoneInfo("Asia/Shanghai")
SOURCES = ("hotline", "grid", "open311")
DEFAULT_START = datetime(2026, 1, 5, tzinfo=CST)  # a Monday, in the heating season
SURNAMES = (
    "王李张刘陈杨赵黄周吴徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈"
)
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰红建国志"
MOBILE_PREFIXES = tuple(map(str, (*range(130, 140), 150, 151, 152, 155, 156, 157, 158, 159, 176, 177,
                                  *range(180, 190))))  # fmt: skip
NUMBERS_CN = ("两天", "三天", "一周", "十来天", "半个月")

# Hour-of-day (0..23) and day-of-week (Mon..Sun) profiles; synthetic, shaped like published 12345
# call curves (peaks 9–11 and 14–16, quiet nights, lighter weekends) and grid members' working hours.
HOURLY = {
    "hotline": (0.25, 0.15, 0.1, 0.08, 0.08, 0.15, 0.4, 0.9, 1.6, 2.0, 2.0, 1.7,
                1.1, 1.2, 1.7, 1.8, 1.7, 1.3, 1.0, 0.95, 0.85, 0.65, 0.45, 0.3),
    "grid": (0, 0, 0, 0, 0, 0, 0.05, 0.4, 1.5, 2.5, 2.5, 2.0,
             0.5, 0.5, 2.0, 2.5, 2.2, 1.2, 0.3, 0.1, 0.05, 0, 0, 0),
    "open311": (0.3, 0.2, 0.1, 0.05, 0.05, 0.1, 0.4, 0.8, 1.2, 1.4, 1.4, 1.3,
                1.2, 1.2, 1.3, 1.3, 1.3, 1.4, 1.6, 1.8, 1.8, 1.5, 1.0, 0.6),
}  # fmt: skip
WEEKLY = {
    "hotline": (1.15, 1.05, 1.0, 1.0, 0.95, 0.75, 0.7),
    "grid": (1.1, 1.1, 1.1, 1.1, 1.05, 0.35, 0.2),
    "open311": (1.0, 1.0, 1.0, 1.0, 1.0, 1.1, 1.1),
}
KEYS = {"hotline": "dev-hotline-key", "grid": "dev-grid-key", "open311": "dev-open311-key"}
PATHS = {"hotline": "/v1/intake/hotline", "grid": "/v1/intake/grid", "open311": "/open311/v2/requests.json"}


@dataclass(frozen=True)
class WorkloadMix:
    """Shares and rates of the synthetic district (every default is an assumption, not a measurement)."""

    sources: dict[str, float] = field(
        default_factory=lambda: {"hotline": 0.70, "grid": 0.25, "open311": 0.05}
    )
    cases_per_day: float = 1650.0  # ≈ 600,000 a year
    duplicate_share: float = 0.06  # 重复件: someone re-reports an appeal that is still open
    hotline_uncoded_share: float = 0.15  # the operator left the content class empty
    hotline_with_coordinates: float = 0.10  # picked on a map by the operator (GCJ-02)
    hotline_id_number_share: float = 0.03
    open311_with_coordinates: float = 0.6
    grid_resolved_on_spot: float = 0.45  # 即知即改
    return_share: float = 0.08  # 退单 by the first assignee
    extension_share: float = 0.05  # 延期申请
    extension_approved: float = 0.8
    reply_resolved: float = 0.85
    feedback_share: float = 0.70  # citizens reached by the 回访
    satisfaction: dict[str, float] = field(
        default_factory=lambda: {"满意": 0.82, "基本满意": 0.11, "不满意": 0.07}
    )


@dataclass(frozen=True)
class Extension:
    working_days: int
    reason: str
    approved: bool


@dataclass(frozen=True)
class Feedback:
    satisfaction: str
    resolved: bool
    comment: str | None
    after_h: float  # after the reply, simulated hours


@dataclass(frozen=True)
class FollowUpPlan:
    """What happens to a case after routing, in simulated hours from the previous step."""

    return_reason: str | None  # the first assignee sends it back (退单)
    accept_after_h: float
    extension: Extension | None
    reply_after_h: float
    reply: str
    resolved: bool
    feedback: Feedback | None  # None: no reply wanted, or the citizen was not reached

    def body(self, step: str) -> dict[str, Any]:
        """The JSON body of one step's HTTP request."""
        if step == "return":
            return {"reason": self.return_reason}
        if step == "extension" and self.extension:
            return {"working_days": self.extension.working_days, "reason": self.extension.reason}
        if step == "extension-decision" and self.extension:
            return {"approved": self.extension.approved}
        if step == "reply":
            return {"reply": self.reply, "resolved": self.resolved}
        if step == "feedback" and self.feedback:
            body = {"satisfaction": self.feedback.satisfaction, "resolved": self.feedback.resolved}
            return body | ({"comment": self.feedback.comment} if self.feedback.comment else {})
        return {}


@dataclass(frozen=True)
class Submission:
    """One appeal as its feed sends it, and what the district will do with it."""

    index: int
    at: datetime  # simulated arrival, Asia/Shanghai
    source: str  # hotline | grid | open311
    topic: str
    category_code: str | None  # the feed's code as sent (None: left empty)
    town_code: str
    body: dict[str, Any]  # JSON body (hotline, grid) or form fields (open311)
    duplicate_of: int | None = None  # index of the submission this one re-reports
    plan: FollowUpPlan | None = None  # None: closed on the spot, or a duplicate

    @property
    def path(self) -> str:
        return PATHS[self.source]

    @property
    def api_key(self) -> str:
        return KEYS[self.source]

    @property
    def is_form(self) -> bool:
        return self.source == "open311"

    def restamped(self, when: datetime) -> Submission:
        """The same submission arriving at ``when`` (its payload's time field moves with it)."""
        body = dict(self.body)
        if self.source == "hotline":
            body["called_at"] = when.astimezone(CST).isoformat()
        elif self.source == "grid":
            body["found_at"] = when.astimezone(CST).isoformat()
        return replace(self, at=when, body=body)


def _normalised(source: str) -> list[list[float]]:
    """profile[day][hour] with a weekly mean of 1."""
    raw = [[w * h for h in HOURLY[source]] for w in WEEKLY[source]]
    mean = sum(map(sum, raw)) / 168
    return [[v / mean for v in day] for day in raw]


class Workload:
    """Seedable, deterministic stream of ``Submission``s (iterate it, or ``take(n)``)."""

    def __init__(
        self,
        seed: int = 2026,
        mix: WorkloadMix | None = None,
        start: datetime | None = None,
        run: str | None = None,
    ) -> None:
        self.seed, self.mix = seed, mix or WorkloadMix()
        self.start = (start or DEFAULT_START).astimezone(CST)
        self.run = run or f"w{seed}"  # goes into order and report numbers, which must be unique per run
        self.places = Places()
        self._profiles = {s: _normalised(s) for s in SOURCES}
        self._peak = max(v for s in SOURCES for day in self._profiles[s] for v in day)
        self._by_source = {s: [t for t in TOPICS if t.weights.get(s) and self._code(t, s)] for s in SOURCES}

    @staticmethod
    def _code(topic: Topic, source: str) -> str | None:
        return {"hotline": topic.hotline_code, "grid": topic.grid_code, "open311": topic.open311_code}[source]

    def take(self, n: int) -> list[Submission]:
        return list(islice(self, n))

    def __iter__(self) -> Iterator[Submission]:
        rng = random.Random(self.seed)
        mix = self.mix
        sources = [s for s in SOURCES if mix.sources.get(s, 0) > 0]
        shares = [mix.sources[s] for s in sources]
        hourly_rate = mix.cases_per_day / 24 * self._peak  # candidate rate of the thinning
        recent: deque[Submission] = deque(maxlen=300)
        t, index = self.start, 0
        while True:
            t += timedelta(hours=rng.expovariate(hourly_rate))
            source = rng.choices(sources, shares)[0]
            if rng.random() * self._peak > self._profiles[source][t.weekday()][t.hour]:
                continue
            original = self._original_for(rng, source, t, recent)
            if original is not None:
                submission = self._duplicate(rng, index, t, original)
            else:
                submission = self._fresh(rng, index, t, source)
                if submission.plan is not None and submission.category_code:
                    recent.append(submission)
            index += 1
            yield submission

    def _original_for(
        self, rng: random.Random, source: str, t: datetime, recent: deque[Submission]
    ) -> Submission | None:
        if rng.random() >= self.mix.duplicate_share:
            return None
        window = [s for s in recent if s.source == source and t - s.at < timedelta(hours=48)]
        if source == "open311":
            window = [s for s in window if "lat" in s.body]  # found again only by place
        return rng.choice(window) if window else None

    # --- one fresh appeal ------------------------------------------------------------------------------

    def _fresh(self, rng: random.Random, index: int, t: datetime, source: str) -> Submission:
        topics = self._by_source[source]
        weights = [
            tp.weights[source] * (1.0 if tp.season is None else 4.0 if in_season(tp.season, t.month, t.day)
                                  else 0.15)
            for tp in topics
        ]  # fmt: skip
        topic = rng.choices(topics, weights)[0]
        spot = self.places.draw(rng)
        build = {"hotline": self._hotline, "grid": self._grid, "open311": self._open311}[source]
        body, code, reply_wanted, on_spot = build(rng, index, t, topic, spot)
        plan = None if on_spot else self._plan(rng, topic, reply_wanted)
        return Submission(index, t, source, topic.key, code, spot.town.code, body, None, plan)

    def _text(self, rng: random.Random, templates: tuple[str, ...], spot: Spot) -> str:
        where = spot.address.removeprefix("章丘区")
        values = {
            "where": where,
            "town": spot.town.name,
            "road": rng.choice(spot.town.roads),
            "time": rng.choice(("晚上十点以后", "凌晨", "中午午休时间", "半夜十二点")),
            "days": rng.choice(NUMBERS_CN),
            "n": rng.randint(2, 12),
            "temp": rng.randint(12, 16),
            "hours": rng.randint(2, 9),
            "months": rng.randint(2, 8),
            "amount": rng.randrange(3_000, 60_000, 100),
            "people": rng.randint(3, 30),
        }
        return rng.choice(templates).format(**values)

    def _hotline(self, rng: random.Random, index: int, t: datetime, topic: Topic, spot: Spot):
        mix = self.mix
        appeal_type = rng.choices(list(topic.appeal_types), list(topic.appeal_types.values()))[0]
        content = self._text(rng, topic.citizen_texts, spot)
        named_place = "{where}" in "".join(topic.citizen_texts) or rng.random() < 0.5
        code = None if rng.random() < mix.hotline_uncoded_share else topic.hotline_code
        body: dict[str, Any] = {
            "order_no": f"12345-{self.run}-{index:08d}",
            "called_at": t.isoformat(),
            "caller_name": rng.choice(SURNAMES) + rng.choice(("先生", "女士")),
            "caller_phone": _phone(rng),
            "appeal_type": appeal_type,
            "content": content,
            "urgency": "紧急" if rng.random() < topic.urgent_share else "一般",
            "reply_required": appeal_type != "表扬" and rng.random() < 0.92,
        }
        if code:
            body["category_code"] = code
        if named_place:
            body["address"] = spot.address
        if rng.random() < mix.hotline_with_coordinates:
            lat, lon = spot.gcj02()
            body["coordinates"] = {"lat": lat, "lon": lon, "crs": "GCJ02"}
        if rng.random() < mix.hotline_id_number_share:
            body["caller_id_number"] = _id_number(rng)
        return body, code, body["reply_required"], False

    def _grid(self, rng: random.Random, index: int, t: datetime, topic: Topic, spot: Spot):
        committee = spot.committee
        lat, lon = spot.gcj02()
        member = f"WGY-{committee.code[-6:]}-{rng.randint(1, 4):02d}"
        report = f"{self.run}-{index:08d}"
        body: dict[str, Any] = {
            "report_id": report,
            "grid_code": committee.grid_code or committee.code,
            "member_id": member,
            "event_class_code": topic.grid_code,
            "coordinates": {"lat": lat, "lon": lon, "crs": "GCJ02"},
            "address": spot.address,
            "photos": [
                f"https://files.example.cn/grid/{member.lower()}/{report}-{k}.jpg"
                for k in range(1, rng.randint(1, 3) + 1)
            ],
            "description": self._text(rng, topic.grid_texts, spot),
            "found_at": t.isoformat(),
            "resolved_on_spot": rng.random() < self.mix.grid_resolved_on_spot,
            "urgency": "紧急" if rng.random() < topic.urgent_share else "一般",
        }
        return body, topic.grid_code, False, body["resolved_on_spot"]

    def _open311(self, rng: random.Random, index: int, t: datetime, topic: Topic, spot: Spot):
        code = topic.open311_code or ""
        form: dict[str, str] = {
            "service_code": code,
            "description": self._text(rng, topic.citizen_texts, spot),
            "api_key": KEYS["open311"],
        }
        if rng.random() < self.mix.open311_with_coordinates:
            form |= {"lat": f"{spot.lat:.6f}", "long": f"{spot.lon:.6f}"}  # Open311 is WGS84
        else:
            form["address_string"] = spot.address
        for attribute, keys in topic.open311_attributes.items():
            form[f"attribute[{attribute}]"] = rng.choice(keys)
        if rng.random() < 0.7:
            form |= {"last_name": rng.choice(SURNAMES), "first_name": rng.choice(GIVEN)}
            form["phone"] = _phone(rng)
        if rng.random() < 0.5:
            form["media_url"] = f"https://files.example.cn/open311/{self.run}-{index:08d}.jpg"
        return form, code, True, False

    def _plan(self, rng: random.Random, topic: Topic, reply_wanted: bool) -> FollowUpPlan:
        mix = self.mix
        extension = None
        if rng.random() < mix.extension_share:
            extension = Extension(
                rng.choice((3, 5, 5, 10)),
                rng.choice(EXTENSION_REASONS),
                rng.random() < mix.extension_approved,
            )
        resolved = rng.random() < mix.reply_resolved
        feedback = None
        if reply_wanted and rng.random() < mix.feedback_share:
            satisfaction = rng.choices(list(mix.satisfaction), list(mix.satisfaction.values()))[0]
            feedback = Feedback(
                satisfaction,
                satisfaction != "不满意" and resolved,
                rng.choice(FEEDBACK_COMMENTS[satisfaction]),
                round(rng.uniform(2, 48), 2),
            )
        return FollowUpPlan(
            return_reason=rng.choice(RETURN_REASONS) if rng.random() < mix.return_share else None,
            accept_after_h=round(min(8.0, rng.lognormvariate(math.log(0.8), 0.8)), 2),
            extension=extension,
            reply_after_h=round(rng.uniform(2, 96), 2),
            reply=rng.choice(topic.replies),
            resolved=resolved,
            feedback=feedback,
        )

    # --- a re-report of an open appeal (重复件) ---------------------------------------------------------

    def _duplicate(self, rng: random.Random, index: int, t: datetime, original: Submission) -> Submission:
        body = dict(original.body)
        if original.source == "hotline":
            body["order_no"] = f"12345-{self.run}-{index:08d}"
            body["called_at"] = t.isoformat()
            body["content"] = rng.choice(DUPLICATE_OPENERS) + original.body["content"]
        elif original.source == "grid":
            lat, lon = (
                body["coordinates"][k] + rng.uniform(-0.0003, 0.0003) for k in ("lat", "lon")
            )  # ±30 m
            body["coordinates"] = {"lat": round(lat, 6), "lon": round(lon, 6), "crs": "GCJ02"}
            body["report_id"] = f"{self.run}-{index:08d}"
            body["member_id"] = f"{body['member_id'][:-2]}{rng.randint(1, 4):02d}"
            body["found_at"] = t.isoformat()
            body["photos"] = [f"https://files.example.cn/grid/dup/{self.run}-{index:08d}.jpg"]
        else:
            body["description"] = rng.choice(DUPLICATE_OPENERS) + original.body["description"]
            body.pop("media_url", None)
        return replace(original, index=index, at=t, body=body, duplicate_of=original.index, plan=None)


def _phone(rng: random.Random) -> str:
    if rng.random() < 0.1:
        return f"0531-8{rng.randint(100_0000, 999_9999)}"  # a 济南 landline
    return f"{rng.choice(MOBILE_PREFIXES)}{rng.randint(10_000_000, 99_999_999)}"


def _id_number(rng: random.Random) -> str:
    """A synthetic 18-digit resident ID with a valid check digit (GB 11643)."""
    born = datetime(1950, 1, 1) + timedelta(days=rng.randint(0, 365 * 55))
    stem = f"370181{born:%Y%m%d}{rng.randint(0, 999):03d}"
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    return stem + "10X98765432"[sum(int(d) * w for d, w in zip(stem, weights, strict=True)) % 11]
