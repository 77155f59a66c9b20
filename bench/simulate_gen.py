"""How fast `coex simulate` builds and signs traffic, and how much memory it holds.

    .venv/bin/python bench/simulate_gen.py [--messages 1000000] [--businesses 1]

Generation runs in the same process as the POSTs, so it must stay far ahead of the ingest
(target: well above 50k messages/s). Baseline, same run: signing alone (HMAC-SHA256 of every
body), the floor under any generator that must sign what it sends.
"""

from __future__ import annotations

import argparse
import platform
import resource
import time

from coex.simulator import Simulation, sign


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--businesses", type=int, default=1)
    args = parser.parse_args()

    started = time.perf_counter()
    sim = Simulation(args.businesses, args.messages, seed=1)
    planned = time.perf_counter()
    webhooks = size = 0
    signing = 0.0
    for delivery in sim.deliveries():
        t0 = time.perf_counter()
        sign(b"bench-secret", delivery.body)
        signing += time.perf_counter() - t0
        webhooks += 1
        size += len(delivery.body)
    done = time.perf_counter()
    messages = sim.expected.messages
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    print(f"machine: {platform.machine()} {platform.processor() or ''} python {platform.python_version()}")
    print(f"businesses={args.businesses} messages={messages} webhooks={webhooks} bytes={size / 1e6:.1f} MB")
    print(f"plan {planned - started:.2f} s; generate+sign {done - planned:.2f} s")
    print(
        f"coex simulator: {messages / (done - started):,.0f} messages/s, {size / 1e6 / (done - started):.1f} MB/s, "
        f"peak RSS {rss_mb:.0f} MB"
    )
    print(f"baseline, signing alone: {messages / signing:,.0f} messages/s ({size / 1e6 / signing:.0f} MB/s)")


if __name__ == "__main__":
    main()
