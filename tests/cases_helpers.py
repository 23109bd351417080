"""Helpers for the cases tests: people with roles, the outbox delivered, the sweep run.

:func:`deliver_outbox` stands in for the real dispatcher (``bot/dispatcher.py``, branch
``delivery``) until it lands: it sends pending outbox rows through the application's bot,
records Telegram's message id, and marks a refused send as failed. Swap it for the dispatcher
in one place when that lands.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from bot.dispatcher import dispatch_all
from bot.jobs import run_now
from handlers.case_notify import escalation_sweep
from models.accounts import account_by_telegram_id
from models.cases import Case, CaseEvent
from models.roles import Role
from tests.conftest import BotHarness

VOLUNTEER = 101
VOLUNTEER_FR = 102
POLICE = 201
ANNA = 301  # operator
BRUNO = 302  # operator
CARLA = 401  # coordinator
PUBLIC = 501


async def deliver_outbox(bot: BotHarness) -> int:
    """Send every due outbox row with the real dispatcher, as the running bot does."""
    return await dispatch_all(bot.application)


async def sweep(bot: BotHarness) -> int:
    """One run of the escalation job, then delivery of what it enqueued."""
    count = await run_now(bot.application.bot_data["runtime"], escalation_sweep)
    await deliver_outbox(bot)
    return count


async def team(bot: BotHarness, *, on_duty: tuple[int, ...] = (ANNA, BRUNO)) -> None:
    """The usual cast: two volunteers, a police officer, two operators, a coordinator."""
    await bot.grant(VOLUNTEER, Role.VOLUNTEER, first_name="Vera", language_code="it")
    await bot.grant(VOLUNTEER_FR, Role.VOLUNTEER, first_name="Fanny", language_code="fr")
    await bot.grant(POLICE, Role.POLICE, first_name="Paolo", language_code="it")
    await bot.grant(ANNA, Role.OPERATOR, first_name="Anna", language_code="it")
    await bot.grant(BRUNO, Role.OPERATOR, first_name="Bruno", language_code="it")
    await bot.grant(CARLA, Role.COORDINATOR, first_name="Carla", language_code="it")
    for operator in on_duty:
        await bot.says(operator, "/duty on")


async def set_language(bot: BotHarness, telegram_id: int, language: str) -> None:
    async with bot.session() as session:
        account = await account_by_telegram_id(session, telegram_id)
        assert account is not None
        account.language = language
        await session.commit()


async def only_case(bot: BotHarness) -> Case:
    async with bot.session() as session:
        cases = list(await session.scalars(select(Case)))
    assert len(cases) == 1, cases
    return cases[0]


async def case_actions(bot: BotHarness, case_id: int) -> list[str]:
    async with bot.session() as session:
        query = select(CaseEvent.action).where(CaseEvent.case_id == case_id)
        return list(await session.scalars(query.order_by(CaseEvent.id)))


def texts(messages: list[dict[str, Any]]) -> str:
    return "\n".join(m.get("text") or m.get("caption") or "" for m in messages)


def alerts_in(bot: BotHarness, chat_id: int) -> list[dict[str, Any]]:
    return [
        m for m in bot.fake.sent_messages(chat_id) if "case:take:" in str(m.get("reply_markup"))
    ]


def restarted(bot: BotHarness) -> BotHarness:
    """A new process on the same database and the same Telegram: nothing kept in memory."""
    return bot.restarted()
