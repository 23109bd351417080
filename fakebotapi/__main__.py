"""``python -m fakebotapi --port 8081``: serve a fake Bot API over HTTP (needs aiohttp)."""

from fakebotapi.server import main

main()
