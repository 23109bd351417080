"""Privacy by design: the notice, /mydata, /forget, retention and the monthly report."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select

from bot.contacts_jobs import monthly_report_sweep, retention_sweep
from models.accounts import Account, AuditEntry, account_by_telegram_id
from models.base import clock
from models.contacts import Contact, Person, create_person
from models.exchange import Direction, Exchange, InboxStatus
from models.outbox import OutboxMessage, enqueue
from models.roles import Role
from tests.conftest import BotHarness
from tests.contacts_helpers import IT, ROME, local, seed_march

PERSON = 555
COORDINATOR = 201
DAY = 24 * 3600


async def test_first_contact_shows_the_notice_once_first_and_records_acceptance(
    bot: BotHarness,
) -> None:
    answer = await bot.says(PERSON, "/start")
    assert len(answer) == 2  # the notice, then the welcome: nobody waits for the notice
    notice, welcome = answer
    assert notice["text"].startswith("Informativa privacy.")
    assert "Help Center" in welcome["text"]
    assert len(await bot.says(PERSON, "/help")) == 1  # once, on the first contact only

    accepted = await bot.presses(PERSON, notice, IT("I accept"))
    assert IT("Thank you: your acceptance is recorded.") in accepted[-1]["text"]
    async with bot.session() as session:
        account = await account_by_telegram_id(session, PERSON)
        assert account is not None and account.privacy_accepted_at is not None
    again = (await bot.says(PERSON, "/privacy"))[-1]
    assert again["text"].startswith("Informativa privacy.")
    assert bot.fake.buttons(again) == []  # accepted: nothing more to ask


async def test_mydata_shows_what_is_held(bot: BotHarness) -> None:
    await bot.says(PERSON, "/start")
    await bot.says(PERSON, "dove posso dormire stanotte?")
    answer = await bot.says(PERSON, "/mydata")
    text = answer[-1]["text"]
    assert IT("What we hold about you:") in text
    assert IT("Messages in our log: {count}").format(count=3) in text
    async with bot.session() as session:
        reads = await session.scalar(
            select(func.count()).where(AuditEntry.action == "own_data_read")
        )
    assert reads == 1


async def test_forget_anonymises_but_keeps_anonymous_counts(bot: BotHarness) -> None:
    await bot.says(PERSON, "/start")
    await bot.says(PERSON, "mi chiamo Mario, dormo in stazione")
    async with bot.session() as session:
        account = await account_by_telegram_id(session, PERSON)
        assert account is not None
        person = await create_person(session, initials="MR", birth_year=1980, account_id=account.id)
        from models.contacts import Channel, ContactFacts, record_contact

        await record_contact(
            session,
            ContactFacts(
                occurred_at=clock.now(),
                channel=Channel.BOT,
                person_id=person.id,
                notes="says his name is Mario",
            ),
        )
        await session.commit()
        person_id, account_id = person.id, account.id

    question = (await bot.says(PERSON, "/forget"))[-1]
    kept = await bot.presses(PERSON, question, IT("No, keep it"))
    assert kept[-1]["text"] == IT("Nothing was erased.")
    question = (await bot.says(PERSON, "/forget"))[-1]
    done = await bot.presses(PERSON, question, IT("Yes, erase my data"))
    assert done[-1]["text"] == IT(
        "Done: your data has been erased. You can write again at any time."
    )

    async with bot.session() as session:
        assert await account_by_telegram_id(session, PERSON) is None
        leftover = await session.scalar(
            select(func.count()).where(
                (Exchange.user_id == PERSON) | (Exchange.text.like("%Mario%"))
            )
        )
        assert leftover == 0
        person = await session.get(Person, person_id)
        assert person is not None and person.code == f"ANON-{person_id}"
        assert person.account_id is None and person.birth_year == 1980
        contact = (await session.scalars(select(Contact))).one()
        assert contact.person_id == person_id and contact.notes is None
        forgotten = await session.scalar(
            select(AuditEntry.subject_id).where(AuditEntry.action == "forgotten")
        )
        assert forgotten == account_id


async def test_retention_anonymises_old_texts_once_a_day(bot: BotHarness) -> None:
    await bot.says(PERSON, "/start")
    await bot.says(PERSON, "ho bisogno di una doccia")
    async with bot.session() as session:
        await seed_march(session)  # notes dated March 2025
        await session.commit()
        recent_texts = await session.scalar(select(func.count()).where(Exchange.text.is_not(None)))
    assert recent_texts and recent_texts >= 4

    settings = bot.settings
    async with bot.session() as session:
        result = await retention_sweep(session, settings, _at_hour(clock.now(), 4))
        await session.commit()
    assert result is not None and result.exchanges == 0  # nothing is old enough yet

    clock.advance(25 * 31 * DAY)
    async with bot.session() as session:
        result = await retention_sweep(session, settings, _at_hour(clock.now(), 4))
        await session.commit()
        assert result is not None and result.exchanges == recent_texts
        assert result.notes == 1  # the note of the March 2025 contact
        again = await retention_sweep(session, settings, _at_hour(clock.now(), 5))
        assert again is None  # claimed for today already
        left = await session.scalar(select(func.count()).where(Exchange.text.is_not(None)))
        assert left == 0
        logged = await session.scalar(
            select(func.count()).where(AuditEntry.action == "retention_run")
        )
        assert logged == 2


def _at_hour(moment: datetime, hour: int) -> datetime:
    return moment.astimezone(ROME).replace(hour=hour)


async def test_retention_waits_for_its_hour(bot: BotHarness) -> None:
    async with bot.session() as session:
        assert await retention_sweep(session, bot.settings, _at_hour(clock.now(), 1)) is None


async def test_monthly_report_goes_to_coordinators_once(bot: BotHarness) -> None:
    await bot.grant(COORDINATOR, Role.COORDINATOR)
    catalogs = bot.application.bot_data["runtime"].catalogs
    async with bot.session() as session:
        await seed_march(session)
        await session.commit()
        too_early = await monthly_report_sweep(
            session, bot.settings, catalogs, local(2025, 4, 1, 7)
        )
        assert too_early == 0
        sent = await monthly_report_sweep(session, bot.settings, catalogs, local(2025, 4, 1, 9))
        again = await monthly_report_sweep(session, bot.settings, catalogs, local(2025, 4, 2, 9))
        await session.commit()
        assert (sent, again) == (1, 0)
        message = (await session.scalars(select(OutboxMessage))).one()
        coordinator = await session.scalar(
            select(Account).where(Account.telegram_id == COORDINATOR)
        )
    assert coordinator is not None and message.chat_id == COORDINATOR
    assert (
        IT("Contacts: {contacts} (anonymous: {anonymous})").format(contacts=6, anonymous=1)
        in message.params["text"]
    )


async def _message_to(bot: BotHarness, telegram_id: int, text: str) -> None:
    """A message that follows from a state change (feedback on a report, say), sent."""
    async with bot.session() as session:
        account = await account_by_telegram_id(session, telegram_id)
        assert account is not None
        enqueue(
            session,
            chat_id=telegram_id,
            kind="case_feedback",
            params={"text": text},
            account_id=account.id,
        )
        await session.commit()
    await bot.deliver()


async def test_forget_also_removes_messages_kept_for_delivery(bot: BotHarness) -> None:
    await bot.says(PERSON, "/start")
    await _message_to(bot, PERSON, "Mario, la tua segnalazione è stata presa in carico")

    question = (await bot.says(PERSON, "/forget"))[-1]
    await bot.presses(PERSON, question, IT("Yes, erase my data"))

    async with bot.session() as session:
        kept = await session.scalar(select(func.count()).where(OutboxMessage.chat_id == PERSON))
    assert kept == 0


async def test_a_message_sent_right_after_erasing_is_answered_not_lost(bot: BotHarness) -> None:
    """The press on "Yes, erase my data" and the next message arrive together: the erasure
    covers what came before it; the message after it is a new conversation, answered."""
    await bot.says(PERSON, "/start")
    question = (await bot.says(PERSON, "/forget"))[-1]
    before = len(bot.fake.sent_messages(PERSON))
    bot.fake.user_presses(PERSON, question, IT("Yes, erase my data"))
    bot.fake.user_writes(PERSON, "/help")
    await bot.deliver()

    answers = bot.fake.sent_messages(PERSON)[before:]
    assert answers[0]["text"] == IT(
        "Done: your data has been erased. You can write again at any time."
    )
    assert len(answers) >= 2  # /help was answered too (a new person: notice, then help)
    async with bot.session() as session:
        unfinished = await session.scalar(
            select(func.count()).where(
                Exchange.direction == Direction.IN, Exchange.status != InboxStatus.DONE
            )
        )
        assert unfinished == 0


async def test_retention_removes_delivered_messages_past_the_period(bot: BotHarness) -> None:
    await bot.known(PERSON)
    await _message_to(bot, PERSON, "Mario, la tua segnalazione è stata chiusa")
    clock.advance(25 * 31 * DAY)
    await _message_to(bot, PERSON, "un messaggio recente")

    async with bot.session() as session:
        result = await retention_sweep(session, bot.settings, _at_hour(clock.now(), 4))
        await session.commit()
        left = list(await session.scalars(select(OutboxMessage.params)))
    assert result is not None and result.more["outbox"] == 1
    assert left == [{"text": "un messaggio recente"}]
