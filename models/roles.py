"""Roles and what each may do: the one place where role checks are decided."""

from __future__ import annotations

import enum
from typing import Any


class Role(enum.StrEnum):
    PUBLIC = "public"
    VOLUNTEER = "volunteer"
    POLICE = "police"
    SHELTER_STAFF = "shelter_staff"
    OPERATOR = "operator"
    COORDINATOR = "coordinator"
    ADMIN = "admin"


class Permission(enum.StrEnum):
    USE_DIRECTORY = "use_directory"
    REPORT_SIGHTING = "report_sighting"
    REQUEST_URGENT = "request_urgent"
    FOLLOW_OWN_REPORTS = "follow_own_reports"  # /myreports: one's own reports and requests
    UPDATE_BEDS = "update_beds"
    HANDLE_CASES = "handle_cases"
    EDIT_SERVICES = "edit_services"
    ASSIGN_SHELTER_STAFF = "assign_shelter_staff"
    RECORD_CONTACTS = "record_contacts"
    MERGE_PEOPLE = "merge_people"
    VIEW_STATISTICS = "view_statistics"
    EXPORT_DATA = "export_data"
    INVITE = "invite"
    MANAGE_ACCOUNTS = "manage_accounts"
    VIEW_AUDIT_LOG = "view_audit_log"


_STAFF = {Role.OPERATOR, Role.COORDINATOR, Role.ADMIN}

GRANTS: dict[Permission, frozenset[Role]] = {
    Permission.USE_DIRECTORY: frozenset(Role),
    Permission.REPORT_SIGHTING: frozenset({Role.VOLUNTEER, *_STAFF}),
    Permission.REQUEST_URGENT: frozenset({Role.POLICE, *_STAFF}),
    Permission.FOLLOW_OWN_REPORTS: frozenset({Role.VOLUNTEER, Role.POLICE, *_STAFF}),
    Permission.UPDATE_BEDS: frozenset({Role.SHELTER_STAFF, *_STAFF}),
    Permission.HANDLE_CASES: frozenset(_STAFF),
    Permission.EDIT_SERVICES: frozenset({Role.OPERATOR, Role.COORDINATOR}),
    Permission.ASSIGN_SHELTER_STAFF: frozenset(_STAFF),
    Permission.RECORD_CONTACTS: frozenset(_STAFF),
    Permission.MERGE_PEOPLE: frozenset({Role.COORDINATOR}),
    Permission.VIEW_STATISTICS: frozenset({Role.COORDINATOR, Role.ADMIN}),
    Permission.EXPORT_DATA: frozenset({Role.COORDINATOR}),
    Permission.INVITE: frozenset({Role.COORDINATOR, Role.ADMIN}),
    Permission.MANAGE_ACCOUNTS: frozenset({Role.ADMIN}),
    Permission.VIEW_AUDIT_LOG: frozenset({Role.ADMIN}),
}

# Grants a setting switches on, on top of GRANTS: (permission, role) -> the Settings field.
# Off by default; the menu and the handlers both ask :func:`can` with the settings.
SETTING_GRANTS: dict[tuple[Permission, Role], str] = {
    (Permission.REPORT_SIGHTING, Role.PUBLIC): "public_reports_enabled",
    (Permission.FOLLOW_OWN_REPORTS, Role.PUBLIC): "public_reports_enabled",
}

# Who may hand out which role with an invite: coordinators run the team, admins run everything.
INVITABLE: dict[Role, frozenset[Role]] = {
    Role.COORDINATOR: frozenset({Role.VOLUNTEER, Role.POLICE, Role.SHELTER_STAFF, Role.OPERATOR}),
    Role.ADMIN: frozenset(set(Role) - {Role.PUBLIC}),
}


# How far each role reaches, to tell a promotion from a demotion or a sideways move
# (volunteers, police and shelter staff stand side by side: none of them holds the others').
RANK: dict[Role, int] = {
    Role.PUBLIC: 0,
    Role.VOLUNTEER: 1,
    Role.POLICE: 1,
    Role.SHELTER_STAFF: 1,
    Role.OPERATOR: 2,
    Role.COORDINATOR: 3,
    Role.ADMIN: 4,
}


def can(role: Role, permission: Permission, settings: Any = None) -> bool:
    """Whether ``role`` has ``permission``; with ``settings``, grants a setting enables count."""
    if role in GRANTS[permission]:
        return True
    flag = SETTING_GRANTS.get((permission, role))
    return flag is not None and settings is not None and bool(getattr(settings, flag, False))


def may_invite(inviter: Role, role: Role) -> bool:
    return role in INVITABLE.get(inviter, frozenset())


def inviters_of(role: Role) -> frozenset[Role]:
    """The roles whose invites for ``role`` are honoured (an author demoted since: not)."""
    return frozenset(inviter for inviter, roles in INVITABLE.items() if role in roles)


def raises(current: Role, offered: Role) -> bool:
    """Whether an invite for ``offered`` is a promotion for someone who is ``current``."""
    return RANK[offered] > RANK[current]
