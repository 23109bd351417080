"""Invites as buttons and refusals that are true for each role (#13, the team)."""

from __future__ import annotations

from sqlalchemy import select

from models.accounts import Account
from models.roles import Role
from tests.cases_helpers import set_language, texts
from tests.conftest import ADMIN_ID, BotHarness

COORDINATOR = 3001
NEWCOMER = 3002
OPERATOR = 3003
VOLUNTEER = 3004


def labels(message: dict) -> list[str]:
    return [row[0]["text"] for row in message["reply_markup"]["inline_keyboard"]]


async def test_invite_offers_as_buttons_only_the_roles_this_person_may_give(
    bot: BotHarness,
) -> None:
    await bot.grant(COORDINATOR, Role.COORDINATOR)
    out = await bot.says(COORDINATOR, "/invite")
    assert "Sono mostrati solo i ruoli che puoi dare" in texts(out)
    assert labels(out[-1]) == [
        "volontario di strada",
        "forze dell'ordine o personale ferroviario",
        "personale di una struttura di accoglienza",
        "operatore dell'Help Center",
    ]
    out = await bot.presses(COORDINATOR, out[-1], "operatore dell'Help Center")
    link = next(word for word in texts(out).split() if "start=" in word)
    await bot.says(NEWCOMER, f"/start {link.split('start=')[1]}")
    async with bot.session() as session:
        newcomer = await session.scalar(select(Account).where(Account.telegram_id == NEWCOMER))
    assert newcomer is not None and newcomer.role is Role.OPERATOR

    out = await bot.says(COORDINATOR, "/invite admin")
    assert "Non puoi dare il ruolo amministratore" in texts(out)
    assert "amministratore" not in labels(out[-1])

    await bot.says(ADMIN_ID, "/start")
    await set_language(bot, ADMIN_ID, "fr")
    out = await bot.says(ADMIN_ID, "/invite")
    assert "Seuls les rôles que vous pouvez donner sont proposés" in texts(out)
    assert labels(out[-1]) == [
        "bénévole de rue",
        "police ou personnel ferroviaire",
        "personnel d'un centre d'hébergement",
        "intervenant du Help Center",
        "coordinateur",
        "administrateur",
    ]


async def test_refusals_say_what_is_true_for_each_role(bot: BotHarness) -> None:
    await bot.grant(COORDINATOR, Role.COORDINATOR)
    await bot.grant(OPERATOR, Role.OPERATOR)
    await bot.grant(VOLUNTEER, Role.VOLUNTEER)
    await bot.says(ADMIN_ID, "/start")

    said = texts(await bot.says(COORDINATOR, "/audit"))
    assert "invito" not in said and "chiedi a un coordinatore" not in said
    assert "riservata a: amministratore" in said
    assert (
        "Sei registrato come coordinatore: se ti serve per il tuo lavoro, chiedi a un "
        "amministratore." in said
    )

    said = texts(await bot.says(VOLUNTEER, "/cases"))
    assert "riservata a: operatore dell'Help Center, coordinatore, amministratore" in said
    assert "chiedi a un coordinatore" in said

    said = texts(await bot.says(OPERATOR, "/merge"))
    assert "riservata a: coordinatore" in said and "chiedi a un amministratore" in said

    for command in ("/editservice", "/merge", "/export"):
        said = texts(await bot.says(ADMIN_ID, command))
        assert "tenuta separata dal tuo ruolo di proposito" in said, command
        assert "invito" not in said and "chiedi a un" not in said

    await set_language(bot, ADMIN_ID, "fr")
    said = texts(await bot.says(ADMIN_ID, "/export"))
    assert said == (
        "Désolé, c'est réservé à : coordinateur. Vous êtes inscrit comme administrateur : "
        "c'est volontairement séparé de votre rôle."
    )
