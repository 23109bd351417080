"""Records that stay right under real Telegram behaviour: merges pressed in any order,
/forget while more messages wait, names and phones that must not stay in the log."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType, SimpleNamespace

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select

from bot.contacts_jobs import privacy_follow_ups
from models import contacts as contacts_model
from models.accounts import account_by_telegram_id
from models.base import clock
from models.contacts import Person
from models.conversation import Conversation, Flow, OpenFlow, begin
from models.exchange import Direction, Exchange, InboxStatus
from models.outbox import OutboxMessage
from models.privacy import anonymise_person, complete_forgetting, run_retention
from models.roles import Role
from tests.cases_helpers import ANNA, POLICE, alerts_in, deliver_outbox, team
from tests.conftest import BotHarness, make_settings
from tests.contacts_helpers import IT, seed_march
from tests.test_cases_urgent import police_ask_for_help

OPERATOR = 101
COORDINATOR = 201
PERSON = 555
DAY = 24 * 3600
UNKNOWN_CODE = (
    "No person with the code {code}. Check it (the last character is a check letter), "
    "or register them with /person new INITIALS YEAR SEX, for example /person new MR 1985 M."
)


@contextmanager
def fails_after(seconds: float) -> Iterator[None]:
    """A handling that loops without ever yielding cannot be cancelled: interrupt it."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise TimeoutError(f"still running after {seconds}s")

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


async def _two_people(bot: BotHarness) -> tuple[Person, Person, Person]:
    await bot.grant(COORDINATOR, Role.COORDINATOR)
    async with bot.session() as session:
        data = await seed_march(session)
        await session.commit()
    return data.people["p1"], data.people["p2"], data.people["p3"]


async def _pointers(bot: BotHarness, *people: Person) -> list[int | None]:
    async with bot.session() as session:
        return [
            await session.scalar(select(Person.merged_into_id).where(Person.id == p.id))
            for p in people
        ]


# ---- merges ----------------------------------------------------------------------------------


async def test_two_merges_in_opposite_directions_merge_once_and_the_record_still_opens(
    bot: BotHarness,
) -> None:
    a, b, _ = await _two_people(bot)
    first = (await bot.says(COORDINATOR, f"/merge {a.code} {b.code}"))[-1]
    second = (await bot.says(COORDINATOR, f"/merge {b.code} {a.code}"))[-1]

    merged = (await bot.presses(COORDINATOR, first, IT("Merge")))[-1]
    assert merged["text"] == IT(
        "Merged: {drop} is now part of {keep} ({moved} contacts moved)."
    ).format(drop=b.code, keep=a.code, moved=1)
    refused = (await bot.presses(COORDINATOR, second, IT("Merge")))[-1]
    assert refused["text"] == IT("Nothing merged: one of the records changed meanwhile.")

    assert await _pointers(bot, a, b) == [None, a.id]
    with fails_after(10):
        shown = (await bot.says(COORDINATOR, f"/person {b.code}"))[-1]
    assert a.code in shown["text"]


async def test_two_coordinators_confirming_opposite_merges_at_once_merge_once(
    bot: BotHarness,
) -> None:
    a, b, _ = await _two_people(bot)
    await bot.grant(COORDINATOR + 1, Role.COORDINATOR)
    first = (await bot.says(COORDINATOR, f"/merge {a.code} {b.code}"))[-1]
    second = (await bot.says(COORDINATOR + 1, f"/merge {b.code} {a.code}"))[-1]
    bot.fake.user_presses(COORDINATOR, first, IT("Merge"))
    bot.fake.user_presses(COORDINATOR + 1, second, IT("Merge"))
    await bot.deliver()  # both handled at the same time, by two handling slots

    pointers = await _pointers(bot, a, b)
    assert pointers in ([None, a.id], [b.id, None])
    answers = [bot.last(COORDINATOR)["text"], bot.last(COORDINATOR + 1)["text"]]
    assert answers.count(IT("Nothing merged: one of the records changed meanwhile.")) == 1


async def test_a_merge_into_a_record_merged_elsewhere_meanwhile_is_refused(
    bot: BotHarness,
) -> None:
    a, b, c = await _two_people(bot)
    into_a = (await bot.says(COORDINATOR, f"/merge {a.code} {b.code}"))[-1]
    a_into_c = (await bot.says(COORDINATOR, f"/merge {c.code} {a.code}"))[-1]
    await bot.presses(COORDINATOR, a_into_c, IT("Merge"))

    refused = (await bot.presses(COORDINATOR, into_a, IT("Merge")))[-1]
    assert refused["text"] == IT("Nothing merged: one of the records changed meanwhile.")
    assert await _pointers(bot, a, b, c) == [c.id, None, None]


async def test_a_record_erased_after_the_question_is_not_merged(bot: BotHarness) -> None:
    a, b, _ = await _two_people(bot)
    question = (await bot.says(COORDINATOR, f"/merge {a.code} {b.code}"))[-1]
    async with bot.session() as session:
        erased = await session.get(Person, b.id)
        assert erased is not None
        anonymise_person(erased)  # as retention does
        await session.commit()

    refused = (await bot.presses(COORDINATOR, question, IT("Merge")))[-1]
    assert refused["text"] == IT("Nothing merged: one of the records changed meanwhile.")
    assert await _pointers(bot, a, b) == [None, None]


async def test_records_already_pointing_at_each_other_do_not_freeze_the_bot(
    bot: BotHarness,
) -> None:
    a, b, _ = await _two_people(bot)
    async with bot.session() as session:  # left by an older version of the bot
        for this, other in ((a, b), (b, a)):
            row = await session.get(Person, this.id)
            assert row is not None
            row.merged_into_id = other.id
        await session.commit()

    with fails_after(10):
        answer = (await bot.says(COORDINATOR, f"/person {a.code}"))[-1]
    assert answer["text"] == IT(UNKNOWN_CODE).format(code=a.code)
    assert (await bot.says(COORDINATOR, "/help"))[-1]["text"]  # and the bot goes on


# ---- /forget while more messages wait -----------------------------------------------------


async def test_a_message_sent_right_after_forget_is_answered_then_anonymised(
    bot: BotHarness,
) -> None:
    await bot.known(PERSON)
    question = (await bot.says(PERSON, "/forget"))[-1]
    bot.fake.user_presses(PERSON, question, IT("Yes, erase my data"))
    bot.fake.user_writes(PERSON, "ho ancora bisogno di un letto")
    await bot.deliver()

    answers = [m["text"] for m in bot.fake.sent_messages(PERSON)]
    done = IT("Done: your data has been erased. You can write again at any time.")
    assert done in answers
    after = answers[answers.index(done) + 1 :]
    # answered as from someone new: the privacy notice, then the beds tonight (issue #13)
    assert IT("No shelter has reported free beds tonight.") in after[-1]
    async with bot.session() as session:
        waiting = list(
            await session.scalars(
                select(Exchange.status).where(
                    Exchange.direction == Direction.IN, Exchange.status != InboxStatus.DONE
                )
            )
        )
        assert waiting == []
    await privacy_follow_ups(SimpleNamespace(application=bot.application))  # the minute job
    async with bot.session() as session:
        rows = list(await session.scalars(select(Exchange)))
        assert await complete_forgetting(session) == 0  # nothing left to do
    assert [(r.direction, r.kind, r.text) for r in rows if PERSON in (r.user_id, r.chat_id)] == []
    assert not [r for r in rows if "letto" in f"{r.text} {json.dumps(r.payload)}"]


# ---- names and phones in the log ------------------------------------------------------------


def _leaks(rows: list[Exchange], *words: str) -> list[str]:
    return [
        f"{row.direction} {row.text}"
        for row in rows
        for word in words
        if word in f"{row.text} {json.dumps(row.payload)}"
    ]


async def test_a_name_and_phone_never_stay_in_the_log_whatever_the_answer(
    database_url: str,
) -> None:
    key = Fernet.generate_key().decode()
    async with BotHarness(make_settings(database_url, encryption_key=key)) as bot:
        await bot.grant(OPERATOR, Role.OPERATOR)
        await bot.known(PERSON)
        answer = await bot.says(OPERATOR, "/person new MR 1985 M")
        code = answer[-1]["text"].split()[-1]  # "… /contact CODE"
        typo = code[:-1] + ("A" if code[-1] != "A" else "B")
        refused = await bot.says(OPERATOR, f"/person {typo} identity Mario Rossi; 3331234567")
        assert refused[-1]["text"] == IT(UNKNOWN_CODE).format(code=typo)
        denied = await bot.says(PERSON, f"/person {code} identity Mario Rossi; 3331234567")
        assert denied[-1]["text"] == IT(
            "Sorry, this is reserved for Help Center staff. If you think you should have "
            "access, ask a coordinator for an invite."
        )
        await bot.says(OPERATOR, f"/persn {code} identity Mario Rossi; 3331234567")
        async with bot.session() as session:
            rows = list(await session.scalars(select(Exchange)))
    assert _leaks(rows, "Mario", "3331234567") == []
    commands = [r.text for r in rows if r.direction == Direction.IN]
    assert commands.count("/person") == 3  # the log still says what was asked
    assert "/persn" in commands


async def test_a_name_typed_in_place_of_a_code_is_neither_repeated_nor_logged(
    bot: BotHarness,
) -> None:
    await bot.grant(OPERATOR, Role.OPERATOR)
    not_a_code = await bot.says(OPERATOR, "/person Mario Rossi")
    assert not_a_code[-1]["text"] == IT(
        "That is not a person's code: a code looks like MR1985M-V (initials, year of "
        "birth, sex, check letter). Register someone new with /person new INITIALS YEAR "
        "SEX, for example /person new MR 1985 M."
    )
    await bot.says(OPERATOR, "/contact Mario")
    await bot.says(OPERATOR, "/person new Mario 1985 M")  # a name for the initials
    await bot.says(OPERATOR, "/merge Mario Rossi")  # not theirs to do
    await bot.says(OPERATOR, "/staffof 3331234567 dormitorio")  # nor this
    async with bot.session() as session:
        rows = list(await session.scalars(select(Exchange)))
    assert _leaks(rows, "Mario", "3331234567") == []


async def test_an_identity_message_whose_handling_fails_is_blanked_once_parked(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(database_url, encryption_key=Fernet.generate_key().decode())
    async with BotHarness(settings.model_copy(update={"inbox_max_attempts": 1})) as bot:
        await bot.grant(OPERATOR, Role.OPERATOR)
        answer = await bot.says(OPERATOR, "/person new MR 1985 M")
        code = answer[-1]["text"].split()[-1]

        def broken(*args: object, **kwargs: object) -> None:
            raise RuntimeError("the key store is broken")

        monkeypatch.setattr(contacts_model, "set_identity", broken)
        await bot.says(OPERATOR, f"/person {code} identity Mario Rossi; 3331234567")
        await privacy_follow_ups(SimpleNamespace(application=bot.application))  # the minute job
        async with bot.session() as session:
            rows = list(await session.scalars(select(Exchange)))
    assert [r.text for r in rows if r.status == InboxStatus.FAILED] == ["/person"]
    assert _leaks(rows, "Mario", "3331234567") == []


# ---- privacy leftovers -------------------------------------------------------------------------


async def test_a_forgotten_operator_is_no_longer_named_in_other_peoples_log(
    bot: BotHarness,
) -> None:
    await team(bot)
    await police_ask_for_help(bot)
    [anna_alert] = alerts_in(bot, ANNA)
    await bot.presses(ANNA, anna_alert, "✋ Lo prendo io")
    await deliver_outbox(bot)
    assert "Anna dell'Help Center sta arrivando" in (bot.fake.last_text(POLICE) or "")

    question = (await bot.says(ANNA, "/forget"))[-1]
    await bot.presses(ANNA, question, IT("Yes, erase my data"))
    async with bot.session() as session:
        rows = list(await session.scalars(select(Exchange)))
        kept = list(await session.scalars(select(OutboxMessage.params)))
    assert _leaks(rows, "Anna") == []
    assert [p for p in kept if "Anna" in json.dumps(p, ensure_ascii=False)] == []
    assert [r for r in rows if r.direction == Direction.OUT and r.subject_type == "case"]


async def test_retention_drops_abandoned_contact_drafts_with_their_notes(bot: BotHarness) -> None:
    await bot.grant(OPERATOR, Role.OPERATOR)
    await bot.grant(COORDINATOR, Role.COORDINATOR)
    await bot.says(OPERATOR, "/contact")
    await bot.says(OPERATOR, "/note dorme sotto il ponte di via Milano")
    clock.advance(25 * 31 * DAY)
    async with bot.session() as session:
        coordinator = await account_by_telegram_id(session, COORDINATOR)
        assert coordinator is not None
        today = {"notes": "a draft of today"}
        conversation = Conversation(coordinator.id)
        await begin(
            session, conversation, Flow.CONTACT, chat_id=COORDINATOR, step="channel", data=today
        )
        await session.commit()
        result = await run_retention(session, retention_months=24, photo_retention_days=30)
        await session.commit()
        drafts = list(
            await session.scalars(select(OpenFlow.data).where(OpenFlow.flow == Flow.CONTACT))
        )
    assert result.more["contact_drafts"] == 1
    assert drafts == [{"notes": "a draft of today"}]
