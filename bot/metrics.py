"""Prometheus metrics (served at ``/metrics`` on the health listener, see ``bot.health``)."""

from prometheus_client import Counter, Gauge, Histogram

UPDATES_RECEIVED = Counter("helpcenter_updates_received_total", "Updates stored in the inbox")
UPDATES_HANDLED = Counter(
    "helpcenter_updates_handled_total", "Updates handled, by outcome", ["outcome"]
)
HANDLING_SECONDS = Histogram(
    "helpcenter_update_handling_seconds",
    "Time to handle one update",
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
FETCH_REFUSED = Counter(
    "helpcenter_fetch_refused_total",
    "getUpdates refused for the whole bot: another poller or a webhook on its token (409), "
    "its token revoked (401)",
    ["reason"],
)
INBOX_LAG = Gauge("helpcenter_inbox_lag_seconds", "Age of the oldest pending update")
OUTBOX_BACKLOG = Gauge("helpcenter_outbox_backlog", "Outbox messages waiting to be sent")
SEND_FAILURES = Counter("helpcenter_send_failures_total", "Failed sends, by kind", ["kind"])
URGENT_FIRST_ALERT_SECONDS = Histogram(
    "helpcenter_urgent_first_alert_seconds",
    "From an urgent request to its first alert sent",
    buckets=(0.1, 0.5, 1, 2, 5, 10, 30, 60, 120),
)
INBOX_PARKED = Gauge("helpcenter_inbox_parked", "Updates parked as failed after their last try")
WEBHOOK_REFUSED = Counter(
    "helpcenter_webhook_refused_total", "Webhook requests refused, by reason", ["reason"]
)
CASES_UNALERTED = Gauge(
    "helpcenter_cases_unalerted",
    "Open, unassigned cases nobody could be alerted about (nobody reachable on the team)",
)
