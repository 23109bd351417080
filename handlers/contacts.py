"""The contact database in the bot: record a contact in a few taps, people, statistics,
exports, and each person's privacy (notice, /mydata, /forget); the audit log for admins.

The /contact draft is the contact flow of the operator's conversation
(:mod:`models.conversation`), so any worker can handle the next tap. Reads of a person's
record go through ``models.contacts.read_person``, which audits them.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from datetime import date, datetime
from typing import Any

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, InputFile, Update
from telegram.ext import Application, CallbackQueryHandler, CommandHandler, TypeHandler

from bot.audit_text import audit_sentence
from bot.charts import bar_chart, time_chart
from bot.contacts_jobs import (
    FOLLOW_UP_INTERVAL_SECONDS,
    JOB_INTERVAL_SECONDS,
    contacts_jobs,
    privacy_follow_ups,
)
from bot.contacts_text import (
    ACTIONS,
    CHANNELS,
    NEEDS,
    OUTCOMES,
    PLACES,
    label,
    privacy_notice,
    render_draft,
    render_held_data,
    render_person,
    render_stats,
)
from bot.i18n import N_
from bot.parsing import callback_data, parse_id
from bot.runtime import HCContext
from handlers.bad_input import stale_button
from handlers.common import Command, acknowledge, edit_text, handles, reply
from models import contacts as people
from models.accounts import audit
from models.base import clock
from models.contact_export import ExportOptions, export_xlsx
from models.contacts import Action, Channel, ContactFacts, ContactOutcome, Gender, Housing, Need
from models.conversation import Flow, advance, begin, end
from models.privacy import (
    accept_privacy,
    audit_entries,
    forget_account,
    held_data,
    identity_command,
    keep_only_command,
)
from models.roles import Permission, Role
from models.stats import Period, compute_stats
from models.team import set_role

COMMANDS = [
    Command("contact", N_("Record a contact with a person you met"), Permission.RECORD_CONTACTS),
    Command("note", N_("Add a note to the contact being recorded"), Permission.RECORD_CONTACTS),
    Command("person", N_("Find a person by code, or register one"), Permission.RECORD_CONTACTS),
    Command("merge", N_("Merge two records of the same person"), Permission.MERGE_PEOPLE),
    Command("stats", N_("Statistics for a period"), Permission.VIEW_STATISTICS),
    Command("export", N_("Export contacts and exchanges (XLSX)"), Permission.EXPORT_DATA),
    Command("audit", N_("Audit log: who read or changed what"), Permission.VIEW_AUDIT_LOG),
    Command("privacy", N_("How we use your data")),
    Command("mydata", N_("See what we hold about you")),
    Command("forget", N_("Erase your data")),
]

PRIVACY_GROUP = -1  # after the account is loaded (-10), before any answer (0)
IDENTITY_LOG_GROUP = -9  # before any feature reads the message, whoever sent it
PERIODS = {
    "week": N_("This week"),
    "month": N_("This month"),
    "last": N_("Last month"),
    "year": N_("This year"),
}


def register(application: Application[Any, Any, Any, Any, Any, Any]) -> None:
    add = application.add_handler
    add(CommandHandler("contact", contact_command))
    add(CommandHandler("note", note_command))
    add(CallbackQueryHandler(contact_button, pattern="^ct:"))
    add(CommandHandler("person", person_command))
    add(CallbackQueryHandler(person_button, pattern="^pp:"))
    add(CommandHandler("merge", merge_command))
    add(CallbackQueryHandler(merge_button, pattern="^mg:"))
    add(CommandHandler("stats", stats_command))
    add(CallbackQueryHandler(stats_button, pattern="^st:"))
    add(CommandHandler("export", export_command))
    add(CallbackQueryHandler(export_button, pattern="^ex:"))
    add(CommandHandler("audit", audit_command))
    add(CommandHandler("privacy", privacy_command))
    add(CallbackQueryHandler(privacy_button, pattern="^pv:"))
    add(CommandHandler("mydata", mydata_command))
    add(CommandHandler("forget", forget_command))
    add(CallbackQueryHandler(forget_button, pattern="^fg:"))
    add(TypeHandler(Update, first_contact_notice), group=PRIVACY_GROUP)
    add(TypeHandler(Update, blank_identity_arguments), group=IDENTITY_LOG_GROUP)
    if application.job_queue is not None:
        application.job_queue.run_repeating(
            contacts_jobs, interval=JOB_INTERVAL_SECONDS, first=60, name="contacts"
        )
        application.job_queue.run_repeating(
            privacy_follow_ups,
            interval=FOLLOW_UP_INTERVAL_SECONDS,
            first=FOLLOW_UP_INTERVAL_SECONDS,
            name="privacy_follow_ups",
        )


def _keyboard(buttons: Sequence[tuple[str, str]], per_row: int = 2) -> InlineKeyboardMarkup:
    rows = [
        [InlineKeyboardButton(text, callback_data=data) for text, data in buttons[i : i + per_row]]
        for i in range(0, len(buttons), per_row)
    ]
    return InlineKeyboardMarkup(rows)


async def _show(update: Update, context: HCContext, text: str, **kwargs: Any) -> None:
    """Edit the message whose button was pressed, or answer a command with a new one."""
    query = update.callback_query
    if query is not None:
        await acknowledge(update, context)
        await edit_text(update, text, **kwargs)
    else:
        await reply(update, context, text, **kwargs)


def _data(update: Update) -> list[str]:
    query = update.callback_query
    return (query.data or "").split(":") if query is not None else []


# ---- the draft: the contact flow of the operator's conversation ----------------------------

WHO = "channel"  # the first step: who was met (a code, or anonymous), then how


def _open_draft(context: HCContext) -> dict[str, Any] | None:
    """A copy of the contact being recorded, to change and then keep with :func:`_keep`."""
    row = context.conversation.get(Flow.CONTACT)
    return dict(row.data) if row is not None else None


def _step_of(context: HCContext) -> str:
    row = context.conversation.get(Flow.CONTACT)
    return row.step if row is not None else WHO


def _keep(context: HCContext, draft: dict[str, Any], step: str) -> None:
    row = context.conversation.get(Flow.CONTACT)
    assert row is not None, "kept only while the contact is open"
    advance(row, step, **draft)


# ---- /contact ----------------------------------------------------------------------------


@handles("contact", Permission.RECORD_CONTACTS, private_only=True)
async def contact_command(update: Update, context: HCContext) -> None:
    _ = context._
    args = context.args or []
    draft: dict[str, Any] = {"started_at": clock.now().isoformat(), "needs": [], "actions": []}
    if args:
        person = await people.read_person(
            context.session, context.account, args[0], purpose="contact"
        )
        if person is None:
            await reply(update, context, _unknown_code(_, args[0]))
            return
        draft.update(person_id=person.id, person_code=person.code)
        context.scope.concerns("person", person.id)
        await _begin_contact(update, context, draft)
        await _ask_channel(update, context, draft)
        return
    await _begin_contact(update, context, draft)
    text = _(
        "Who did you meet? For a person with a code send /contact CODE (register someone new "
        "with /person new INITIALS YEAR SEX), or tap Anonymous."
    )
    await reply(update, context, text, reply_markup=_keyboard([(_("Anonymous"), "ct:anon")]))


async def _begin_contact(update: Update, context: HCContext, draft: dict[str, Any]) -> None:
    """A new contact, in place of any one left unsaved (who, then how you met)."""
    chat = update.effective_chat
    assert chat is not None
    await begin(
        context.session, context.conversation, Flow.CONTACT, chat_id=chat.id, step=WHO, data=draft
    )


def _unknown_code(_: Any, code: str) -> str:
    """Echo what was typed only if it is shaped like a code (a name typed instead of a code
    must not come back in the answer, which the exchange log keeps)."""
    if people.looks_like_code(code):
        return _(
            "No person with the code {code}. Check it (the last character is a check letter), "
            "or register them with /person new INITIALS YEAR SEX, for example "
            "/person new MR 1985 M."
        ).format(code=code[:24])
    return _(
        "That is not a person's code: a code looks like MR1985M-V (initials, year of birth, "
        "sex, check letter). Register someone new with /person new INITIALS YEAR SEX, for "
        "example /person new MR 1985 M."
    )


async def _ask_channel(update: Update, context: HCContext, draft: dict[str, Any]) -> None:
    _ = context._
    buttons = [(_(text), f"ct:ch:{value.value}") for value, text in CHANNELS.items()]
    text = render_draft(draft, _) + "\n\n" + _("How did you meet?")
    await _show(update, context, text, reply_markup=_keyboard(buttons))


def _toggles(
    labels: dict[Any, str], chosen: list[str], prefix: str, _: Any
) -> list[tuple[str, str]]:
    buttons = [
        (("✓ " if value.value in chosen else "") + _(text), f"ct:{prefix}:{value.value}")
        for value, text in labels.items()
    ]
    return [*buttons, (_("Done"), f"ct:{prefix}:done")]


@handles("contact", Permission.RECORD_CONTACTS, private_only=True)
async def contact_button(update: Update, context: HCContext) -> None:
    _ = context._
    parts = _data(update)
    draft = _open_draft(context)
    if draft is None or len(parts) < 2:
        await _show(
            update, context, _("This contact is no longer open. Start again with /contact.")
        )
        return
    step, value = parts[1], parts[2] if len(parts) > 2 else ""
    if draft.get("person_id"):
        context.scope.concerns("person", int(draft["person_id"]))
    if step == "cancel":
        await end(context.session, context.conversation, Flow.CONTACT)
        await _show(update, context, _("Contact discarded."))
        return
    if step == "save":
        await _save_contact(update, context, draft)
        return
    if step == "anon":
        await _ask_channel(update, context, draft)
        return
    if step == "ch" and value in Channel.__members__.values():
        draft["channel"] = value
        await _next(update, context, draft, "place")
    elif step == "pl" and (value in PLACES or value == "skip"):
        draft["place"] = None if value == "skip" else value
        await _next(update, context, draft, "needs")
    elif step == "nd":
        await _toggle(update, context, draft, "needs", value, Need, "actions")
    elif step == "ac":
        await _toggle(update, context, draft, "actions", value, Action, "outcome")
    elif step == "oc" and value in ContactOutcome.__members__.values():
        draft["outcome"] = value
        await _next(update, context, draft, "confirm")
    else:
        await _show(
            update, context, _("This contact is no longer open. Start again with /contact.")
        )


async def _toggle(
    update: Update,
    context: HCContext,
    draft: dict[str, Any],
    key: str,
    value: str,
    kind: type[Need] | type[Action],
    after: str,
) -> None:
    if value == "done":
        await _next(update, context, draft, after)
        return
    if value not in kind.__members__.values():
        await stale_button(update, context, answer=True)
        return
    chosen: list[str] = list(draft.get(key) or [])
    chosen.remove(value) if value in chosen else chosen.append(value)
    draft[key] = chosen
    await _next(update, context, draft, key)


async def _next(update: Update, context: HCContext, draft: dict[str, Any], step: str) -> None:
    """Save the draft and show the step ``step`` (remembered: a /note shows it again)."""
    _ = context._
    _keep(context, draft, step)
    summary = render_draft(draft, _) + "\n\n"
    if step == "place":
        buttons = [(_(text), f"ct:pl:{key}") for key, text in PLACES.items()]
        buttons.append((_("Skip"), "ct:pl:skip"))
        await _show(update, context, summary + _("Where?"), reply_markup=_keyboard(buttons))
    elif step == "needs":
        buttons = _toggles(NEEDS, draft["needs"], "nd", _)
        text = summary + _("What did they ask for? Tap all that apply, then Done.")
        await _show(update, context, text, reply_markup=_keyboard(buttons))
    elif step == "actions":
        buttons = _toggles(ACTIONS, draft["actions"], "ac", _)
        text = summary + _("What was given or done? Tap all that apply, then Done.")
        await _show(update, context, text, reply_markup=_keyboard(buttons))
    elif step == "outcome":
        buttons = [(_(text), f"ct:oc:{value.value}") for value, text in OUTCOMES.items()]
        await _show(update, context, summary + _("Outcome?"), reply_markup=_keyboard(buttons))
    else:
        buttons = [(_("Save"), "ct:save"), (_("Cancel"), "ct:cancel")]
        text = summary + _("Add a note with /note followed by the text, or save now.")
        await _show(update, context, text, reply_markup=_keyboard(buttons))


async def _save_contact(update: Update, context: HCContext, draft: dict[str, Any]) -> None:
    _ = context._
    if not draft.get("channel"):
        await _ask_channel(update, context, draft)
        return
    facts = ContactFacts(
        occurred_at=datetime.fromisoformat(draft["started_at"]),
        channel=Channel(draft["channel"]),
        person_id=draft.get("person_id"),
        operator_id=context.account.id,
        place=draft.get("place"),
        needs=[Need(n) for n in draft.get("needs") or []],
        actions=[Action(a) for a in draft.get("actions") or []],
        outcome=ContactOutcome(draft.get("outcome") or ContactOutcome.NONE),
        notes=draft.get("notes"),
    )
    contact = await people.record_contact(context.session, facts)
    await end(context.session, context.conversation, Flow.CONTACT)
    context.scope.concerns("contact", contact.id)
    text = render_draft(draft, _) + "\n\n" + _("Contact saved (number {id}).").format(id=contact.id)
    await _show(update, context, text)


@handles("contact", Permission.RECORD_CONTACTS, private_only=True)
async def note_command(update: Update, context: HCContext) -> None:
    _ = context._
    draft = _open_draft(context)
    text = " ".join(context.args or []).strip()
    if draft is None:
        await reply(update, context, _("No contact is being recorded. Start with /contact."))
        return
    if not text:
        await reply(
            update, context, _("Write the note after the command: /note slept at the station.")
        )
        return
    draft["notes"] = ((draft.get("notes") or "") + "\n" + text).strip()[:2000]
    # The note joins the draft; the person goes on from the step they were at (an outcome
    # not chosen yet is still asked, not skipped).
    if not draft.get("channel"):
        _keep(context, draft, WHO)
        await _ask_channel(update, context, draft)
        return
    await _next(update, context, draft, _step_of(context))


# ---- /person -----------------------------------------------------------------------------

SEXES = {"F": Gender.FEMALE, "M": Gender.MALE, "X": None}


@handles("people", Permission.RECORD_CONTACTS, private_only=True)
async def person_command(update: Update, context: HCContext) -> None:
    _ = context._
    args = context.args or []
    if not args:
        await reply(update, context, _person_usage(_))
        return
    if args[0].lower() == "new":
        await _new_person(update, context, args[1:])
        return
    person = await people.read_person(context.session, context.account, args[0])
    if person is None:
        await reply(update, context, _unknown_code(_, args[0]))
        return
    context.scope.concerns("person", person.id)
    if len(args) > 1 and args[1].lower() == "set":
        problem = _apply_facts(person, args[2:])
        if problem:
            await reply(update, context, _(problem))
            return
    elif len(args) > 1 and args[1].lower() == "identity":
        await _set_identity(update, context, person, " ".join(args[2:]))
        return
    await _show_person(update, context, person)


def _person_usage(_: Any) -> str:
    return _(
        "/person CODE shows a person and their contacts.\n"
        "/person new INITIALS YEAR SEX registers someone (SEX is F, M or X; YEAR may be ?).\n"
        "/person CODE set year=1985 nationality=MA languages=ar,fr resident=yes "
        "housing=roofless\n"
        "/person CODE identity NAME; PHONE (only with consent; kept encrypted)."
    )


async def _show_person(update: Update, context: HCContext, person: people.Person) -> None:
    _ = context._
    history = await people.person_history(context.session, person, limit=5)
    total = await people.count_contacts(context.session, person)
    text = render_person(person, history, total, _, context.settings.tz)
    if person.consent_at is None:
        buttons = [(_("Record consent"), callback_data("pp", "consent", person.id))]
    else:
        buttons = [(_("Withdraw consent"), callback_data("pp", "withdraw", person.id))]
    await _show(update, context, text, reply_markup=_keyboard(buttons))


async def _new_person(update: Update, context: HCContext, args: list[str]) -> None:
    _ = context._
    if len(args) != 3 or args[2].upper() not in SEXES:
        await reply(update, context, _person_usage(_))
        return
    year: int | None = None
    if args[1] != "?":
        if not re.fullmatch(r"(19|20)\d\d", args[1]):
            await reply(
                update, context, _("The year of birth should look like 1985 (or ? if unknown).")
            )
            return
        year = int(args[1])
    person = await people.create_person(
        context.session,
        initials=args[0],
        birth_year=year,
        gender=SEXES[args[2].upper()],
        created_by=context.account,
    )
    context.scope.concerns("person", person.id)
    text = _("Registered with the code {code}. Record a contact: /contact {code}").format(
        code=person.code
    )
    await reply(update, context, text)


FACT_PARSERS: dict[str, tuple[str, Any]] = {
    "year": ("birth_year", lambda v: int(v) if re.fullmatch(r"(19|20)\d\d", v) else ValueError),
    "nationality": (
        "nationality",
        lambda v: v.upper() if re.fullmatch(r"[A-Za-z]{2}", v) else ValueError,
    ),
    "languages": (
        "languages",
        lambda v: v.lower() if re.fullmatch(r"[a-z]{2}(,[a-z]{2})*", v.lower()) else ValueError,
    ),
    "resident": (
        "resident_in_city",
        lambda v: {"yes": True, "si": True, "sì": True, "no": False}.get(v.lower(), ValueError),
    ),
    "housing": (
        "housing",
        lambda v: Housing(v.lower()) if v.lower() in set(Housing) else ValueError,
    ),
}


def _apply_facts(person: people.Person, pairs: list[str]) -> str | None:
    """Set ``key=value`` facts; returns the (untranslated) problem, or None when all is well."""
    values: dict[str, Any] = {}
    for pair in pairs:
        key, _sep, raw = pair.partition("=")
        parser = FACT_PARSERS.get(key.lower())
        value = parser[1](raw) if parser else ValueError
        if parser is None or value is ValueError:
            return N_(
                "I could not read that. Use for example: year=1985 nationality=MA "
                "languages=ar,fr resident=yes housing=roofless (roofless, houseless, insecure, "
                "inadequate)."
            )
        values[parser[0]] = value
    people.update_person(person, **values)
    return None


async def _set_identity(
    update: Update, context: HCContext, person: people.Person, text: str
) -> None:
    """Name and phone, encrypted (the message that carried them was blanked in the log
    before anything read it, see :func:`blank_identity_arguments`)."""
    _ = context._
    name, _sep, phone = (part.strip() for part in text.partition(";"))
    try:
        people.set_identity(
            person, name=name or None, phone=phone or None, key=context.settings.encryption_key
        )
    except people.PrivacyError:
        if person.consent_at is None:
            message = _("Record the person's consent first: without it no name or phone is kept.")
        else:
            message = _("Names and phones cannot be kept: no encryption key is configured.")
        await reply(update, context, message)
        return
    await reply(update, context, _("Name and phone saved, encrypted."))


@handles("people", Permission.RECORD_CONTACTS, private_only=True)
async def person_button(update: Update, context: HCContext) -> None:
    _ = context._
    parts = _data(update)
    person_id = parse_id(parts[2]) if len(parts) == 3 else None
    person = await people.person_by_id(context.session, person_id) if person_id else None
    if person is None:
        await _show(update, context, _("This record no longer exists."))
        return
    context.scope.concerns("person", person.id)
    if parts[1] == "consent":
        people.record_consent(person, context.account, context.session)
    elif parts[1] == "withdraw":
        people.withdraw_consent(person, context.account, context.session)
    audit(
        context.session,
        context.account,
        "person_read",
        subject_type="person",
        subject_id=person.id,
        detail="view",
    )
    await _show_person(update, context, person)


# ---- /merge ------------------------------------------------------------------------------


@handles("people", Permission.MERGE_PEOPLE, private_only=True)
async def merge_command(update: Update, context: HCContext) -> None:
    _ = context._
    args = context.args or []
    if len(args) != 2:
        await reply(update, context, _("Write: /merge CODE_TO_KEEP CODE_TO_MERGE_INTO_IT"))
        return
    keep = await people.read_person(context.session, context.account, args[0], purpose="merge")
    drop = await people.read_person(context.session, context.account, args[1], purpose="merge")
    if keep is None or drop is None:
        await reply(update, context, _unknown_code(_, args[0] if keep is None else args[1]))
        return
    if keep.id == drop.id:
        await reply(update, context, _("These two codes are already the same record."))
        return
    keep_total = await people.count_contacts(context.session, keep)
    drop_total = await people.count_contacts(context.session, drop)
    text = _(
        "Merge {drop} ({drop_total} contacts) into {keep} ({keep_total} contacts)? "
        "The contacts move to {keep}; {drop} will point to it."
    ).format(drop=drop.code, drop_total=drop_total, keep=keep.code, keep_total=keep_total)
    buttons = [(_("Merge"), callback_data("mg", keep.id, drop.id)), (_("Cancel"), "mg:cancel")]
    await reply(update, context, text, reply_markup=_keyboard(buttons))


@handles("people", Permission.MERGE_PEOPLE, private_only=True)
async def merge_button(update: Update, context: HCContext) -> None:
    _ = context._
    parts = _data(update)
    if parts == ["mg", "cancel"]:
        await _show(update, context, _("Nothing merged."))
        return
    keep_id, drop_id = (parse_id(p) for p in parts[1:]) if len(parts) == 3 else (None, None)
    if keep_id is None or drop_id is None:
        await stale_button(update, context, answer=True)
        return
    pair = await people.lock_for_merge(context.session, keep_id, drop_id)
    if pair is None:
        await _show(update, context, _("Nothing merged: one of the records changed meanwhile."))
        return
    keep, drop = pair
    moved = await people.merge_people(context.session, keep, drop, context.account)
    context.scope.concerns("person", keep.id)
    text = _("Merged: {drop} is now part of {keep} ({moved} contacts moved).").format(
        drop=drop.code, keep=keep.code, moved=moved
    )
    await _show(update, context, text)


# ---- /stats and /export --------------------------------------------------------------------


def _period(key: str, context: HCContext) -> Period:
    now, tz = clock.now(), context.settings.tz
    return {
        "week": Period.week_of,
        "month": Period.month_of,
        "last": Period.previous_month,
        "year": Period.year_of,
    }[key](now, tz)


def _parse_day(text: str) -> date | None:
    for pattern in ("%Y-%m-%d", "%d/%m/%Y"):
        try:
            return datetime.strptime(text, pattern).date()
        except ValueError:
            continue
    return None


FIRST_YEAR, LAST_YEAR = 2000, 2100  # the service's records; beyond, date arithmetic overflows


class ReversedPeriod(ValueError):
    """Two readable days, the last before the first: told as such, not as a format error."""


def _custom_period(args: list[str], context: HCContext) -> Period | None:
    """The period typed as FROM TO; None if unreadable; :class:`ReversedPeriod` if reversed."""
    if len(args) != 2:
        return None
    first, last = _parse_day(args[0]), _parse_day(args[1])
    if first is None or last is None:
        return None
    if first.year < FIRST_YEAR or last.year > LAST_YEAR:
        return None
    if last < first:
        raise ReversedPeriod
    return Period.custom(first, last, context.settings.tz)


def _period_buttons(prefix: str, _: Any) -> InlineKeyboardMarkup:
    return _keyboard([(_(text), f"{prefix}:{key}") for key, text in PERIODS.items()])


async def _for_period(
    update: Update,
    context: HCContext,
    send: Callable[[Update, HCContext, Period], Awaitable[None]],
    *,
    usage: str,
    question: str,
    prefix: str,
) -> None:
    """``/stats`` and ``/export``: the period typed after the command, or asked with buttons."""
    args = context.args or []
    if not args:
        await reply(update, context, question, reply_markup=_period_buttons(prefix, context._))
        return
    try:
        period = _custom_period(args, context)
    except ReversedPeriod:
        text = context._(
            "The period ends before it starts: write the first day first, then the last "
            "({first} {last})."
        ).format(first=args[1], last=args[0])
        await reply(update, context, text)
        return
    if period is None:
        await reply(update, context, usage)
        return
    await send(update, context, period)


@handles("stats", Permission.VIEW_STATISTICS, private_only=True)
async def stats_command(update: Update, context: HCContext) -> None:
    _ = context._
    await _for_period(
        update,
        context,
        _send_stats,
        prefix="st",
        usage=_("Write the period as /stats 2025-01-01 2025-03-31."),
        question=_("Which period? Or write /stats FROM TO, e.g. /stats 2025-01-01 2025-03-31."),
    )


@handles("stats", Permission.VIEW_STATISTICS, private_only=True)
async def stats_button(update: Update, context: HCContext) -> None:
    parts = _data(update)
    if len(parts) == 2 and parts[1] in PERIODS:
        await _send_stats(update, context, _period(parts[1], context))
    else:
        await stale_button(update, context, answer=True)


async def _send_stats(update: Update, context: HCContext, period: Period) -> None:
    _ = context._
    report = await compute_stats(context.session, period)
    await _show(update, context, render_stats(report, _))
    chat = update.effective_chat
    if chat is None or report.contacts == 0:
        return
    charts = [
        time_chart(_("Contacts"), report.series),
        bar_chart(_("Needs"), [(label(NEEDS, k, _), v) for k, v in report.by_need.items()]),
        bar_chart(
            _("Given or done"), [(label(ACTIONS, k, _), v) for k, v in report.by_action.items()]
        ),
    ]
    for index, png in enumerate(charts):
        await context.bot.send_photo(chat.id, photo=InputFile(png, filename=f"stats-{index}.png"))


@handles("export", Permission.EXPORT_DATA, private_only=True)
async def export_command(update: Update, context: HCContext) -> None:
    _ = context._
    await _for_period(
        update,
        context,
        _send_export,
        prefix="ex",
        usage=_("Write the period as /export 2025-01-01 2025-03-31."),
        question=_(
            "Export which period? Or write /export FROM TO, e.g. /export 2025-01-01 2025-03-31."
        ),
    )


@handles("export", Permission.EXPORT_DATA, private_only=True)
async def export_button(update: Update, context: HCContext) -> None:
    parts = _data(update)
    if len(parts) == 2 and parts[1] in PERIODS:
        await _send_export(update, context, _period(parts[1], context))
    else:
        await stale_button(update, context, answer=True)


async def _send_export(update: Update, context: HCContext, period: Period) -> None:
    _ = context._
    data, counts = await export_xlsx(
        context.session, ExportOptions(period=period), actor=context.account
    )
    name = f"helpcenter-{period.first_day}-{period.last_day}.xlsx"
    caption = _(
        "Export {first} – {last}: {contacts}, {people}, {exchanges}. Pseudonymous: no "
        "names, phones or message texts."
    ).format(
        first=period.first_day.strftime("%d/%m/%Y"),
        last=period.last_day.strftime("%d/%m/%Y"),
        contacts=_.ngettext("{n} contact", "{n} contacts", counts["contacts"]).format(
            n=counts["contacts"]
        ),
        people=_.ngettext("{n} person", "{n} people", counts["people"]).format(n=counts["people"]),
        exchanges=_.ngettext("{n} exchange", "{n} exchanges", counts["exchanges"]).format(
            n=counts["exchanges"]
        ),
    )
    await acknowledge(update, context)
    chat = update.effective_chat
    if chat is not None:
        await context.bot.send_document(
            chat.id, document=InputFile(data, filename=name), caption=caption
        )


# ---- /audit ------------------------------------------------------------------------------


@handles("audit", Permission.VIEW_AUDIT_LOG, private_only=True)
async def audit_command(update: Update, context: HCContext) -> None:
    _ = context._
    args = context.args or []
    subject_type = args[0] if args else None
    subject_id = parse_id(args[1]) if len(args) > 1 else None
    lines = await audit_entries(
        context.session, limit=20, subject_type=subject_type, subject_id=subject_id
    )
    if not lines:
        await reply(update, context, _("The audit log has no entries for this."))
        return
    rendered = [audit_sentence(line, _, context.settings.tz) for line in lines]
    header = _("Latest audit entries (newest first); /audit person ID filters.")
    await reply(update, context, header + "\n" + "\n".join(rendered)[:3800])


# ---- privacy -----------------------------------------------------------------------------


async def blank_identity_arguments(update: Update, context: HCContext) -> None:
    """Group -9: a command that may carry a name, a phone or a code loses its arguments in the
    exchange log before it is handled, so that no answer (refused, mistyped, denied, saved)
    leaves them in clear (see ``models.privacy.identity_command``)."""
    message = update.effective_message
    command = identity_command(message.text if message is not None else None)
    if command is not None:
        await keep_only_command(context.session, context.scope.update_id, command)


async def first_contact_notice(update: Update, context: HCContext) -> None:
    """Group -1: on the update that created the account, the notice comes first.

    It is a direct reply to the person who just wrote, sent before the answer to what they
    asked, so that answer stays the last message on their screen; it does not block them.
    """
    scope = context.scope
    account = scope.account
    chat = update.effective_chat
    if account is None or not scope.first_contact or account.privacy_accepted_at is not None:
        return
    if chat is None or chat.type != "private":
        return
    await _send_notice(update, context)


async def _send_notice(update: Update, context: HCContext) -> None:
    _ = context._
    chat = update.effective_chat
    if chat is None:
        return
    text = privacy_notice(_, context.settings.retention_months)
    markup = None
    if context.account.privacy_accepted_at is None:
        markup = _keyboard([(_("I accept"), "pv:accept")])
    await context.bot.send_message(chat.id, text, reply_markup=markup)


@handles("privacy")
async def privacy_command(update: Update, context: HCContext) -> None:
    await _send_notice(update, context)


@handles("privacy")
async def privacy_button(update: Update, context: HCContext) -> None:
    _ = context._
    accept_privacy(context.session, context.account)
    text = (
        privacy_notice(_, context.settings.retention_months)
        + "\n\n"
        + _("Thank you: your acceptance is recorded.")
    )
    await _show(update, context, text)


@handles("privacy", private_only=True)
async def mydata_command(update: Update, context: HCContext) -> None:
    _ = context._
    data = await held_data(context.session, context.account)
    await reply(update, context, render_held_data(data, _, context.settings.tz))


@handles("privacy", private_only=True)
async def forget_command(update: Update, context: HCContext) -> None:
    _ = context._
    text = _(
        "Erase your data? Your messages will be made anonymous and we will no longer know "
        "this chat. Anonymous counts (how many people we helped) are kept. Staff roles are lost."
    )
    buttons = [(_("Yes, erase my data"), "fg:yes"), (_("No, keep it"), "fg:no")]
    await reply(update, context, text, reply_markup=_keyboard(buttons, per_row=1))


@handles("privacy", private_only=True)
async def forget_button(update: Update, context: HCContext) -> None:
    _ = context._
    if _data(update)[1:] != ["yes"]:
        await _show(update, context, _("Nothing was erased."))
        return
    account = context.account
    if account.role is not Role.PUBLIC:
        await set_role(context.session, account, Role.PUBLIC, by=account)
    await forget_account(context.session, account, current_update_id=context.scope.update_id)
    await _show(
        update, context, _("Done: your data has been erased. You can write again at any time.")
    )
