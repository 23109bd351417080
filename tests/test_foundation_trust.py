"""Trust under real Telegram behaviour: invites raced and forwarded, edits, revoked roles,
privileged answers typed in groups, and a group's typed answers."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from fakebotapi import group_chat_dict, message_dict, user_dict
from models.accounts import Account, Invite, account_by_telegram_id
from models.cases import Case
from models.conversation import CASE_FLOWS, Flow, OpenFlow, load_conversation
from models.directory import ServiceEdit
from models.roles import Role
from models.team import set_role
from tests.conftest import BotHarness
from tests.directory_helpers import load_example, set_local_time

COORDINATOR = 3101
OPERATOR = 3102
VOLUNTEER = 3103
FIRST, SECOND, THIRD = 3201, 3202, 3203
GROUP = -100777
DOCUMENTS = "📄 Documenti e aiuto legale"
CASE_DRAFTS = select(OpenFlow).where(OpenFlow.flow.in_(CASE_FLOWS))


async def _role(bot: BotHarness, telegram_id: int) -> Role:
    async with bot.session() as session:
        account = await account_by_telegram_id(session, telegram_id)
    assert account is not None
    return account.role


async def _invite_code(bot: BotHarness, inviter: int, role: str) -> str:
    reply = (await bot.says(inviter, f"/invite {role}"))[-1]["text"]
    link = next(word for word in reply.split() if "start=" in word)
    return link.split("start=")[1]


async def _change_role(bot: BotHarness, telegram_id: int, role: Role) -> None:
    """Someone with the shell changes a role (``helpcenter users grant``)."""
    async with bot.session() as session:
        account = await account_by_telegram_id(session, telegram_id)
        assert account is not None
        await set_role(session, account, role, by=None)
        await session.commit()


def _texts(messages: list[dict[str, Any]]) -> str:
    return "\n".join(m.get("text") or m.get("caption") or "" for m in messages)


# ---- invites ----------------------------------------------------------------------------------


async def test_a_one_time_invite_opened_by_three_people_at_once_makes_one_operator(
    bot: BotHarness,
) -> None:
    await bot.grant(COORDINATOR, Role.COORDINATOR)
    code = await _invite_code(bot, COORDINATOR, "operator")

    for person in (FIRST, SECOND, THIRD):
        await bot.known(person)
    for person in (FIRST, SECOND, THIRD):  # the link was posted in a chat: all tap it
        bot.fake.user_writes(person, f"/start {code}")
    await bot.deliver()

    roles = [await _role(bot, person) for person in (FIRST, SECOND, THIRD)]
    assert roles.count(Role.OPERATOR) == 1, roles
    assert roles.count(Role.PUBLIC) == 2
    refused = [p for p, r in zip((FIRST, SECOND, THIRD), roles, strict=True) if r is Role.PUBLIC]
    for person in refused:
        assert "già stato usato" in bot.last(person)["text"]


async def test_an_operator_opening_a_volunteer_invite_keeps_the_role_and_the_invite_stays(
    bot: BotHarness,
) -> None:
    await bot.grant(COORDINATOR, Role.COORDINATOR)
    await bot.grant(OPERATOR, Role.OPERATOR)
    code = await _invite_code(bot, COORDINATOR, "volunteer")

    answer = (await bot.says(OPERATOR, f"/start {code}"))[-1]["text"]

    assert await _role(bot, OPERATOR) is Role.OPERATOR
    assert "operatore" in answer.lower() and "non" in answer.lower()
    await bot.says(FIRST, f"/start {code}")  # the person it was meant for can still use it
    assert await _role(bot, FIRST) is Role.VOLUNTEER


async def test_an_invite_stops_working_when_its_author_loses_the_right_to_invite(
    bot: BotHarness,
) -> None:
    await bot.grant(COORDINATOR, Role.COORDINATOR)
    code = await _invite_code(bot, COORDINATOR, "operator")
    await _change_role(bot, COORDINATOR, Role.VOLUNTEER)

    answer = (await bot.says(FIRST, f"/start {code}"))[-1]["text"]

    assert await _role(bot, FIRST) is Role.PUBLIC
    assert "non è più valido" in answer


# ---- edits ------------------------------------------------------------------------------------


async def test_editing_an_invite_command_is_acknowledged_and_makes_no_second_invite(
    bot: BotHarness,
) -> None:
    await bot.grant(COORDINATOR, Role.COORDINATOR)
    await bot.says(COORDINATOR, "/invite operator")
    original = _last_inbound(bot, COORDINATOR)

    bot.fake.user_edits(COORDINATOR, original, "/invite police")
    await bot.deliver()

    async with bot.session() as session:
        invites = list(await session.scalars(select(Invite)))
    assert [i.role for i in invites] == [Role.OPERATOR]
    assert "modificato un messaggio" in bot.last(COORDINATOR)["text"]


async def test_editing_a_note_does_not_append_it_twice(bot: BotHarness) -> None:
    await bot.grant(OPERATOR, Role.OPERATOR)
    await bot.says(OPERATOR, "/contact")
    await bot.says(OPERATOR, "/note dormiva in stazione")
    original = _last_inbound(bot, OPERATOR)

    bot.fake.user_edits(OPERATOR, original, "/note dormiva in stazione, binario 1")
    await bot.deliver()

    async with bot.session() as session:
        operator = await account_by_telegram_id(session, OPERATOR)
        assert operator is not None
        draft = (await load_conversation(session, operator.id)).get(Flow.CONTACT)
    assert draft is not None and draft.data["notes"] == "dormiva in stazione"
    assert "modificato un messaggio" in bot.last(OPERATOR)["text"]


async def test_a_live_location_moving_is_not_answered_as_an_edit(bot: BotHarness) -> None:
    await bot.known(FIRST)
    shared = message_dict(user_dict(FIRST), None, location=(45.5324, 10.2127), message_id=1)
    before = len(bot.fake.sent_messages(FIRST))
    moved = {**shared, "location": {"latitude": 45.5330, "longitude": 10.2130}}
    bot.fake.push_update({"edited_message": {**moved, "edit_date": 1_796_000_000}})
    await bot.deliver()

    assert bot.fake.sent_messages(FIRST)[before:] == []


def _last_inbound(bot: BotHarness, user_id: int) -> dict[str, Any]:
    """The message ``user_id`` last wrote, as Telegram knows it (for an edit)."""
    messages = [
        msg
        for (chat, _id), msg in sorted(bot.fake.state.messages.items())
        if chat == user_id and msg.get("from", {}).get("id") == user_id
    ]
    return messages[-1]


async def test_an_edited_answer_to_a_typed_question_is_not_taken_as_the_answer(
    bot: BotHarness,
) -> None:
    await load_example(bot)
    set_local_time(2026, 12, 2, 10, 0)
    await bot.known(FIRST)
    menu = await bot.says(FIRST, "/services")
    await bot.presses(FIRST, menu[-1], DOCUMENTS)
    await bot.says(FIRST, "Narnia")  # not a place: the question stays open
    wrote = _last_inbound(bot, FIRST)

    before = len(bot.fake.sent_messages(FIRST))
    bot.fake.user_edits(FIRST, wrote, "stazione")
    await bot.deliver()

    after = bot.fake.sent_messages(FIRST)[before:]
    assert not any("venue" in m for m in after)
    assert "modificato un messaggio" in _texts(after)


# ---- roles taken away mid-draft ---------------------------------------------------------------


async def _report_up_to_summary(bot: BotHarness, reporter: int) -> dict[str, Any]:
    await bot.says(reporter, "/report")
    out = await bot.says(reporter, "Via Solferino")
    out = await bot.presses(reporter, out[-1], bot.fake.buttons(out[-1])[0][0])
    out = await bot.presses(reporter, out[-1], bot.fake.buttons(out[-1])[1][0])
    out = await bot.says(reporter, "Signora anziana al freddo")
    out = await bot.presses(reporter, out[-1], bot.fake.buttons(out[-1])[0][0])  # Skip
    return out[-1]


async def test_a_volunteer_whose_role_is_taken_away_cannot_send_the_open_report(
    bot: BotHarness,
) -> None:
    await bot.grant(VOLUNTEER, Role.VOLUNTEER)
    summary = await _report_up_to_summary(bot, VOLUNTEER)
    await _change_role(bot, VOLUNTEER, Role.PUBLIC)

    out = await bot.presses(VOLUNTEER, summary, bot.fake.buttons(summary)[0][0])  # Send

    async with bot.session() as session:
        assert await session.scalar(select(func.count()).select_from(Case)) == 0
        assert await session.scalar(select(func.count()).select_from(CASE_DRAFTS.subquery())) == 0
    assert "riservat" in _texts(out) or "non è più aperta" in _texts(out)


async def test_every_report_step_checks_the_role_even_if_the_draft_was_kept(
    bot: BotHarness,
) -> None:
    """A role taken away behind the bot's back (a row edited by hand, an old draft): the step
    itself refuses, the draft is dropped, and nothing is reported."""
    await bot.grant(VOLUNTEER, Role.VOLUNTEER)
    await bot.says(VOLUNTEER, "/report")
    async with bot.session() as session:
        account = await session.scalar(select(Account).where(Account.telegram_id == VOLUNTEER))
        assert account is not None
        account.role = Role.PUBLIC  # not through set_role: the draft survives
        await session.commit()

    out = await bot.says(VOLUNTEER, "Via Solferino")

    assert "riservat" in _texts(out)
    async with bot.session() as session:
        assert await session.scalar(select(func.count()).select_from(CASE_DRAFTS.subquery())) == 0


async def test_a_role_change_drops_the_drafts_the_new_role_may_not_finish(
    bot: BotHarness,
) -> None:
    await bot.grant(VOLUNTEER, Role.VOLUNTEER)
    await bot.grant(OPERATOR, Role.OPERATOR)
    await bot.says(VOLUNTEER, "/report")
    await bot.says(OPERATOR, "/urgent")

    await _change_role(bot, VOLUNTEER, Role.POLICE)  # police may not report sightings
    await _change_role(bot, OPERATOR, Role.COORDINATOR)  # coordinators may still ask

    async with bot.session() as session:
        drafts = list(await session.scalars(CASE_DRAFTS))
        operator = await account_by_telegram_id(session, OPERATOR)
    assert operator is not None
    assert [(d.account_id, d.flow) for d in drafts] == [(operator.id, "urgent")]


async def _asked_for_new_hours(bot: BotHarness, operator: int) -> None:
    await load_example(bot)
    set_local_time(2026, 12, 2, 10, 0)
    kinds = await bot.says(operator, "/editservice")
    services = await bot.presses(operator, kinds[-1], "🛏 Dormitori")
    card = await bot.presses(operator, services[-1], "Asilo notturno di via Corsica")
    await bot.presses(operator, card[-1], "🕒 Orari")


async def test_typed_new_hours_are_refused_aloud_once_the_editor_lost_the_role(
    bot: BotHarness,
) -> None:
    await bot.grant(OPERATOR, Role.OPERATOR)
    await _asked_for_new_hours(bot, OPERATOR)
    async with bot.session() as session:
        account = await session.scalar(select(Account).where(Account.telegram_id == OPERATOR))
        assert account is not None
        account.role = Role.VOLUNTEER  # not through set_role: the question is still open
        await session.commit()

    out = await bot.says(OPERATOR, "daily 17:00-09:00")

    assert "riservat" in _texts(out)
    async with bot.session() as session:
        assert await session.scalar(select(func.count()).select_from(ServiceEdit)) == 0


async def test_a_role_change_closes_the_question_asked_under_the_old_role(
    bot: BotHarness,
) -> None:
    await bot.grant(OPERATOR, Role.OPERATOR)
    await _asked_for_new_hours(bot, OPERATOR)
    await _change_role(bot, OPERATOR, Role.VOLUNTEER)

    out = await bot.says(OPERATOR, "daily 17:00-09:00")

    # an ordinary message now, not an answer (#13: read for a need, never "Non ho capito")
    assert "Non sono sicuro di cosa ti serve" in _texts(out)
    async with bot.session() as session:
        assert await session.scalar(select(func.count()).select_from(ServiceEdit)) == 0


# ---- privileged answers in groups -------------------------------------------------------------


async def _in_group(bot: BotHarness, user_id: int, text: str) -> list[dict[str, Any]]:
    before = len(bot.fake.sent_messages(GROUP))
    bot.fake.user_writes(user_id, text, chat=group_chat_dict(GROUP, "Volontari"))
    await bot.deliver()
    return bot.fake.sent_messages(GROUP)[before:]


async def test_privileged_commands_typed_in_a_group_are_answered_only_privately(
    bot: BotHarness,
) -> None:
    bot.fake.register_chat(group_chat_dict(GROUP, "Volontari"))
    await bot.grant(COORDINATOR, Role.COORDINATOR)
    commands = [
        "/invite operator",
        "/export 2026-01-01 2026-12-31",
        "/stats 2026-01-01 2026-12-31",
        "/mydata",
        "/person new MR 1985 M",
        "/contact",
        "/cases",
        "/report",
    ]
    for command in commands:
        out = await _in_group(bot, COORDINATOR, command)
        assert len(out) == 1, (command, out)
        assert "privat" in out[0]["text"].lower(), (command, out[0]["text"])
        assert "https://t.me/" in out[0]["text"]
        assert "start=" not in out[0]["text"]
        assert "document" not in out[0] and "photo" not in out[0]

    async with bot.session() as session:
        assert list(await session.scalars(select(Invite))) == []
        assert await session.scalar(select(func.count()).select_from(CASE_DRAFTS.subquery())) == 0
    assert bot.fake.sent_messages(COORDINATOR) == []


async def test_the_directory_still_answers_in_a_group(bot: BotHarness) -> None:
    bot.fake.register_chat(group_chat_dict(GROUP, "Volontari"))
    await bot.known(FIRST)
    out = await _in_group(bot, FIRST, "/services")
    assert out and bot.fake.buttons(out[-1])
    assert "privat" not in _texts(out).lower()


# ---- a typed answer in a group belongs to the person who was asked ----------------------------


async def test_in_a_group_someone_elses_message_does_not_answer_my_question(
    bot: BotHarness,
) -> None:
    await load_example(bot)
    set_local_time(2026, 12, 2, 10, 0)
    bot.fake.register_chat(group_chat_dict(GROUP, "Volontari"))
    await bot.known(FIRST)
    await bot.known(SECOND)
    menu = (await _in_group(bot, FIRST, "/services"))[-1]
    bot.fake.user_presses(FIRST, menu, DOCUMENTS)
    await bot.deliver()

    out = await _in_group(bot, SECOND, "stazione")  # someone else chatting in the group
    assert not any("venue" in m for m in out)

    out = await _in_group(bot, FIRST, "stazione")  # the person who was asked
    assert any("venue" in m for m in out)
