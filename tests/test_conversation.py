"""What a person is in the middle of (#12): one conversation, read once per update.

Each pair of flows, one open and another started, behaves as it did before the conversation
was one mechanism: a report or an urgent request holds its chat (anything else asks "continue
or discard?"), a flow of the same kind starts afresh, other flows stay open beside it. Role
changes, /forget and retention end what the person was in the middle of.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from sqlalchemy import event, select

from fakebotapi import group_chat_dict
from models.accounts import Account, account_by_telegram_id
from models.base import clock
from models.cases import Case, CaseKind
from models.contacts import Contact
from models.conversation import OpenFlow
from models.privacy import run_retention
from models.roles import Role
from models.team import set_role
from tests.cases_helpers import ANNA, VOLUNTEER, team, texts
from tests.conftest import BotHarness
from tests.contacts_helpers import IT
from tests.directory_helpers import load_example, set_local_time
from tests.test_people_in_need import DESK_BUTTON

DOCUMENTS = "📄 Documenti e aiuto legale"
IN_PROGRESS = "Hai una segnalazione in corso: vuoi continuarla o scartarla?"
WHERE = "Dove si trova la persona?"
GROUP = -100777
PERSON = 601
NEEDS_ASKED = IT("What did they ask for? Tap all that apply, then Done.")


async def open_flows(bot: BotHarness, telegram_id: int) -> dict[str, str]:
    """The flows the person has open, with their step."""
    async with bot.session() as session:
        rows = await session.execute(
            select(OpenFlow.flow, OpenFlow.step)
            .join(Account, Account.id == OpenFlow.account_id)
            .where(Account.telegram_id == telegram_id)
        )
        return {flow: step for flow, step in rows.all()}


def venues(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m for m in messages if "venue" in m]


async def ask_where_for_documents(bot: BotHarness, user: int) -> dict[str, Any]:
    """The directory asks "where?" (a typed place answers it); returns the menu."""
    menu = (await bot.says(user, "/services"))[-1]
    await bot.presses(user, menu, DOCUMENTS)
    return menu


async def contact_at_place_step(bot: BotHarness, operator: int) -> dict[str, Any]:
    """An operator recording an anonymous contact met in the street; "Where?" is asked."""
    message = (await bot.says(operator, "/contact"))[-1]
    message = (await bot.presses(operator, message, "Anonimo"))[-1]
    return (await bot.presses(operator, message, "Strada"))[-1]


async def send_a_report(bot: BotHarness, reporter: int) -> None:
    out = await bot.says(reporter, "Via Solferino")
    out = await bot.presses(reporter, out[-1], bot.fake.buttons(out[-1])[0][0])
    out = await bot.presses(reporter, out[-1], bot.fake.buttons(out[-1])[1][0])
    out = await bot.says(reporter, "Signora anziana al freddo")
    out = await bot.presses(reporter, out[-1], "Salta")
    out = await bot.presses(reporter, out[-1], "✅ Invia la segnalazione")
    assert "registrata come" in texts(out)


# ---- a report holds its chat ----------------------------------------------------------------


async def test_during_a_report_a_contact_a_question_or_a_request_first_ask_to_continue(
    bot: BotHarness,
) -> None:
    await team(bot)
    await load_example(bot)
    menu = (await bot.says(ANNA, "/services"))[-1]
    await bot.says(ANNA, "/report")
    await bot.says(ANNA, "Via Solferino")

    assert texts(await bot.says(ANNA, "/contact")) == IN_PROGRESS
    assert texts(await bot.presses(ANNA, menu, DOCUMENTS)) == IN_PROGRESS
    assert texts(await bot.says(ANNA, "/urgent")) == IN_PROGRESS

    assert await open_flows(bot, ANNA) == {"report": "category"}, "nothing else started"
    out = await bot.presses(ANNA, bot.last(ANNA), "Continua")
    assert "Che tipo di situazione è?" in texts(out)


async def test_a_report_holds_only_its_own_chat_a_question_in_a_group_is_answered_there(
    bot: BotHarness,
) -> None:
    await team(bot)
    await load_example(bot)
    set_local_time(2026, 12, 2, 10, 0)
    group = group_chat_dict(GROUP, "Volontari")
    bot.fake.register_chat(group)
    await bot.says(VOLUNTEER, "/report")
    bot.fake.user_writes(VOLUNTEER, "/services", chat=group)
    await bot.deliver()
    bot.fake.user_presses(VOLUNTEER, bot.fake.sent_messages(GROUP)[-1], DOCUMENTS)
    await bot.deliver()

    before = len(bot.fake.sent_messages(GROUP))
    bot.fake.user_writes(VOLUNTEER, "stazione", chat=group)
    await bot.deliver()
    assert venues(bot.fake.sent_messages(GROUP)[before:]), "the group's question is answered"
    out = await bot.says(VOLUNTEER, "Via Solferino")
    assert "Luogo registrato." in texts(out), "the private chat's report goes on"


# ---- flows side by side ---------------------------------------------------------------------


async def test_a_contact_being_recorded_waits_while_a_report_is_written_and_goes_on_after(
    bot: BotHarness,
) -> None:
    await team(bot)
    contact = await contact_at_place_step(bot, ANNA)

    assert WHERE in texts(await bot.says(ANNA, "/report"))
    assert texts(await bot.presses(ANNA, contact, "Salta")) == IN_PROGRESS
    await send_a_report(bot, ANNA)
    message = (await bot.presses(ANNA, contact, "Salta"))[-1]
    assert NEEDS_ASKED in message["text"], "the contact goes on where it was"
    for button in ("Fatto", "Fatto", "Niente da aggiungere", "Salva"):
        message = (await bot.presses(ANNA, message, button))[-1]

    async with bot.session() as session:
        [saved] = list(await session.scalars(select(Contact)))
    assert saved.channel == "street"
    assert await open_flows(bot, ANNA) == {}


async def test_a_contact_and_a_question_stay_open_side_by_side(bot: BotHarness) -> None:
    await team(bot)
    await load_example(bot)
    set_local_time(2026, 12, 2, 10, 0)
    contact = await contact_at_place_step(bot, ANNA)

    await ask_where_for_documents(bot, ANNA)  # a question while a contact is open
    assert venues(await bot.says(ANNA, "stazione"))
    message = (await bot.presses(ANNA, contact, "Salta"))[-1]
    assert NEEDS_ASKED in message["text"]

    await ask_where_for_documents(bot, ANNA)
    await bot.says(ANNA, "/contact")  # a contact while a question is open
    assert venues(await bot.says(ANNA, "stazione"))
    assert await open_flows(bot, ANNA) == {"contact": "channel"}


async def test_a_question_asked_before_a_report_waits_under_it(bot: BotHarness) -> None:
    await team(bot)
    await load_example(bot)
    set_local_time(2026, 12, 2, 10, 0)
    await ask_where_for_documents(bot, VOLUNTEER)

    assert WHERE in texts(await bot.says(VOLUNTEER, "/report"))
    out = await bot.says(VOLUNTEER, "stazione")
    assert "Luogo registrato." in texts(out) and not venues(out), "the report takes it"
    await bot.says(VOLUNTEER, "/cancel")
    assert venues(await bot.says(VOLUNTEER, "stazione")), "then the question is answered"


# ---- a flow of the same kind starts afresh ----------------------------------------------------


async def test_a_new_question_replaces_the_last(bot: BotHarness) -> None:
    await load_example(bot)
    set_local_time(2026, 12, 2, 10, 0)
    await bot.known(PERSON)
    await ask_where_for_documents(bot, PERSON)
    menu = (await bot.says(PERSON, "/help"))[-1]
    await bot.presses(PERSON, menu, DESK_BUTTON["it"])

    out = await bot.says(PERSON, "stazione")

    assert not venues(out)
    async with bot.session() as session:
        [request] = list(await session.scalars(select(Case)))
    assert request.kind is CaseKind.HELP_REQUEST and request.seen == "stazione"


async def test_a_new_contact_starts_afresh(bot: BotHarness) -> None:
    await team(bot)
    await bot.says(ANNA, "/contact")
    await bot.says(ANNA, "/note prima persona")
    message = (await bot.says(ANNA, "/contact"))[-1]
    assert "prima persona" not in message["text"]
    message = (await bot.says(ANNA, "/note seconda persona"))[-1]  # then: how did you meet?
    for button in ("Strada", "Salta", "Fatto", "Fatto", "Niente da aggiungere", "Salva"):
        message = (await bot.presses(ANNA, message, button))[-1]

    async with bot.session() as session:
        [saved] = list(await session.scalars(select(Contact)))
    assert saved.notes == "seconda persona"


# ---- what ends a conversation -----------------------------------------------------------------


async def test_a_role_change_ends_the_contact_and_keeps_the_report_the_new_role_may_send(
    bot: BotHarness,
) -> None:
    await team(bot)
    contact = await contact_at_place_step(bot, ANNA)
    await bot.says(ANNA, "/report")
    async with bot.session() as session:
        anna = await account_by_telegram_id(session, ANNA)
        assert anna is not None
        await set_role(session, anna, Role.VOLUNTEER, by=None)
        await session.commit()

    assert await open_flows(bot, ANNA) == {"report": "location"}
    await send_a_report(bot, ANNA)
    out = await bot.presses(ANNA, contact, "Salta")
    assert "riservat" in texts(out)
    async with bot.session() as session:
        assert list(await session.scalars(select(Contact))) == []


async def test_forget_ends_everything_the_person_was_in_the_middle_of(bot: BotHarness) -> None:
    await load_example(bot)
    await bot.known(PERSON)
    menu = (await bot.says(PERSON, "/help"))[-1]
    await bot.presses(PERSON, menu, DESK_BUTTON["it"])  # a question, not yet answered
    async with bot.session() as session:
        person = await account_by_telegram_id(session, PERSON)
        assert person is not None
    question = (await bot.says(PERSON, "/forget"))[-1]

    await bot.presses(PERSON, question, "Sì, cancella i miei dati")

    async with bot.session() as session:
        left = list(await session.scalars(select(OpenFlow).where(OpenFlow.account_id == person.id)))
    assert left == []


async def test_retention_drops_a_report_abandoned_as_long_as_photos_are_kept(
    bot: BotHarness,
) -> None:
    await team(bot)
    await bot.says(VOLUNTEER, "/report")
    await bot.says(VOLUNTEER, "Via Solferino")
    clock.advance(timedelta(days=bot.settings.photo_retention_days + 1).total_seconds())
    await bot.says(ANNA, "/report")  # written today: kept

    async with bot.session() as session:
        result = await run_retention(
            session,
            retention_months=bot.settings.retention_months,
            photo_retention_days=bot.settings.photo_retention_days,
        )
        await session.commit()
    assert result.more["case_drafts"] == 1
    assert await open_flows(bot, VOLUNTEER) == {}
    assert await open_flows(bot, ANNA) == {"report": "location"}


# ---- read once per update ---------------------------------------------------------------------


@contextmanager
def reads_of_open_flows(bot: BotHarness) -> Iterator[list[str]]:
    """The statements that read ``open_flow`` while the block runs."""
    seen: list[str] = []

    def note(_conn: Any, _cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "open_flow" in statement:
            seen.append(statement)

    engine = bot.engine.sync_engine
    event.listen(engine, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", note)


async def test_each_step_reads_what_the_person_is_in_the_middle_of_once(bot: BotHarness) -> None:
    await team(bot)
    await load_example(bot)
    set_local_time(2026, 12, 2, 10, 0)
    await contact_at_place_step(bot, ANNA)
    await ask_where_for_documents(bot, ANNA)
    await bot.says(ANNA, "/report")

    with reads_of_open_flows(bot) as reads:
        out = await bot.says(ANNA, "Via Solferino")  # the filter, the gate and the step
    assert "Luogo registrato." in texts(out)
    assert len(reads) == 1, reads
    with reads_of_open_flows(bot) as reads:
        out = await bot.presses(ANNA, out[-1], bot.fake.buttons(out[-1])[0][0])
    assert "Quanto è urgente?" in texts(out)
    assert len(reads) == 1, reads
