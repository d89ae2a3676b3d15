"""Prometheus metrics, one registry per application (no global state).

The HTTP view that serves them is :mod:`bot.metrics_view` (assembly).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    """The counters the bot updates while it works."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.messages = Counter("bot_messages_total", "Inbound messages by channel and outcome",
                                ["channel", "outcome"], registry=self.registry)
        self.turn_latency = Histogram("bot_turn_seconds", "Time to answer one message",
                                      ["channel"], registry=self.registry,
                                      buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))
        self.nlu_fallbacks = Counter("bot_nlu_fallbacks_total", "Messages the bot did not understand",
                                     registry=self.registry)
        self.face_verdicts = Counter("bot_face_verdicts_total", "Selfie verification verdicts",
                                     ["decision"], registry=self.registry)
        self.face_latency = Histogram("bot_face_seconds", "Selfie received to verdict",
                                      registry=self.registry,
                                      buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60))
        self.queue_length = Gauge("bot_handoff_queue_length", "Chats waiting for a person",
                                  registry=self.registry)
        self.handoff_wait = Histogram("bot_handoff_wait_seconds", "Waiting time until staff claim",
                                      registry=self.registry,
                                      buckets=(10, 30, 60, 120, 300, 600, 1800, 3600, 7200))
        self.send_failures = Counter("bot_send_failures_total", "Replies a platform API refused",
                                     ["channel"], registry=self.registry)
        # The dashboard's counters (issue 22), for Grafana: the same steps as
        # ``certification_events``, by prefecture (ID region code or "other"; "unknown"
        # before the ID number is given) and channel.
        self.certification_steps = Counter(
            "bot_certification_steps_total", "Certification steps in the chat",
            ["step", "prefecture", "channel"], registry=self.registry)
        self.certification_failures = Counter(
            "bot_certification_failures_total", "Failed selfie verdicts by cause",
            ["cause", "prefecture", "channel"], registry=self.registry)
        self.handoff_cases = Counter("bot_handoff_cases_total", "Cases opened for staff",
                                     ["prefecture", "channel"], registry=self.registry)
        self.satisfaction = Counter("bot_satisfaction_answers_total",
                                    "Answers to 这次帮到您了吗 (score 1-3, 3 = helped)",
                                    ["score", "prefecture", "channel"], registry=self.registry)
        self.reminders = Counter("bot_reminders_total",
                                 "Reminder sends tried by the server's passes (outcome sent | not_sent)",
                                 ["outcome", "prefecture", "channel"], registry=self.registry)
        self.events_lost = Counter("bot_certification_events_lost_total",
                                   "Dashboard events not stored (database unavailable)",
                                   registry=self.registry)
