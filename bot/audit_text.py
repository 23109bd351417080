"""The audit log as sentences in the reader's language: who, what, which record, when.

Each kind of entry has one sentence (an English source string); the actor is named by their
operator code (or account number), with their role, and the record by its kind and number.
An action without a sentence yet still reads, with its code.
"""

from __future__ import annotations

from datetime import tzinfo

from bot.i18n import N_, ROLE_NAMES, Translator
from models.privacy import AuditLine
from models.roles import Role

SENTENCES = {
    "person_read": N_("{who} read the record of {record}"),
    "person_created": N_("{who} registered {record}"),
    "consent_recorded": N_("{who} recorded the consent of {record}"),
    "consent_withdrawn": N_("{who} recorded that {record} withdrew consent"),
    "person_merged": N_("{who} merged another record into {record}"),
    "data_exported": N_("{who} exported data ({detail})"),
    "privacy_accepted": N_("{who} accepted the privacy notice"),
    "own_data_read": N_("{who} looked at their own data"),
    "forgotten": N_("{who} erased their own data"),
    "invite_created": N_("{who} created an invite for the role {role}"),
    "invite_redeemed": N_("{who} used an invite and became {role}"),
    "role_changed": N_("{who} changed the role of {record} to {role}"),
    "shelter_staff_assigned": N_("{who} made {other} staff of {record}"),
    "shelter_staff_removed": N_("{who} removed {other} from the staff of {record}"),
    "service_edited": N_("{who} changed the {detail} of {record}"),
    "duty_on": N_("{who} went on duty"),
    "duty_off": N_("{who} went off duty"),
    "retention_run": N_("{who} deleted data past the retention period ({detail})"),
    "denied": N_("{who} was refused “{detail}”"),
}
FALLBACK = N_("{who}: {action} {record}")
RECORDS = {
    "person": N_("person #{id}"),
    "account": N_("account #{id}"),
    "service": N_("service #{id}"),
    "invite": N_("invite #{id}"),
    "case": N_("case #{id}"),
}


def audit_sentence(line: AuditLine, _: Translator, tz: tzinfo) -> str:
    """One entry, one line: ``01/12 21:05 · OP-003 (operator) read the record of person #4``."""
    template = SENTENCES.get(line.action, FALLBACK)
    text = _(template).format(
        who=_who(line, _),
        record=_record(line.subject_type, line.subject_id, _),
        role=_role_in_detail(line, _),
        other=_other_account(line.detail, _),
        detail=line.detail,
        action=line.action,
    )
    return f"{line.at.astimezone(tz):%d/%m %H:%M} · {' '.join(text.split())}"


def _who(line: AuditLine, _: Translator) -> str:
    if line.operator_code:
        name = line.operator_code
    elif line.actor_id is not None:
        name = _(RECORDS["account"]).format(id=line.actor_id)
    else:
        return _("the system")
    role = next((r for r in Role if r.value == line.role), None)
    return f"{name} ({_(ROLE_NAMES[role])})" if role is not None else name


def _record(subject_type: str | None, subject_id: int | None, _: Translator) -> str:
    if subject_type is None:
        return ""
    if subject_type in RECORDS:
        return _(RECORDS[subject_type]).format(id=subject_id)
    return f"{subject_type} #{subject_id}"


def _role_in_detail(line: AuditLine, _: Translator) -> str:
    """The role an invite gives or a role change sets (``operator``, ``public->operator``)."""
    value = line.detail.rpartition("->")[2].strip()
    role = next((r for r in Role if r.value == value), None)
    return _(ROLE_NAMES[role]) if role is not None else value


def _other_account(detail: str, _: Translator) -> str:
    """The account named in a detail such as ``account 12``."""
    number = detail.removeprefix("account ").strip()
    return _(RECORDS["account"]).format(id=number) if number.isdigit() else detail
