"""Privacy by design: the notice, what we hold about someone, forgetting, retention.

Forgetting and retention *anonymise* rather than delete: the rows that make the anonymous
statistics (a contact happened, on that day, for those needs) stay; what could tell who it
was (texts, payloads, Telegram ids, names, codes, free notes) goes.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import String, and_, delete, func, null, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from models.accounts import Account, audit
from models.base import clock
from models.cases import Case, CaseEvent, CaseStatus
from models.contacts import Contact, Person
from models.conversation import end_abandoned, end_all
from models.db import rows_affected
from models.exchange import Direction, Exchange, InboxStatus
from models.jobs import JobRun, claim_job_run
from models.outbox import OutboxMessage, OutboxStatus
from models.sqlite_inline import off_the_loop

log = logging.getLogger(__name__)


def _counts_text(counts: dict[str, int]) -> str:
    return "".join(f" {name}={n}" for name, n in counts.items())


# Inbound updates still waiting to be handled are never touched by retention.
_FINISHED = or_(
    Exchange.direction == Direction.OUT,
    Exchange.status.in_([InboxStatus.DONE, InboxStatus.FAILED]),
)


# ---- identity data in the exchange log ---------------------------------------------------

# Commands whose arguments name or point at someone: a person's code, or what an operator
# typed in its place (a name, a phone), a staff member's Telegram id. Their log row keeps the
# command word only, whatever the answer (refused, mistyped, saved), since what they carry
# lives encrypted or pseudonymous in the records it is about, where /forget and retention
# reach it. A message whose first arguments say ``identity`` is blanked whatever its command
# (``/persn CODE identity NAME; PHONE`` is as telling as the real one).
IDENTITY_COMMANDS = frozenset({"person", "contact", "merge", "staffof"})
IDENTITY_WORDS = frozenset({"identity"})


def identity_command(text: str | None) -> str | None:
    """The command word to keep in the log (``/person``) if the arguments of this message
    may identify someone; None for any other message."""
    if not text or not text.startswith("/"):
        return None
    command, *arguments = text.split()
    if not arguments:
        return None
    name = command[1:].split("@", 1)[0].lower()
    if name in IDENTITY_COMMANDS or any(w.lower() in IDENTITY_WORDS for w in arguments[:2]):
        return command[:32]
    return None


async def keep_only_command(session: AsyncSession, update_id: int, command: str) -> None:
    """The logged update keeps its command word; its arguments and raw payload go."""
    await session.execute(
        update(Exchange)
        .where(Exchange.update_id == update_id, Exchange.direction == Direction.IN)
        .values(text=command, payload=null())
        .execution_options(synchronize_session=False)
    )


async def blank_parked_identity(session: AsyncSession) -> int:
    """Parked updates (their handling failed every time) that may identify someone keep only
    their command word, as a handled one does: the blanking made in the failed handling was
    rolled back with it, and must stay undone while the update can still be retried."""
    parked = await session.execute(
        select(Exchange.update_id, Exchange.text).where(
            Exchange.status == InboxStatus.FAILED,
            Exchange.direction == Direction.IN,
            Exchange.text.like("/%"),
        )
    )
    blanked = 0
    for update_id, text in parked.all():
        command = identity_command(text)
        if command is not None and update_id is not None:
            await keep_only_command(session, update_id, command)
            blanked += 1
    return blanked


def accept_privacy(session: AsyncSession, account: Account) -> bool:
    """Record that the person accepted the notice; False if they already had."""
    if account.privacy_accepted_at is not None:
        return False
    account.privacy_accepted_at = clock.now()
    audit(session, account, "privacy_accepted", subject_type="account", subject_id=account.id)
    return True


@dataclass(frozen=True)
class HeldData:
    """What ``/mydata`` shows a person about their own account."""

    role: str
    language: str | None
    created_at: datetime
    privacy_accepted_at: datetime | None
    messages: int
    first_message_at: datetime | None
    person_code: str | None
    contacts: int
    has_name: bool
    has_phone: bool


async def held_data(session: AsyncSession, account: Account) -> HeldData:
    mine = or_(Exchange.account_id == account.id, Exchange.user_id == account.telegram_id)
    count, first = (
        await session.execute(
            select(func.count(), func.min(Exchange.occurred_at)).where(
                mine, Exchange.direction == Direction.IN
            )
        )
    ).one()
    person = await session.scalar(select(Person).where(Person.account_id == account.id))
    contacts = 0
    if person is not None:
        contacts = int(
            await session.scalar(select(func.count()).where(Contact.person_id == person.id)) or 0
        )
    audit(session, account, "own_data_read", subject_type="account", subject_id=account.id)
    return HeldData(
        role=account.role.value,
        language=account.language,
        created_at=account.created_at,
        privacy_accepted_at=account.privacy_accepted_at,
        messages=int(count),
        first_message_at=first,
        person_code=person.code if person else None,
        contacts=contacts,
        has_name=bool(person and person.name_token),
        has_phone=bool(person and person.phone_token),
    )


def anonymise_person(person: Person) -> None:
    """Keep only statistical attributes; the code becomes a meaningless ``ANON-<id>``."""
    person.code = f"ANON-{person.id}"
    person.name_token = None
    person.phone_token = None
    person.consent_at = None
    person.consent_by = None
    person.languages = None
    person.needs = None
    person.account_id = None
    person.anonymised_at = clock.now()


@dataclass(frozen=True)
class ForgetResult:
    exchanges: int
    contacts: int
    person: bool
    more: dict[str, int] = field(default_factory=dict)  # outbox rows, names, cases…


# Exchange log rows anonymised: nothing left that says what was written or by whom.
_ANONYMOUS = {"text": None, "payload": null(), "user_id": None, "chat_id": None, "account_id": None}
# A forgotten person's update still waiting in the inbox (due key: its update id), to be
# anonymised with its replies once handled (see :func:`complete_forgetting`).
FORGET_FOLLOW_UP = "forget_follow_up"


async def forget_account(
    session: AsyncSession, account: Account, *, current_update_id: int | None = None
) -> ForgetResult:
    """Right to erasure for someone who writes to the bot themselves.

    Their exchanges lose text, payload and every id that points back to them; the linked
    person record (if an operator linked one) is anonymised and its contacts' notes erased;
    the account keeps its row (the audit log refers to it) but no longer its Telegram id.
    A staff member's first name goes from the messages that named them to others; the cases
    they reported stay, without them (:func:`_unlink_reporter`).

    Their updates still waiting in the inbox (sent right after asking, say) are not wiped,
    which would leave them unanswered: they are handled, as from someone new, and then
    anonymised with their replies by :func:`complete_forgetting`, as is the answer to
    ``current_update_id`` (the update asking to forget), logged after this runs.
    """
    telegram_id = account.telegram_id
    mine = or_(
        Exchange.account_id == account.id,
        Exchange.user_id == telegram_id,
        Exchange.chat_id == telegram_id,
    )
    waiting = and_(
        Exchange.direction == Direction.IN,
        Exchange.status.in_([InboxStatus.PENDING, InboxStatus.PROCESSING]),
        Exchange.update_id != (current_update_id if current_update_id is not None else -1),
    )
    follow_ups = list(await session.scalars(select(Exchange.update_id).where(mine, waiting)))
    if current_update_id is not None:  # its answer, logged after this, names the chat
        follow_ups.append(current_update_id)
    for update_id in follow_ups:
        await claim_job_run(session, FORGET_FOLLOW_UP, str(update_id))
    result = await session.execute(
        update(Exchange)
        .where(mine, ~waiting)
        .values(**_ANONYMOUS)
        .execution_options(synchronize_session=False)
    )
    exchanges = rows_affected(result)
    unnamed = await _unname(session, account.display_name)
    person = await session.scalar(select(Person).where(Person.account_id == account.id))
    contacts = 0
    if person is not None:
        contacts = await _erase_notes(session, person.id)
        anonymise_person(person)
    await end_all(session, account.id)  # whatever they were in the middle of
    more: dict[str, int] = {
        "outbox": await _delete_outbox_rows(
            session,
            or_(OutboxMessage.account_id == account.id, OutboxMessage.chat_id == telegram_id),
        )
    }
    if unnamed:
        more["named"] = unnamed
    more["cases"] = await _unlink_reporter(session, account)
    account.telegram_id = -account.id
    account.display_name = None
    account.username = None
    account.language = None
    account.privacy_accepted_at = None
    account.unreachable_since = None
    account.unreachable_reason = None
    audit(
        session,
        account,
        "forgotten",
        subject_type="account",
        subject_id=account.id,
        detail=f"exchanges={exchanges} contacts={contacts} person={person is not None}"
        + _counts_text(more),
    )
    log.info(
        "account %s forgotten: %d exchanges anonymised%s", account.id, exchanges, _counts_text(more)
    )
    return ForgetResult(exchanges, contacts, person is not None, more)


async def complete_forgetting(session: AsyncSession) -> int:
    """Anonymise the updates that waited while their sender was forgotten, now handled, and
    their replies; returns how many updates. Run every minute (``bot.contacts_jobs``)."""
    follow_ups = dict(
        (
            await session.execute(
                select(JobRun.due_key, JobRun.id).where(JobRun.job == FORGET_FOLLOW_UP)
            )
        ).all()
    )
    if not follow_ups:
        return 0
    update_ids = [int(key) for key in follow_ups]
    still_waiting = set(
        await session.scalars(
            select(Exchange.update_id).where(
                Exchange.update_id.in_(update_ids),
                Exchange.status.in_([InboxStatus.PENDING, InboxStatus.PROCESSING]),
            )
        )
    )
    handled = [update_id for update_id in update_ids if update_id not in still_waiting]
    if not handled:
        return 0
    await session.execute(
        update(Exchange)
        .where(
            or_(
                and_(Exchange.direction == Direction.IN, Exchange.update_id.in_(handled)),
                and_(Exchange.direction == Direction.OUT, Exchange.in_reply_to.in_(handled)),
            )
        )
        .values(**_ANONYMOUS)
        .execution_options(synchronize_session=False)
    )
    done = [follow_ups[str(update_id)] for update_id in handled]
    await session.execute(delete(JobRun).where(JobRun.id.in_(done)))
    log.info("%d update(s) anonymised after their sender was forgotten", len(handled))
    return len(handled)


async def _unname(session: AsyncSession, name: str | None) -> int:
    """A staff member's first name goes from the log rows and the delivered messages that
    told others about them ("taken by …", "… is coming", "… changed …"); returns rows.

    Such messages are about a case or a service (the only ones that name staff), so only
    those are searched, and only a whole-word match counts ("Al" does not blank "Alba").
    Messages still waiting to be sent keep the name: they are sent as they were written.
    """
    if not name:
        return 0
    word = re.compile(rf"(?<!\w){re.escape(name)}(?!\w)")
    logged = await session.execute(
        select(Exchange.id, Exchange.text).where(
            Exchange.direction == Direction.OUT,
            Exchange.subject_type.is_not(None),
            Exchange.text.contains(name, autoescape=True),
        )
    )
    rows = [row_id for row_id, text in logged if text and word.search(text)]
    if rows:
        await session.execute(
            update(Exchange)
            .where(Exchange.id.in_(rows))
            .values(text=None, payload=null())
            .execution_options(synchronize_session=False)
        )
    return len(rows) + await _delete_outbox_rows(
        session, OutboxMessage.id.in_(await _delivered_naming(session, name, word))
    )


async def _delivered_naming(session: AsyncSession, name: str, word: re.Pattern[str]) -> list[int]:
    """Delivered (or given up) outbox rows about a case or a service that name ``name``."""
    # Stored JSON may spell a non-ASCII name with \u escapes: look for both spellings.
    escaped = json.dumps(name)[1:-1]
    params = func.cast(OutboxMessage.params, String)
    found = await session.execute(
        select(OutboxMessage.id, OutboxMessage.params).where(
            OutboxMessage.status.in_([OutboxStatus.SENT, OutboxStatus.FAILED]),
            OutboxMessage.subject_type.is_not(None),
            or_(params.contains(name, autoescape=True), params.contains(escaped, autoescape=True)),
        )
    )
    return [
        row_id
        for row_id, values in found
        if word.search(str((values or {}).get("text") or (values or {}).get("caption") or ""))
    ]


async def _delete_outbox_rows(session: AsyncSession, which: Any) -> int:
    """Outbox rows hold a chat id and a text: gone with the person, or past the period."""
    result = await session.execute(
        delete(OutboxMessage).where(which).execution_options(synchronize_session=False)
    )
    return rows_affected(result)


async def _unlink_reporter(session: AsyncSession, account: Account) -> int:
    """``/forget`` by someone who reported cases: the link to them goes, the cases stay.

    A case is the team's record of a person in distress, not of the reporter: what was seen
    and where is kept (until retention), but nothing says any more who reported it (the case
    row and its "created" history line lose the account). A half-written report goes with
    the rest of the person's conversation (``end_all``).
    Returns how many cases lost their reporter.
    """
    cases = await session.execute(
        update(Case)
        .where(Case.reporter_id == account.id)
        .values(reporter_id=None)
        .execution_options(synchronize_session=False)
    )
    await session.execute(
        update(CaseEvent)
        .where(CaseEvent.actor_id == account.id, CaseEvent.action == "created")
        .values(actor_id=None)
        .execution_options(synchronize_session=False)
    )
    return rows_affected(cases)


async def _case_retention(
    session: AsyncSession, text_cutoff: datetime, photo_cutoff: datetime
) -> dict[str, int]:
    """Photos (Telegram file ids) older than the photo retention go, open cases included;
    closed cases past the retention period lose their free texts and the map pin (where a
    person sleeps is as telling as a name)."""
    photos = await session.execute(
        update(Case)
        .where(Case.created_at < photo_cutoff, Case.photo_file_id.is_not(None))
        .values(photo_file_id=None)
        .execution_options(synchronize_session=False)
    )
    texts = await session.execute(
        update(Case)
        .where(
            Case.status == CaseStatus.CLOSED,
            Case.closed_at < text_cutoff,
            or_(
                Case.place.is_not(None),
                Case.seen.is_not(None),
                Case.person.is_not(None),
                Case.latitude.is_not(None),
            ),
        )
        .values(place=None, seen=None, person=None, latitude=None, longitude=None)
        .execution_options(synchronize_session=False)
    )
    return {
        "case_photos": rows_affected(photos),
        "case_texts": rows_affected(texts),
    }


async def _erase_notes(session: AsyncSession, person_id: int) -> int:
    result = await session.execute(
        update(Contact)
        .where(Contact.person_id == person_id)
        .values(notes=None, place=None)
        .execution_options(synchronize_session=False)
    )
    return rows_affected(result)


# ---- retention ---------------------------------------------------------------------------


def months_before(moment: datetime, months: int) -> datetime:
    """The same instant ``months`` calendar months earlier (day clamped to the month's end)."""
    index = moment.year * 12 + moment.month - 1 - months
    year, month = index // 12, index % 12 + 1
    day = moment.day
    while True:
        try:
            return moment.replace(year=year, month=month, day=day)
        except ValueError:
            day -= 1


@dataclass(frozen=True)
class RetentionResult:
    exchanges: int
    notes: int
    photos: int
    more: dict[str, int] = field(default_factory=dict)  # outbox rows, drafts, cases…

    def summary(self) -> str:
        own = f"exchanges={self.exchanges} notes={self.notes} photos={self.photos}"
        return own + _counts_text(self.more)


async def run_retention(
    session: AsyncSession, *, retention_months: int, photo_retention_days: int
) -> RetentionResult:
    """Anonymise what is older than the retention period; drop photos past theirs.

    Idempotent: rows already anonymised are not counted again. Photos are the file
    references in exchange payloads and cases (whoever holds the file id can fetch the
    picture); the cases' texts and drafts go too (:func:`_case_retention`). Its updates scan
    the year's tables: long work, off the event loop on SQLite.
    """
    with off_the_loop():
        return await _run_retention(session, retention_months, photo_retention_days)


async def _run_retention(
    session: AsyncSession, retention_months: int, photo_retention_days: int
) -> RetentionResult:
    now = clock.now()
    cutoff = months_before(now, retention_months)
    old_exchanges = await session.execute(
        update(Exchange)
        .where(
            Exchange.occurred_at < cutoff,
            _FINISHED,
            or_(Exchange.text.is_not(None), Exchange.payload.is_not(None)),
        )
        .values(text=None, payload=null())
        .execution_options(synchronize_session=False)
    )
    photo_cutoff = now - timedelta(days=photo_retention_days)
    photos = await session.execute(
        update(Exchange)
        .where(
            and_(
                Exchange.occurred_at < photo_cutoff,
                Exchange.kind.in_(["photo", "sendPhoto", "sendphoto"]),
                Exchange.payload.is_not(None),
                _FINISHED,
            )
        )
        .values(payload=null())
        .execution_options(synchronize_session=False)
    )
    notes = await session.execute(
        update(Contact)
        .where(Contact.occurred_at < cutoff, Contact.notes.is_not(None))
        .values(notes=None)
        .execution_options(synchronize_session=False)
    )
    # Delivered (or given up) messages past the period: the exchange log keeps the record.
    finished = OutboxMessage.status.in_([OutboxStatus.SENT, OutboxStatus.FAILED])
    more: dict[str, int] = {
        "outbox": await _delete_outbox_rows(
            session, and_(finished, OutboxMessage.created_at < cutoff)
        )
    }
    # A report or a /contact never sent keeps its texts in the draft: gone once abandoned
    # as long as photos are kept.
    more.update(await end_abandoned(session, photo_cutoff))
    more.update(await _case_retention(session, cutoff, photo_cutoff))
    result = RetentionResult(
        exchanges=rows_affected(old_exchanges),
        notes=rows_affected(notes),
        photos=rows_affected(photos),
        more=more,
    )
    audit(session, None, "retention_run", detail=result.summary())
    log.info("retention run: %s", result.summary())
    return result


@dataclass(frozen=True)
class AuditLine:
    at: datetime
    actor: str
    role: str
    action: str
    subject: str
    detail: str
    # The same, unformatted, for a reader that writes sentences in its own language.
    actor_id: int | None = None
    operator_code: str | None = None
    subject_type: str | None = None
    subject_id: int | None = None


async def audit_entries(
    session: AsyncSession,
    *,
    limit: int = 20,
    subject_type: str | None = None,
    subject_id: int | None = None,
) -> list[AuditLine]:
    """The latest audit entries (for admins), actors shown by operator code or account number."""
    from models.accounts import AuditEntry

    query = (
        select(AuditEntry, Account.operator_code)
        .outerjoin(Account, Account.id == AuditEntry.actor_id)
        .order_by(AuditEntry.at.desc(), AuditEntry.id.desc())
        .limit(limit)
    )
    if subject_type is not None:
        query = query.where(AuditEntry.subject_type == subject_type)
    if subject_id is not None:
        query = query.where(AuditEntry.subject_id == subject_id)
    lines = []
    for entry, operator_code in (await session.execute(query)).all():
        actor = operator_code or (f"#{entry.actor_id}" if entry.actor_id else "system")
        subject = f"{entry.subject_type}#{entry.subject_id}" if entry.subject_type else ""
        lines.append(
            AuditLine(
                entry.at,
                actor,
                entry.actor_role or "",
                entry.action,
                subject,
                entry.detail or "",
                actor_id=entry.actor_id,
                operator_code=operator_code,
                subject_type=entry.subject_type,
                subject_id=entry.subject_id,
            )
        )
    return lines
