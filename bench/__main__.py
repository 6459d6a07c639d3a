"""`python -m bench`: every benchmark, side by side, in one process.

`--small` runs shorter versions (about a tenth of the work) for a quick look.
"""

import sys

from bench import (
    custom_agents,
    kernel,
    mmc,
    policies,
    protocol_queue,
    protocol_sse,
    protocol_websocket,
    sweep,
)
from bench.kernel import bare_run

argv = sys.argv[1:]
small = "--small" in argv
kernel.main(argv)
mmc.main(argv)
policies.main(argv)

# One bare SimPy figure for the protocol ratios, measured here, beside them.
_, bare = bare_run(500, 10.0, 10.0 if small else 60.0, floor=False)
print(f"protocols: 100-agent loads, wire messages per wall second (bare SimPy {bare:,.0f})")
for name, module, duration in (
    ("http", None, 0),
    ("queue", protocol_queue, 30.0 if small else 300.0),
    ("sse", protocol_sse, 360.0 if small else 3600.0),
    ("websocket", protocol_websocket, 60.0 if small else 600.0),
):
    if module is None:
        r = policies.measure(duration=30.0 if small else 300.0)
        messages, rate = r["messages"], r["plain_rate"]
    else:
        r = module.measure(duration=duration)
        messages, rate = r["messages"], r["messages"] / r["seconds"]
    print(f"  {name:<10} {messages:>9,} messages {rate:>10,.0f} msg/s  ratio {rate / bare:.2f}")

custom_agents.main(argv)

# Last: it starts processes (a pool, a Dask cluster) that would disturb the others.
sweep.main(argv)
