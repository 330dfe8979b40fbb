"""The one access table: what each traffic class of API key may call, and how urgently.

Every API key belongs to one class. A class caps the scheduling priority its requests get (a
benchmark asking for ``interactive`` is queued as ``bulk``, so it never delays a trainer's GRPO
step) and lists the route groups it may call. Routes that need no key are listed here too.

Deny by default: a path in no group is refused (403) for every class, so a route added later is
closed to keys until it is given a group here.
"""

from __future__ import annotations

from dataclasses import dataclass

from judge_service.batching.policy import PRIORITIES


@dataclass(frozen=True)
class TrafficClass:
    """``max_priority``: the most urgent priority name (see ``batching.policy.PRIORITIES``) its
    requests may use; ``route_groups``: the groups of ``ROUTE_GROUPS`` it may call."""

    name: str
    max_priority: str
    route_groups: frozenset[str]
    purpose: str


TRAFFIC_CLASSES: dict[str, TrafficClass] = {
    c.name: c
    for c in (
        TrafficClass("trainer", "interactive", frozenset({"scoring"}),
                     "RL trainers: rewards on the critical path of a training step"),
        TrafficClass("benchmark", "bulk", frozenset({"scoring", "jobs"}),
                     "benchmark runs: large evaluations that must not delay trainers"),
        TrafficClass("ci", "interactive", frozenset({"scoring", "jobs"}),
                     "CI gates: small evaluations someone is waiting for"),
    )
}

ROUTE_GROUPS: tuple[tuple[str, str], ...] = (
    # (path, group): a path matches itself and everything below it ("/v1/jobs" covers
    # "/v1/jobs/123/results"), so a group never leaks onto a sibling such as "/v1/jobsx".
    ("/v1/score", "scoring"),
    ("/v1/analyze", "scoring"),
    ("/v1/judge", "scoring"),
    ("/v1/jobs", "jobs"),
)

OPEN_ROUTES = frozenset({
    # Probes and scraping must work without a key (kubelet, Prometheus); the API description
    # is public (it holds no data).
    "/healthz", "/readyz", "/metrics", "/docs", "/docs/oauth2-redirect", "/openapi.json", "/redoc",
})

assert all(c.max_priority in PRIORITIES for c in TRAFFIC_CLASSES.values())
assert all(g in {group for _, group in ROUTE_GROUPS} for c in TRAFFIC_CLASSES.values() for g in c.route_groups)


def route_group(path: str) -> str | None:
    """The group of ``path``, or None when it is in no group (refused for every class)."""
    for prefix, group in ROUTE_GROUPS:
        if path == prefix or path.startswith(prefix + "/"):
            return group
    return None


def capped_priority(traffic_class: str, requested: str) -> str:
    """``requested``, made no more urgent than ``traffic_class`` allows (a larger number in
    ``PRIORITIES`` is less urgent)."""
    cap = TRAFFIC_CLASSES[traffic_class].max_priority
    return requested if PRIORITIES[requested] >= PRIORITIES[cap] else cap
