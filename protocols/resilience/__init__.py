"""Resilience: the policies a call goes through, whatever protocol carries it.

    policies = Policies(node, "B", rng, retry=RetrySettings(), breaker=BreakerSettings())
    caller = ResilientCaller(node, policies, endpoint.client.call, "http")
    call = caller.call("task.run", "req-1", timeout=5, on_done=print)

See `caller` for the call path (deadline, breaker, throttle, attempt, retries), `breaker`
for the circuit breaker (Resilience4j's states and defaults), `backoff` for the retry
policy and its waits, `budget` for retry budgets and adaptive throttling, `deadline` for
deadlines that shrink at every hop, `fanout` for a coordinator's parallel calls, and
`windows` for the sliding windows the breaker and the budgets count over.
"""

from protocols.resilience.backoff import RetryPolicy, RetrySettings, exponential, failure_kind
from protocols.resilience.breaker import (
    BreakerSettings,
    CircuitBreaker,
    State,
    is_failure,
    verdict,
)
from protocols.resilience.budget import (
    AdaptiveThrottle,
    AdaptiveThrottleSettings,
    Grant,
    GrpcThrottle,
    GrpcThrottleSettings,
    RatioBudget,
    RatioBudgetSettings,
    RetryBudget,
    RetryBudgetSettings,
    TokenBucket,
    TokenBucketSettings,
    backend_accepted,
    make_budget,
)
from protocols.resilience.caller import Attempt, Cancel, Policies, ResilientCaller
from protocols.resilience.deadline import DeadlineSettings, HopBudget, hop_budget
from protocols.resilience.fanout import FanOut, FanOutResult, FanOutSettings
from protocols.resilience.windows import CountWindow, SlidingWindow, Snapshot, TimeWindow

__all__ = [
    "AdaptiveThrottle",
    "AdaptiveThrottleSettings",
    "Attempt",
    "BreakerSettings",
    "Cancel",
    "CircuitBreaker",
    "CountWindow",
    "DeadlineSettings",
    "FanOut",
    "FanOutResult",
    "FanOutSettings",
    "Grant",
    "GrpcThrottle",
    "GrpcThrottleSettings",
    "HopBudget",
    "Policies",
    "RatioBudget",
    "RatioBudgetSettings",
    "ResilientCaller",
    "RetryBudget",
    "RetryBudgetSettings",
    "RetryPolicy",
    "RetrySettings",
    "SlidingWindow",
    "Snapshot",
    "State",
    "TimeWindow",
    "TokenBucket",
    "TokenBucketSettings",
    "backend_accepted",
    "exponential",
    "failure_kind",
    "hop_budget",
    "is_failure",
    "make_budget",
    "verdict",
]
