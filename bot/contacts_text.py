"""What the contact database says to people: labels, the privacy notice, statistics as text.

Shared by the handlers (answers) and the jobs (the monthly report, rendered in each
coordinator's own language before it is enqueued).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from bot.i18n import N_, Translator, country_in, language_in, languages_in, role_in
from models.contacts import Action, Channel, Contact, ContactOutcome, Gender, Housing, Need, Person
from models.privacy import HeldData
from models.stats import StatsReport

Gettext = Callable[[str], str]

CHANNELS = {
    Channel.STREET: N_("Street"),
    Channel.DESK: N_("Desk"),
    Channel.PHONE: N_("Phone"),
    Channel.BOT: N_("Bot"),
}
PLACES = {
    "station": N_("Railway station"),
    "centre": N_("City centre"),
    "desk": N_("Help Center desk"),
    "shelter": N_("Shelter"),
    "other": N_("Elsewhere"),
}
NEEDS = {
    Need.FOOD: N_("Food"),
    Need.SHELTER: N_("A place to sleep"),
    Need.HYGIENE: N_("Hygiene"),
    Need.CLOTHING: N_("Clothing"),
    Need.HEALTH: N_("Health"),
    Need.DOCUMENTS: N_("Documents"),
    Need.WORK: N_("Work"),
    Need.LEGAL: N_("Legal advice"),
    Need.LISTENING: N_("Someone to talk to"),
    Need.OTHER: N_("Other"),
}
ACTIONS = {
    Action.LISTENING: N_("Listening"),
    Action.INFORMATION: N_("Information"),
    Action.ORIENTATION: N_("Orientation to a service"),
    Action.REFERRAL: N_("Referral"),
    Action.MEAL_TICKET: N_("Meal ticket"),
    Action.SHOWER: N_("Shower"),
    Action.CLOTHES: N_("Clothes"),
    Action.SHELTER_PLACEMENT: N_("Shelter placement"),
    Action.MEDICAL_REFERRAL: N_("Medical referral"),
}
OUTCOMES = {
    ContactOutcome.RESOLVED: N_("Need met"),
    ContactOutcome.REFERRED: N_("Referred elsewhere"),
    ContactOutcome.FOLLOW_UP: N_("Follow-up needed"),
    ContactOutcome.DECLINED: N_("Help declined"),
    ContactOutcome.NONE: N_("Nothing to add"),
}
GENDERS = {
    Gender.FEMALE: N_("women"),
    Gender.MALE: N_("men"),
    Gender.OTHER: N_("other gender"),
    "unknown": N_("unknown"),
}
HOUSING = {
    Housing.ROOFLESS: N_("roofless"),
    Housing.HOUSELESS: N_("houseless"),
    Housing.INSECURE: N_("insecure housing"),
    Housing.INADEQUATE: N_("inadequate housing"),
}
AGE_LABELS = {"unknown": N_("unknown")}  # the bands themselves ("25-34") read the same
NATIONALITY_GROUPS = {
    "italian": N_("Italian"),
    "eu": N_("other EU"),
    "europe_non_eu": N_("Europe outside the EU"),
    "africa": N_("Africa"),
    "asia": N_("Asia"),
    "americas": N_("Americas"),
    "other": N_("other"),
    "unknown": N_("unknown"),
}


def label(labels: Mapping[Any, str], key: object, _: Gettext) -> str:
    text = labels.get(key) or labels.get(str(key))
    return _(text) if text else str(key)


def privacy_notice(_: Gettext, retention_months: int) -> str:
    return _(
        "Privacy notice. The Help Center at the railway station (a social cooperative working "
        "with the city's social services) keeps a record of your messages and of the help you "
        "receive, so that we can help you and report anonymous figures to the city and to the "
        "national network of help centers. We do not need your name. Messages are made "
        "anonymous after {months} months. You can see what we hold with /mydata and erase it "
        "with /forget at any time; you can also ask our team at the desk."
    ).format(months=retention_months)


def _local(moment: datetime | None, tz: ZoneInfo) -> str:
    return moment.astimezone(tz).strftime("%d/%m/%Y %H:%M") if moment else "—"


def render_person(
    person: Person, history: list[Contact], total: int, _: Translator, tz: ZoneInfo
) -> str:
    unknown = _("unknown")
    facts = [
        _("Person {code}").format(code=person.code),
        _("Year of birth: {value}").format(value=person.birth_year or unknown),
        _("Nationality: {value}").format(
            value=country_in(person.nationality, _.language) if person.nationality else unknown
        ),
        _("Languages: {value}").format(
            value=languages_in(person.languages, _.language) if person.languages else unknown
        ),
        _("Housing: {value}").format(
            value=label(HOUSING, person.housing, _) if person.housing else unknown
        ),
        _("Last residence in the city: {value}").format(
            value=unknown
            if person.resident_in_city is None
            else (_("yes") if person.resident_in_city else _("no"))
        ),
        _("Consent: {value}").format(
            value=_local(person.consent_at, tz) if person.consent_at else _("not given")
        ),
        _("Contacts: {count}").format(count=total),
    ]
    for contact in history:
        needs = ", ".join(label(NEEDS, n, _) for n in contact.needs) or "—"
        actions = ", ".join(label(ACTIONS, a, _) for a in contact.actions) or "—"
        facts.append(
            f"• {_local(contact.occurred_at, tz)} {label(CHANNELS, contact.channel, _)}: "
            f"{needs} → {actions}"
        )
    return "\n".join(facts)


def render_draft(draft: Mapping[str, Any], _: Gettext) -> str:
    who = draft.get("person_code") or _("anonymous person")
    lines = [_("Contact with {who}").format(who=who)]
    if draft.get("channel"):
        lines.append(_("Channel: {value}").format(value=label(CHANNELS, draft["channel"], _)))
    if draft.get("place"):
        lines.append(_("Place: {value}").format(value=label(PLACES, draft["place"], _)))
    needs = draft.get("needs") or []
    if needs:
        text = ", ".join(label(NEEDS, n, _) for n in needs)
        lines.append(_("Needs: {value}").format(value=text))
    actions = draft.get("actions") or []
    if actions:
        text = ", ".join(label(ACTIONS, a, _) for a in actions)
        lines.append(_("Given or done: {value}").format(value=text))
    if draft.get("outcome"):
        lines.append(_("Outcome: {value}").format(value=label(OUTCOMES, draft["outcome"], _)))
    if draft.get("notes"):
        lines.append(_("Notes: {value}").format(value=draft["notes"]))
    return "\n".join(lines)


def _top(counts: Mapping[str, int], labels: Mapping[Any, str], _: Gettext) -> str:
    ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return ", ".join(f"{label(labels, key, _)} {n}" for key, n in ordered) or "—"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    minutes = round(seconds / 60)
    return f"{minutes // 60}h{minutes % 60:02d}" if minutes >= 60 else f"{minutes} min"


def render_stats(report: StatsReport, _: Translator) -> str:
    period = report.period
    lines = [
        _("Statistics {first} – {last}").format(
            first=period.first_day.strftime("%d/%m/%Y"), last=period.last_day.strftime("%d/%m/%Y")
        ),
        _("Contacts: {contacts} (anonymous: {anonymous})").format(
            contacts=report.contacts, anonymous=report.anonymous_contacts
        ),
        _("People: {people} (new: {new}, returning: {returning})").format(
            people=report.people, new=report.new_people, returning=report.returning_people
        ),
        _("Needs: {value}").format(value=_top(report.by_need, NEEDS, _)),
        _("Given or done: {value}").format(value=_top(report.by_action, ACTIONS, _)),
        _("Nationality: {value}").format(value=_top(report.by_nationality, NATIONALITY_GROUPS, _)),
        _("Gender: {value}").format(value=_top(report.by_gender, GENDERS, _)),
        _("Age (reached in {year}): {value}").format(
            year=period.age_reference_year, value=_top(report.by_age_band, AGE_LABELS, _)
        ),
    ]
    if report.urgent is None:
        lines.append(_("Urgent cases: not available yet"))
    else:
        lines.append(
            _("Urgent cases: {count}; response time median {median}, 90% within {p90}").format(
                count=report.urgent.urgent_cases,
                median=_duration(report.urgent.median_response_seconds),
                p90=_duration(report.urgent.p90_response_seconds),
            )
        )
    if report.beds is None:
        lines.append(_("Bed occupancy: not available yet"))
    elif report.beds.capacity == 0:
        lines.append(_("Bed occupancy: no bed counts in this period"))
    else:
        occupancy = _("Bed occupancy: {occupied} of {capacity} ({rate}%)").format(
            occupied=report.beds.occupied,
            capacity=report.beds.capacity,
            rate=round(report.beds.rate * 100),
        )
        reported = _.ngettext(
            "from the counts of {n} shelter",
            "from the counts of {n} shelters",
            report.beds.shelters,
        ).format(n=report.beds.shelters)
        lines.append(f"{occupancy}, {reported}")
    return "\n".join(lines)


def render_held_data(data: HeldData, _: Translator, tz: ZoneInfo) -> str:
    lines = [
        _("What we hold about you:"),
        _("Role: {value}").format(value=role_in(data.role, _)),
        _("Language: {value}").format(
            value=language_in(data.language, _.language) if data.language else "—"
        ),
        _("First message: {value}").format(value=_local(data.first_message_at, tz)),
        _("Messages in our log: {count}").format(count=data.messages),
        _("Privacy notice accepted: {value}").format(
            value=_local(data.privacy_accepted_at, tz) if data.privacy_accepted_at else _("no")
        ),
    ]
    if data.person_code:
        lines.append(
            _.ngettext(
                "Record at the Help Center: {code}, {contacts} contact",
                "Record at the Help Center: {code}, {contacts} contacts",
                data.contacts,
            ).format(code=data.person_code, contacts=data.contacts)
        )
        if data.has_name or data.has_phone:
            lines.append(_("Name and phone: kept encrypted, with your consent"))
    lines.append(_("To erase your data, send /forget."))
    return "\n".join(lines)
