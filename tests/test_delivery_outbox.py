"""The outbox: alerts that follow from a state change reach people once, whatever Telegram does."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import event, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot import metrics
from bot.dispatcher import Dispatcher, dispatch_due
from bot.exchange_log import outbound_row
from models.base import clock
from models.db import make_engine, make_sessionmaker
from models.exchange import Direction, Exchange
from models.outbox import OutboxMessage, OutboxStatus, claim_at_once, enqueue, record_sent_reply
from models.roles import Role
from tests.conftest import TELEGRAM_RATES, BotHarness, make_settings
from tests.delivery_helpers import account, alert, courier, outbox_row, send_due

__all__ = ["courier"]
OPERATOR = 501


async def test_an_alert_reaches_the_operator_once_and_is_logged(courier: BotHarness) -> None:
    await courier.grant(OPERATOR, Role.OPERATOR)
    row_id = await alert(
        courier,
        OPERATOR,
        "Urgent request at platform 3",
        kind="urgent_alert",
        subject_type="case",
        subject_id=7,
    )

    assert await send_due(courier) == 1
    assert await send_due(courier) == 0

    assert courier.fake.texts(OPERATOR) == ["Urgent request at platform 3"]
    row = await outbox_row(courier, row_id)
    assert row.status == OutboxStatus.SENT
    assert row.message_id == courier.fake.last_message(OPERATOR)["message_id"]  # type: ignore[index]
    async with courier.session() as session:
        logged = (
            await session.scalars(select(Exchange).where(Exchange.direction == Direction.OUT))
        ).all()
    assert [(r.chat_id, r.flow, r.subject_id, r.text) for r in logged] == [
        (OPERATOR, "outbox:urgent_alert", 7, "Urgent request at platform 3")
    ]


async def test_flood_control_waits_as_telegram_asks(courier: BotHarness) -> None:
    await courier.grant(OPERATOR, Role.OPERATOR)
    courier.fake.fail_next(
        "sendMessage", status=429, description="Too Many Requests: retry after 5", retry_after=5
    )
    row_id = await alert(courier, OPERATOR, "Escalation: nobody took case 4")

    await send_due(courier)
    row = await outbox_row(courier, row_id)
    assert row.status == OutboxStatus.PENDING and row.attempts == 0
    assert row.available_at >= clock.now() + timedelta(seconds=4)
    assert courier.fake.texts(OPERATOR) == []

    clock.advance(6)
    await send_due(courier)
    assert courier.fake.texts(OPERATOR) == ["Escalation: nobody took case 4"]


async def test_a_bad_gateway_is_retried_with_backoff_then_delivered(courier: BotHarness) -> None:
    await courier.grant(OPERATOR, Role.OPERATOR)
    courier.fake.fail_next("sendMessage", status=502, description="Bad Gateway", times=2)
    row_id = await alert(courier, OPERATOR, "Case 9 was taken")

    await send_due(courier)
    clock.advance(3)
    await send_due(courier)
    assert (await outbox_row(courier, row_id)).attempts == 2
    clock.advance(5)
    await send_due(courier)

    assert courier.fake.texts(OPERATOR) == ["Case 9 was taken"]
    row = await outbox_row(courier, row_id)
    assert row.status == OutboxStatus.SENT and "Bad Gateway" in (row.error or "")


async def test_a_dropped_connection_is_retried_and_delivered_once(courier: BotHarness) -> None:
    await courier.grant(OPERATOR, Role.OPERATOR)
    courier.fake.disconnect_next("sendMessage")
    await alert(courier, OPERATOR, "Bed count reminder")

    await send_due(courier)
    clock.advance(3)
    await send_due(courier)

    assert courier.fake.texts(OPERATOR) == ["Bed count reminder"]


async def test_retries_stop_after_the_maximum_and_the_row_says_why(database_url: str) -> None:
    settings = make_settings(database_url, outbox_max_attempts=3, rate_private_chat_per_second=100)
    async with BotHarness(settings) as harness:
        await harness.grant(OPERATOR, Role.OPERATOR)
        harness.fake.fail_next("sendMessage", status=500, description="Internal", times=10)
        row_id = await alert(harness, OPERATOR, "Monthly report")
        for _ in range(4):
            await send_due(harness)
            clock.advance(10)
        row = await outbox_row(harness, row_id)
    assert row.status == OutboxStatus.FAILED
    assert row.error is not None and row.error.startswith("gave up after 3 attempts")


async def restart_and_send(courier: BotHarness, new_token: str) -> None:
    """The bot restarted with the token @BotFather gave after /revoke sends what is due."""
    restarted = courier.settings.model_copy(update={"token": SecretStr(new_token)})
    async with BotHarness(restarted, fake=courier.fake) as bot:
        await send_due(bot)


async def test_a_revoked_token_keeps_every_message_waiting_for_the_new_one(
    courier: BotHarness,
) -> None:
    """Revoking a leaked token is what one should do; the alerts queued meanwhile must not
    use up their tries on it (ten tries took about 17 minutes) and fail for good."""
    await courier.grant(OPERATOR, Role.OPERATOR)
    row_id = await alert(courier, OPERATOR, "Urgent: assistance at platform 3")
    new_token = courier.fake.revoke_token()

    for _ in range(courier.settings.outbox_max_attempts + 2):  # an hour and more of tries
        await send_due(courier)
        clock.advance(400)
    row = await outbox_row(courier, row_id)
    assert row.status == OutboxStatus.PENDING and row.attempts == 0
    assert courier.fake.texts(OPERATOR) == []

    await restart_and_send(courier, new_token)
    assert courier.fake.texts(OPERATOR) == ["Urgent: assistance at platform 3"]


async def test_restarted_with_the_new_token_the_bot_sends_what_was_refused_at_once(
    courier: BotHarness,
) -> None:
    """The operator puts the new token in and restarts within the minute: an alert the old
    token was refused goes now, not a minute after its refusal."""
    await courier.grant(OPERATOR, Role.OPERATOR)
    await alert(courier, OPERATOR, "Urgent: assistance at platform 3")
    new_token = courier.fake.revoke_token()
    await send_due(courier)  # refused

    await restart_and_send(courier, new_token)
    assert courier.fake.texts(OPERATOR) == ["Urgent: assistance at platform 3"]


async def test_a_revoked_token_is_tried_once_a_minute_not_once_a_minute_per_message(
    courier: BotHarness,
) -> None:
    """Each refused try is a row in the contact log, with the message's text. A night with the
    token refused and the team's alerts queued must not copy each of them there every minute:
    no message can go, so one try a minute says whether the token works again."""
    operators = range(OPERATOR, OPERATOR + 5)
    for operator in operators:
        await courier.grant(operator, Role.OPERATOR)
        await alert(courier, operator, "Urgent: assistance at platform 3")
    courier.fake.revoke_token()

    minutes = 30
    for _ in range(minutes):
        await send_due(courier)
        clock.advance(61)
    async with courier.session() as session:
        refused = await session.scalar(
            select(func.count()).select_from(Exchange).where(Exchange.error.is_not(None))
        )
        waiting = (await session.scalars(select(OutboxMessage.status))).all()
    assert waiting == [OutboxStatus.PENDING] * len(operators)
    assert refused is not None and refused <= len(operators) + minutes, refused


async def test_after_a_single_refusal_of_the_token_everything_goes_a_minute_later(
    courier: BotHarness,
) -> None:
    """A 401 Telegram answers once (an incident on its side) holds the outbox for a minute,
    not for good: once a message goes, the outbox sends as many at once as before."""
    operators = range(OPERATOR, OPERATOR + 4)
    for operator in operators:
        await courier.grant(operator, Role.OPERATOR)
    courier.fake.fail_next("sendMessage", status=401, description="Unauthorized")
    await alert(courier, OPERATOR, "Urgent: assistance at platform 3")
    await send_due(courier)
    await alert(courier, OPERATOR + 1, "Urgent: assistance at platform 4")
    assert await send_due(courier) == 0  # held: the token was refused a moment ago

    clock.advance(61)
    assert await dispatch_due(courier.application) == 1  # one, to see the token works again
    for operator in operators[2:]:
        await alert(courier, operator, "Urgent: assistance at platform 5")
    assert await dispatch_due(courier.application) == 3  # it does: all at once again
    assert [len(courier.fake.texts(operator)) for operator in operators] == [1, 1, 1, 1]


async def test_a_blocked_operator_is_marked_unreachable_not_retried(courier: BotHarness) -> None:
    await courier.grant(OPERATOR, Role.OPERATOR)
    courier.fake.block(OPERATOR)
    before = metrics.SEND_FAILURES.labels(kind="blocked")._value.get()
    row_id = await alert(courier, OPERATOR, "Urgent request")

    await send_due(courier)
    clock.advance(600)
    assert await send_due(courier) == 0

    row = await outbox_row(courier, row_id)
    assert row.status == OutboxStatus.FAILED and "blocked" in (row.error or "")
    operator = await account(courier, OPERATOR)
    assert operator.unreachable_since is not None
    assert "blocked" in (operator.unreachable_reason or "")
    assert metrics.SEND_FAILURES.labels(kind="blocked")._value.get() == before + 1


async def test_an_unknown_chat_fails_for_good(courier: BotHarness) -> None:
    row_id = await alert(courier, 424242, "Hello?")
    await send_due(courier)
    row = await outbox_row(courier, row_id)
    assert row.status == OutboxStatus.FAILED and "chat not found" in (row.error or "").lower()


async def test_messages_to_one_chat_keep_their_order(courier: BotHarness) -> None:
    await courier.grant(OPERATOR, Role.OPERATOR)
    courier.fake.fail_next("sendMessage", status=502, description="Bad Gateway")
    for step in ("first", "second", "third"):
        await alert(courier, OPERATOR, step)

    for _ in range(4):
        await send_due(courier)
        clock.advance(3)

    assert courier.fake.texts(OPERATOR) == ["first", "second", "third"]


async def test_a_row_left_sending_by_a_crash_is_resent_and_noted(courier: BotHarness) -> None:
    """Decision: a lease that expired mid-send means "delivery unknown"; the alert is resent."""
    await courier.grant(OPERATOR, Role.OPERATOR)
    row_id = await alert(courier, OPERATOR, "Urgent request")
    async with courier.session() as session:
        row = await session.get(type(await outbox_row(courier, row_id)), row_id)
        assert row is not None
        row.status, row.locked_by = OutboxStatus.SENDING, "crashed-worker"
        row.locked_until = clock.now() + timedelta(seconds=30)
        await session.commit()

    assert await send_due(courier) == 0  # the crashed worker's lease still runs
    clock.advance(31)
    assert await send_due(courier) == 1

    assert courier.fake.texts(OPERATOR) == ["Urgent request"]
    row = await outbox_row(courier, row_id)
    assert row.status == OutboxStatus.SENT and "delivery unknown" in (row.error or "")


async def test_a_slow_send_past_its_lease_is_not_sent_again_by_its_own_worker(
    database_url: str,
) -> None:
    """Telegram answers after the lease ran out: the worker is alive and still sending, so
    its own loop must not take the row as a crashed worker's and send the alert again."""
    settings = make_settings(database_url, outbox_lease_seconds=5)
    async with BotHarness(settings) as harness:
        await harness.grant(OPERATOR, Role.OPERATOR)
        harness.fake.delay("sendMessage", 1.5)
        row_id = await alert(harness, OPERATOR, "Urgent request")
        dispatcher = Dispatcher(harness.application, idle_seconds=0.05)
        loop = asyncio.create_task(dispatcher.run())
        await asyncio.sleep(0.5)  # claimed, the call under way
        clock.advance(10)  # the lease looks expired while Telegram is still answering
        await asyncio.sleep(1.5)
        dispatcher.stop()
        await loop

        assert harness.fake.texts(OPERATOR) == ["Urgent request"]
        row = await outbox_row(harness, row_id)
        assert row.status == OutboxStatus.SENT and row.attempts == 1


async def test_a_read_timeout_is_resent_so_the_alert_may_arrive_twice(courier: BotHarness) -> None:
    """Telegram executed the call but answered too late: at-least-once, by design."""
    await courier.grant(OPERATOR, Role.OPERATOR)
    courier.fake.delay("sendMessage", 0.6)
    row_id = await alert(courier, OPERATOR, "Urgent request")
    await send_due(courier)
    courier.fake.clear_faults()
    assert (await outbox_row(courier, row_id)).status == OutboxStatus.PENDING
    clock.advance(3)
    await send_due(courier)

    assert courier.fake.texts(OPERATOR) == ["Urgent request", "Urgent request"]
    assert (await outbox_row(courier, row_id)).status == OutboxStatus.SENT


async def test_sends_stay_under_the_bot_wide_limit(database_url: str) -> None:
    settings = make_settings(database_url, rate_global_per_second=30)
    async with BotHarness(settings) as harness:
        for chat in range(1, 46):
            harness.fake.add_user(1000 + chat)
            await alert(harness, 1000 + chat, f"alert {chat}")
        started = asyncio.get_running_loop().time()
        await send_due(harness)
        elapsed = asyncio.get_running_loop().time() - started
        assert len(harness.fake.sent_messages()) == 45
        # 30 slots, each free again a second after its send ended (``bot.ratelimit``): the
        # last 15 wait for the first ones' second to pass.
        assert harness.fake.max_rate(1.0) <= 30
        assert elapsed >= 1.0


async def test_two_dispatchers_never_send_a_row_twice(courier: BotHarness) -> None:
    for chat in range(1, 41):
        courier.fake.add_user(2000 + chat)
        for n in range(3):
            await alert(courier, 2000 + chat, f"{chat}-{n}")
    other = Dispatcher(courier.application, skip_locked=True)
    first = Dispatcher(courier.application, skip_locked=True)

    async def drain(dispatcher: Dispatcher) -> None:
        while await dispatcher.dispatch_due(15):
            pass

    for _ in range(3):
        await asyncio.gather(drain(first), drain(other))
    for chat in range(1, 41):
        assert courier.fake.texts(2000 + chat) == [f"{chat}-{n}" for n in range(3)]


async def test_a_burst_of_first_contacts_is_answered_within_telegrams_limits(
    database_url: str,
) -> None:
    """60 people write for the first time at once: each gets the privacy notice and the
    answer (120 messages), never more than 30 in any second, none dropped, each chat in order."""
    people = range(7000, 7060)
    async with BotHarness(make_settings(database_url, **TELEGRAM_RATES)) as harness:
        for person in people:
            harness.fake.add_user(person)
            harness.fake.user_writes(person, "/help")
        await harness.running.poller.poll_once()
        await harness.running.worker.drain(within_seconds=30)
        deadline = asyncio.get_running_loop().time() + 30
        while asyncio.get_running_loop().time() < deadline:
            if all(len(harness.fake.texts(person)) >= 2 for person in people):
                break
            await send_due(harness)
            await asyncio.sleep(0.1)

        assert harness.fake.max_rate(1.0) <= 30
        for person in people:
            notice, answer = harness.fake.texts(person)
            assert "privacy" in notice.lower()
            assert answer != notice


# ---- the record of a sent reply ----------------------------------------------------------------

# What the exchange log's sink holds for the reply once Telegram has answered with its id.
SENT_ROW = outbound_row("sendMessage", {"chat_id": 777, "text": "Ecco i servizi vicini"}, 41, None)


async def _a_reply_being_sent(sessionmaker: async_sessionmaker[AsyncSession]) -> int:
    async with sessionmaker() as session:
        row = enqueue(session, chat_id=777, kind="reply", params={"text": "x"}, in_reply_to=9)
        claim_at_once(row, "worker-a", timedelta(seconds=60))
        await session.commit()
        return row.id


async def _logged_replies(sessionmaker: async_sessionmaker[AsyncSession]) -> list[Any]:
    async with sessionmaker() as session:
        query = select(Exchange).where(Exchange.direction == Direction.OUT)
        return [
            (r.chat_id, r.message_id, r.text, r.flow, r.in_reply_to)
            for r in await session.scalars(query)
        ]


async def test_a_sent_reply_leaves_the_outbox_for_one_log_row_once(database_url: str) -> None:
    engine = make_engine(database_url)
    sessionmaker = make_sessionmaker(engine)
    try:
        row_id = await _a_reply_being_sent(sessionmaker)
        for expected in (True, False):  # recorded again (a repeat after a hiccup): nothing more
            async with sessionmaker() as session:
                recorded = await record_sent_reply(
                    session, row_id, [SENT_ROW], flow="needs", in_reply_to=9
                )
                await session.commit()
            assert recorded is expected
        assert await _logged_replies(sessionmaker) == [
            (777, 41, "Ecco i servizi vicini", "needs", 9)
        ]
        async with sessionmaker() as session:
            assert await session.get(OutboxMessage, row_id) is None
    finally:
        await engine.dispose()


async def test_a_reply_taken_back_meanwhile_is_not_recorded_as_sent(database_url: str) -> None:
    engine = make_engine(database_url)
    sessionmaker = make_sessionmaker(engine)
    try:
        row_id = await _a_reply_being_sent(sessionmaker)
        async with sessionmaker() as session:  # its lease ran out: put back to be sent again
            await session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id == row_id)
                .values(status=OutboxStatus.PENDING)
            )
            await session.commit()
        async with sessionmaker() as session:
            assert not await record_sent_reply(session, row_id, [SENT_ROW], flow="needs")
            await session.commit()
        assert await _logged_replies(sessionmaker) == []
        async with sessionmaker() as session:
            kept = await session.get(OutboxMessage, row_id)
            assert kept is not None and kept.status == OutboxStatus.PENDING
    finally:
        await engine.dispose()


async def test_on_postgresql_a_sent_reply_is_recorded_in_one_statement_without_a_transaction(
    database_url: str,
) -> None:
    """Each statement, BEGIN and COMMIT is a round trip on PostgreSQL: the record is one
    statement, done before any commit (another connection sees it at once)."""
    if not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL's round trips")
    engine = make_engine(database_url)
    sessionmaker = make_sessionmaker(engine)
    statements: list[str] = []

    def note(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    try:
        row_id = await _a_reply_being_sent(sessionmaker)
        event.listen(engine.sync_engine, "before_cursor_execute", note)
        async with sessionmaker() as session:
            assert await record_sent_reply(session, row_id, [SENT_ROW], flow="needs")
            event.remove(engine.sync_engine, "before_cursor_execute", note)
            assert len(await _logged_replies(sessionmaker)) == 1  # before this session commits
            await session.commit()
        assert len(statements) == 1
    finally:
        await engine.dispose()
