"""The shared contact database: people met (by pseudonymous code), contacts, merges.

People are never identified by name: the operator writes a short pseudonymous code (see
:func:`make_code`); a name and a phone number are kept only once consent is recorded, and then
only encrypted with Fernet under ``settings.encryption_key``. Contacts link to a case or a
service by nullable foreign keys (``case_id``/``service_id``, revision 0007); the contact a
closed case leaves behind is written by :func:`models.cases.contact_for_case`.

Statistics live in :mod:`models.stats`, privacy work (retention, ``/forget``, ``/mydata``) in
:mod:`models.privacy`, exports in :mod:`models.contact_export`: each imports this module, never
the other way round.
"""

from __future__ import annotations

import enum
import logging
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from pydantic import SecretStr
from sqlalchemy import (
    BigInteger,
    Enum,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.accounts import Account, audit
from models.base import Base, BigId, clock
from models.db import rows_affected

log = logging.getLogger(__name__)


def _enum(e: type[enum.Enum], length: int = 20) -> Any:
    return Enum(e, native_enum=False, length=length, values_callable=lambda m: [x.value for x in m])


class Gender(enum.StrEnum):
    FEMALE = "female"
    MALE = "male"
    OTHER = "other"


class Housing(enum.StrEnum):
    """ETHOS conceptual categories (FEANTSA's typology of homelessness)."""

    ROOFLESS = "roofless"  # ETHOS 1-2: sleeping rough, night shelters
    HOUSELESS = "houseless"  # ETHOS 3-7: hostels, women's shelters, migrants' centres
    INSECURE = "insecure"  # ETHOS 8-10: no tenancy, eviction, violence
    INADEQUATE = "inadequate"  # ETHOS 11-13: temporary structures, unfit, overcrowded


class Channel(enum.StrEnum):
    STREET = "street"
    DESK = "desk"
    PHONE = "phone"
    BOT = "bot"


class Need(enum.StrEnum):
    FOOD = "food"
    SHELTER = "shelter"
    HYGIENE = "hygiene"
    CLOTHING = "clothing"
    HEALTH = "health"
    DOCUMENTS = "documents"
    WORK = "work"
    LEGAL = "legal"
    LISTENING = "listening"
    OTHER = "other"


class Action(enum.StrEnum):
    """What was given or done during a contact."""

    LISTENING = "listening"
    INFORMATION = "information"
    ORIENTATION = "orientation"
    REFERRAL = "referral"
    MEAL_TICKET = "meal_ticket"
    SHOWER = "shower"
    CLOTHES = "clothes"
    SHELTER_PLACEMENT = "shelter_placement"
    MEDICAL_REFERRAL = "medical_referral"


class ContactOutcome(enum.StrEnum):
    RESOLVED = "resolved"
    REFERRED = "referred"
    FOLLOW_UP = "follow_up"
    DECLINED = "declined"
    NONE = "none"


class ContactSource(enum.StrEnum):
    BOT = "bot"
    CASE = "case"
    IMPORT = "import"


class Person(Base):
    """Someone the operators meet, known by a pseudonymous code, never by name alone."""

    __tablename__ = "person"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    code: Mapped[str] = mapped_column(String(24), unique=True)
    birth_year: Mapped[int | None] = mapped_column(Integer)
    gender: Mapped[Gender | None] = mapped_column(_enum(Gender))
    nationality: Mapped[str | None] = mapped_column(String(2))  # ISO 3166-1 alpha-2
    languages: Mapped[str | None] = mapped_column(String(64))  # ISO 639-1, comma-separated
    # Last residence in the city: decides whether the city's social services are competent.
    resident_in_city: Mapped[bool | None]
    housing: Mapped[Housing | None] = mapped_column(_enum(Housing))
    needs: Mapped[str | None] = mapped_column(String(200))  # Need values, comma-separated
    consent_at: Mapped[datetime | None]
    consent_by: Mapped[int | None] = mapped_column(ForeignKey("account.id", ondelete="SET NULL"))
    name_token: Mapped[str | None] = mapped_column(Text)  # Fernet token
    phone_token: Mapped[str | None] = mapped_column(Text)  # Fernet token
    # The person's own bot account, when they write to the bot themselves.
    account_id: Mapped[int | None] = mapped_column(
        ForeignKey("account.id", ondelete="SET NULL"), unique=True
    )
    merged_into_id: Mapped[int | None] = mapped_column(ForeignKey("person.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("account.id", ondelete="SET NULL"))
    anonymised_at: Mapped[datetime | None]


class Contact(Base):
    """One intervention: who met whom, when, where, how, what was asked and what was done."""

    __tablename__ = "contact"
    __table_args__ = (Index("ix_contact_person_time", "person_id", "occurred_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    occurred_at: Mapped[datetime] = mapped_column(index=True)
    place: Mapped[str | None] = mapped_column(String(80))
    operator_id: Mapped[int | None] = mapped_column(ForeignKey("account.id", ondelete="SET NULL"))
    person_id: Mapped[int | None] = mapped_column(ForeignKey("person.id", ondelete="SET NULL"))
    channel: Mapped[Channel] = mapped_column(_enum(Channel))
    outcome: Mapped[ContactOutcome] = mapped_column(
        _enum(ContactOutcome), default=ContactOutcome.NONE
    )
    notes: Mapped[str | None] = mapped_column(Text)
    # The case this contact came from, the service it was about (kept if those go away).
    case_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("help_case.id", ondelete="SET NULL"), index=True
    )
    service_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("service.id", ondelete="SET NULL")
    )
    source: Mapped[ContactSource] = mapped_column(_enum(ContactSource, 12))
    created_at: Mapped[datetime] = mapped_column(default=clock.now)

    need_rows: Mapped[list[ContactNeed]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by="ContactNeed.need"
    )
    action_rows: Mapped[list[ContactAction]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by="ContactAction.action"
    )

    @property
    def needs(self) -> list[Need]:
        return [row.need for row in self.need_rows]

    @property
    def actions(self) -> list[Action]:
        return [row.action for row in self.action_rows]


class ContactNeed(Base):
    """A need expressed during a contact (one row each, so statistics are a GROUP BY)."""

    __tablename__ = "contact_need"

    contact_id: Mapped[int] = mapped_column(
        ForeignKey("contact.id", ondelete="CASCADE"), primary_key=True
    )
    need: Mapped[Need] = mapped_column(_enum(Need), primary_key=True)


class ContactAction(Base):
    """Something given or done during a contact."""

    __tablename__ = "contact_action"

    contact_id: Mapped[int] = mapped_column(
        ForeignKey("contact.id", ondelete="CASCADE"), primary_key=True
    )
    action: Mapped[Action] = mapped_column(_enum(Action), primary_key=True)


# ---- pseudonymous codes ------------------------------------------------------------------

CODE_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_CODE_BODY = re.compile(r"^([A-Z]{2})(\d{4})([FMX])([2-9]|[1-9]\d+)?$")
SEX_LETTER = {Gender.FEMALE: "F", Gender.MALE: "M", Gender.OTHER: "X", None: "X"}
LETTER_SEX = {"F": Gender.FEMALE, "M": Gender.MALE}


def check_character(body: str) -> str:
    """Luhn mod 36 over the code body: catches any single wrong character and most swaps."""
    factor, total, n = 2, 0, len(CODE_ALPHABET)
    for char in reversed(body):
        addend = factor * CODE_ALPHABET.index(char)
        factor = 1 if factor == 2 else 2
        total += addend // n + addend % n
    return CODE_ALPHABET[(n - total % n) % n]


def initials_of(text: str) -> str:
    """Two capital letters A-Z (accents dropped); X stands for an unknown letter."""
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().upper()
    letters = [c for c in plain if "A" <= c <= "Z"][:2]
    return "".join(letters).ljust(2, "X")


def make_code(initials: str, birth_year: int | None, gender: Gender | None, serial: int = 1) -> str:
    """``II YYYY S [n] - C``: initials, year of birth (0000 unknown), F/M/X, serial, check.

    Example: Mario Rossi born 1985, male → ``MR1985M-`` plus the check character; a second
    person with the same initials, year and sex gets serial 2 (``MR1985M2-``…).
    """
    year = birth_year if birth_year is not None else 0
    body = f"{initials_of(initials)}{year:04d}{SEX_LETTER[gender]}{serial if serial > 1 else ''}"
    return f"{body}-{check_character(body)}"


_CODE_SHAPE = re.compile(r"^[A-Z]{2}\d{4}[FMX]\d*[0-9A-Z]$")


def looks_like_code(text: str) -> bool:
    """Shaped like a code (initials, year, sex, check), whether or not the check is right."""
    return bool(_CODE_SHAPE.match(re.sub(r"[\s\-]", "", text.upper())))


INVISIBLE = frozenset({"Cf", "Cc", "Zl", "Zp"})


def normalise_code(text: str) -> str | None:
    """The canonical code for what an operator typed, or None if malformed or mistyped.

    Invisible characters a copy and paste brings along (zero-width spaces and joiners,
    direction marks, a byte-order mark, a soft hyphen) are dropped before the check."""
    visible = "".join(ch for ch in text if unicodedata.category(ch) not in INVISIBLE)
    compact = re.sub(r"[\s\-\u2010-\u2015]", "", visible.upper())
    if len(compact) < 8:
        return None
    body, check = compact[:-1], compact[-1]
    if not _CODE_BODY.match(body) or check_character(body) != check:
        return None
    return f"{body}-{check}"


# ---- people --------------------------------------------------------------------------------


class PrivacyError(Exception):
    """Personal data refused: no consent recorded, or no encryption key configured."""


# Merges only ever point at a live record (see :func:`lock_for_merge`), so a walk is one hop;
# the bound protects against pointers left by older versions or edited by hand.
MAX_MERGE_HOPS = 16


async def person_by_id(session: AsyncSession, person_id: int) -> Person | None:
    """The record with this id, as a button names it (merged or not)."""
    return await session.get(Person, person_id)


async def person_by_code(session: AsyncSession, code: str) -> Person | None:
    canonical = normalise_code(code)
    if canonical is None:
        return None
    person = await session.scalar(select(Person).where(Person.code == canonical))
    return await kept_record(session, person)


async def kept_record(session: AsyncSession, person: Person | None) -> Person | None:
    """The record a merged one points to (itself if not merged), following at most
    :data:`MAX_MERGE_HOPS` pointers; None if the pointers run in a circle or too far."""
    seen: set[int] = set()
    while person is not None and person.merged_into_id is not None:
        if person.id in seen or len(seen) >= MAX_MERGE_HOPS:
            log.error("person %s: merge pointers form a cycle or a chain too long", person.id)
            return None
        seen.add(person.id)
        person = await session.get(Person, person.merged_into_id)
    return person


async def read_person(
    session: AsyncSession, actor: Account | None, code: str, *, purpose: str = "view"
) -> Person | None:
    """Look a person up for someone to see: every such read is written to the audit log."""
    person = await person_by_code(session, code)
    if person is not None:
        audit(
            session,
            actor,
            "person_read",
            subject_type="person",
            subject_id=person.id,
            detail=purpose,
        )
    return person


async def create_person(
    session: AsyncSession,
    *,
    initials: str,
    birth_year: int | None = None,
    gender: Gender | None = None,
    created_by: Account | None = None,
    **fields: Any,
) -> Person:
    """A new person with the first free serial for their initials, year and sex."""
    for serial in range(1, 1000):
        code = make_code(initials, birth_year, gender, serial)
        if await session.scalar(select(Person.id).where(Person.code == code)) is not None:
            continue
        person = Person(
            code=code,
            birth_year=birth_year,
            gender=gender,
            created_at=clock.now(),
            created_by=created_by.id if created_by else None,
            **fields,
        )
        try:
            async with session.begin_nested():
                session.add(person)
        except IntegrityError:  # another operator took this serial a moment ago
            continue
        audit(session, created_by, "person_created", subject_type="person", subject_id=person.id)
        return person
    raise ValueError("no free serial for this code")


def _fernet(key: SecretStr | str | None) -> Fernet:
    raw = key.get_secret_value() if isinstance(key, SecretStr) else key
    if not raw:
        raise PrivacyError("no encryption key configured (HELPCENTER_ENCRYPTION_KEY)")
    try:
        return Fernet(raw.encode())
    except ValueError as exc:
        raise PrivacyError("HELPCENTER_ENCRYPTION_KEY is not a Fernet key") from exc


def record_consent(person: Person, actor: Account | None, session: AsyncSession) -> None:
    person.consent_at = clock.now()
    person.consent_by = actor.id if actor else None
    audit(session, actor, "consent_recorded", subject_type="person", subject_id=person.id)


def withdraw_consent(person: Person, actor: Account | None, session: AsyncSession) -> None:
    """No consent, no name and phone: they go at once."""
    person.consent_at = None
    person.consent_by = None
    person.name_token = None
    person.phone_token = None
    audit(session, actor, "consent_withdrawn", subject_type="person", subject_id=person.id)


def set_identity(
    person: Person, *, name: str | None, phone: str | None, key: SecretStr | str | None
) -> None:
    """Store name and phone encrypted; refused without recorded consent or without a key."""
    if person.consent_at is None:
        raise PrivacyError("no consent recorded for this person")
    fernet = _fernet(key)
    person.name_token = fernet.encrypt(name.encode()).decode() if name else None
    person.phone_token = fernet.encrypt(phone.encode()).decode() if phone else None


def read_identity(person: Person, key: SecretStr | str | None) -> tuple[str | None, str | None]:
    if person.name_token is None and person.phone_token is None:
        return None, None
    fernet = _fernet(key)

    def open_token(token: str | None) -> str | None:
        if token is None:
            return None
        try:
            return fernet.decrypt(token.encode()).decode()
        except InvalidToken as exc:
            raise PrivacyError("the encryption key does not open this record") from exc

    return open_token(person.name_token), open_token(person.phone_token)


PERSON_FIELDS = {"birth_year", "nationality", "languages", "resident_in_city", "housing", "needs"}


def update_person(person: Person, **values: Any) -> None:
    """Set optional facts about a person (already validated by the caller's parser)."""
    for name, value in values.items():
        if name not in PERSON_FIELDS:
            raise ValueError(f"unknown person field {name}")
        setattr(person, name, value)


def mergeable(keep: Person | None, drop: Person | None) -> bool:
    """Two distinct live records: neither merged into another, neither anonymised.

    A merge asked for with a button is decided when the button is pressed, on these rows as
    they are then: two opposite merges confirmed one after the other would otherwise leave two
    records pointing at each other.
    """
    return (
        keep is not None
        and drop is not None
        and keep.id != drop.id
        and keep.merged_into_id is None
        and drop.merged_into_id is None
        and keep.anonymised_at is None
        and drop.anonymised_at is None
    )


async def lock_for_merge(
    session: AsyncSession, keep_id: int, drop_id: int
) -> tuple[Person, Person] | None:
    """Both records, read fresh and locked until the commit, if they may still be merged.

    ``FOR UPDATE`` on PostgreSQL (rows taken in id order, so two merges of the same pair
    cannot deadlock). SQLite has one writer at a time, but a plain read does not wait for it:
    a no-op write first takes this handling's turn as the writer, so the rows read next are
    the ones the merge will change, not those from before another merge committed.
    """
    ids = [keep_id, drop_id]
    if session.get_bind().dialect.name == "sqlite":
        await session.execute(
            update(Person)
            .where(Person.id.in_(ids))
            .values(merged_into_id=Person.merged_into_id)
            .execution_options(synchronize_session=False)
        )
    query = (
        select(Person)
        .where(Person.id.in_(ids))
        .order_by(Person.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    rows = {person.id: person for person in await session.scalars(query)}
    keep, drop = rows.get(keep_id), rows.get(drop_id)
    if keep is None or drop is None or not mergeable(keep, drop):
        return None
    return keep, drop


async def merge_people(
    session: AsyncSession, keep: Person, drop: Person, actor: Account | None
) -> int:
    """Fold ``drop`` into ``keep``: contacts move, missing facts are filled, the merge is logged.

    ``drop`` stays as an empty pointer (``merged_into_id``) so an old code still finds the
    person. Returns the number of contacts moved. Take both with :func:`lock_for_merge`.
    """
    if not mergeable(keep, drop):
        raise ValueError("only two distinct live records can be merged")
    moved = await session.execute(
        update(Contact).where(Contact.person_id == drop.id).values(person_id=keep.id)
    )
    for name in (*sorted(PERSON_FIELDS), "gender", "consent_at", "consent_by"):
        if getattr(keep, name) is None and getattr(drop, name) is not None:
            setattr(keep, name, getattr(drop, name))
    if keep.name_token is None and drop.name_token is not None:
        keep.name_token, keep.phone_token = drop.name_token, drop.phone_token
    if keep.account_id is None and drop.account_id is not None:
        account_id, drop.account_id = drop.account_id, None
        await session.flush()
        keep.account_id = account_id
    drop.merged_into_id = keep.id
    drop.name_token = drop.phone_token = None
    count = rows_affected(moved)
    audit(
        session,
        actor,
        "person_merged",
        subject_type="person",
        subject_id=keep.id,
        detail=f"merged person {drop.id} into {keep.id}; {count} contacts moved",
    )
    return count


# ---- contacts ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ContactFacts:
    """What a contact says, from the bot's buttons, a closed case or an import."""

    occurred_at: datetime
    channel: Channel
    person_id: int | None = None
    operator_id: int | None = None
    place: str | None = None
    needs: Sequence[Need] = ()
    actions: Sequence[Action] = ()
    outcome: ContactOutcome = ContactOutcome.NONE
    notes: str | None = None
    case_id: int | None = None
    service_id: int | None = None
    source: ContactSource = ContactSource.BOT


async def record_contact(session: AsyncSession, facts: ContactFacts) -> Contact:
    contact = Contact(
        occurred_at=facts.occurred_at,
        channel=facts.channel,
        person_id=facts.person_id,
        operator_id=facts.operator_id,
        place=facts.place,
        outcome=facts.outcome,
        notes=facts.notes or None,
        case_id=facts.case_id,
        service_id=facts.service_id,
        source=facts.source,
        created_at=clock.now(),
        need_rows=[ContactNeed(need=n) for n in dict.fromkeys(facts.needs)],
        action_rows=[ContactAction(action=a) for a in dict.fromkeys(facts.actions)],
    )
    session.add(contact)
    await session.flush()
    return contact


async def contact_from_closed_case(
    session: AsyncSession,
    *,
    case_id: int,
    occurred_at: datetime,
    operator_id: int | None,
    outcome: ContactOutcome,
    place: str | None = None,
    person_id: int | None = None,
    channel: Channel = Channel.STREET,
    needs: Iterable[Need] = (),
    actions: Iterable[Action] = (),
) -> Contact:
    """The contact a closed case leaves behind; closing twice does not count twice."""
    existing = await session.scalar(
        select(Contact).where(Contact.case_id == case_id, Contact.source == ContactSource.CASE)
    )
    if existing is not None:
        return existing
    return await record_contact(
        session,
        ContactFacts(
            occurred_at=occurred_at,
            channel=channel,
            person_id=person_id,
            operator_id=operator_id,
            place=place,
            needs=tuple(needs),
            actions=tuple(actions),
            outcome=outcome,
            case_id=case_id,
            source=ContactSource.CASE,
        ),
    )


async def person_history(session: AsyncSession, person: Person, limit: int = 10) -> list[Contact]:
    query = (
        select(Contact)
        .where(Contact.person_id == person.id)
        .order_by(Contact.occurred_at.desc())
        .limit(limit)
    )
    return list(await session.scalars(query))


async def count_contacts(session: AsyncSession, person: Person) -> int:
    from sqlalchemy import func

    return int(
        await session.scalar(select(func.count()).where(Contact.person_id == person.id)) or 0
    )
