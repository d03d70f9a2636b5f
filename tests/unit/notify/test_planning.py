"""Who is told what: the default subscription table and directory applied to one case's life."""

from __future__ import annotations

import pytest

from services.notify.config import NotifySettings
from services.notify.domain import facts as case_facts
from services.notify.domain.directory import Directory
from services.notify.domain.planning import Notice, plan
from services.notify.domain.subscriptions import SubscriptionTable
from services.notify.domain.templates import Renderer
from tests.unit.notify import case_life

SETTINGS = NotifySettings()
TABLE = SubscriptionTable.from_yaml(SETTINGS.notify_subscriptions_file)
DIRECTORY = Directory.from_yaml(SETTINGS.notify_recipients_file)
RENDERER = Renderer(sms_signature="【章丘12345】", sms_max_segments=2)
LINKS = {"satisfaction": "https://12345.zhangqiu.example/pj/X"}


def run_life(case_id: str, events=None) -> list[Notice]:
    """Fold and plan each event the way the handler does (once-per-case rules included)."""
    facts, notices, sent_once = None, [], set()
    for event in events or case_life.life(case_id):
        facts = case_facts.apply(facts, event)
        for notice in plan(event, facts, TABLE, DIRECTORY, RENDERER, LINKS):
            key = (notice.recipient, notice.template)
            if notice.once_per_case and key in sent_once:
                continue
            sent_once.add(key)
            notices.append(notice)
    return notices


def test_one_case_life_tells_exactly_the_expected_recipients_over_the_expected_channels():
    case_id = case_life.new_case_id()
    notices = run_life(case_id)
    assert [(n.recipient, n.channel, n.template) for n in notices] == case_life.expected(case_id)


def test_the_citizen_hears_the_case_number_and_the_expected_reply_date_in_chinese():
    case_id = case_life.new_case_id()
    accepted = next(n for n in run_life(case_id) if n.template == "citizen_accepted")
    assert accepted.body == f"【章丘12345】您的诉求已受理，工单号{case_id}，我们将于2026年11月30日前答复您。"
    assert accepted.quiet_hours is True


def test_the_reply_sms_carries_the_satisfaction_link_and_fits_in_two_segments():
    replied = next(n for n in run_life(case_life.new_case_id()) if n.template == "citizen_replied")
    assert LINKS["satisfaction"] in replied.body
    assert "区水务局" in replied.body
    assert len(replied.body) <= 2 * 67


def test_citizen_messages_carry_no_personal_data_not_even_masked():
    for notice in run_life(case_life.new_case_id()):
        if notice.recipient_kind == "citizen":
            assert case_life.MASKED_PHONE not in notice.body
            assert "张*" not in notice.body
            assert "百脉泉路" not in notice.body


def test_departments_see_the_masked_contact_and_never_the_clear_number():
    assigned = next(n for n in run_life(case_life.new_case_id()) if n.template == "assignment_new")
    assert assigned.title.startswith("【新派单】")
    assert case_life.MASKED_PHONE in assigned.body
    assert case_life.CLEAR_PHONE not in assigned.body
    assert "答复时限" not in assigned.body  # no reply deadline is known yet at first assignment


def test_supervisors_see_the_case_but_not_the_citizen():
    for notice in run_life(case_life.new_case_id()):
        if notice.recipient_kind == "supervisor":
            assert case_life.MASKED_PHONE not in notice.body and "张*" not in notice.body
    red = [n for n in run_life(case_life.new_case_id()) if n.template == "deadline_red"]
    assert "答复时限已于2026年11月30日 17:30届满" in red[0].body


def test_the_grid_app_gets_structured_data_with_masked_contact():
    task = next(n for n in run_life(case_life.new_case_id()) if n.template == "grid_task")
    assert task.endpoint == "webhook:grid-app"
    assert task.payload["citizen_phone_masked"] == case_life.MASKED_PHONE
    assert task.payload["address"] == "章丘区明水街道百脉泉路"


def test_a_citizen_who_asked_for_no_reply_gets_no_sms():
    case_id = case_life.new_case_id()
    events = case_life.life(case_id)
    events[0] = case_life.received(case_id, reply_required=False)
    assert not [n for n in run_life(case_id, events) if n.recipient_kind == "citizen"]


def test_escalation_levels_reach_wider_circles_of_supervisors():
    from contracts.events.sla import CaseEscalated

    case_id = case_life.new_case_id()
    facts = case_facts.apply(None, case_life.received(case_id))
    reached = {}
    for level in (1, 2, 3):
        event = CaseEscalated(
            case_id=case_id, occurred_at=case_life.REPLY_DUE, actor="sla", level=level, reason="超时"
        )
        reached[level] = {n.recipient for n in plan(event, facts, TABLE, DIRECTORY, RENDERER, LINKS)}
    assert reached[1] == {"supervisor:street-office"}
    assert reached[2] == {"supervisor:street-office", "supervisor:district-office"}
    assert reached[3] == {"supervisor:district-office", "supervisor:district-leader"}


def test_a_template_asking_for_data_its_audience_may_not_see_fails_loudly(tmp_path):
    (tmp_path / "leaky.text.j2").write_text("标题\n{{ citizen_phone_masked }}", encoding="utf-8")
    case_id = case_life.new_case_id()
    facts = case_facts.apply(None, case_life.received(case_id))
    from services.notify.domain.templates import context_for

    context = context_for(facts, case_life.received(case_id), "supervisor", "督办", LINKS)
    with pytest.raises(Exception, match="citizen_phone_masked"):
        Renderer(tmp_path).render("leaky", "email", context)


def test_templates_are_read_once_and_the_sms_fallback_is_known_without_listing_the_directory(tmp_path):
    """The files ship with the service: after the first render nothing is read again (Jinja would check
    each file's time on every render, and the SMS fallback listed the directory per message)."""
    (tmp_path / "told.text.j2").write_text("已受理 {{ case_no }}\n正文", encoding="utf-8")
    (tmp_path / "own.sms.j2").write_text("短信 {{ case_no }}\n第二行", encoding="utf-8")
    renderer = Renderer(tmp_path, sms_signature="【章丘12345】")
    first = [renderer.render(name, "sms", {"case_no": "ZQ1"}) for name in ("told", "own")]
    assert [r.body for r in first] == ["【章丘12345】已受理 ZQ1", "【章丘12345】短信 ZQ1第二行"]
    for path in tmp_path.iterdir():
        path.write_text("改过了", encoding="utf-8")
    again = [renderer.render(name, "sms", {"case_no": "ZQ1"}) for name in ("told", "own")]
    assert again == first
    assert sorted(renderer.names()) == ["own.sms.j2", "told.text.j2"]
