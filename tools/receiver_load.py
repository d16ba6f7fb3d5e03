"""The webhook receiver under a flood (``docs/reliability.md``, Webhook receiver): forged
deliveries, deliveries for unknown environments, accepted ones and bodies over 64 KiB, posted
over loopback HTTP from the same process (so the figures include the client's share of the CPU).

    python tools/receiver_load.py [--deliveries 2000] [--keys 10] [--concurrency 50]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import time
import uuid
from collections import Counter

import httpx

from oec_operator.settings import WEBHOOK_PATH, OperatorConfig
from oec_operator.webhooks.book import SecretBook
from oec_operator.webhooks.calibrate import Calibrator
from oec_operator.webhooks.receiver import MAX_BODY, Receiver
from oec_operator.webhooks.scheme import SignatureScheme
from oec_testkit.ports import free_ports


class CountingSink:
    """Knows the environments whose id starts with ``known``; counts the hints."""

    def __init__(self) -> None:
        self.hints = 0

    async def hint(self, key_id: str, env_id: str, event: str) -> bool:
        self.hints += 1
        return env_id.startswith("known")

    def delivered(self, key_id: str) -> None:
        """No push health here."""


def _delivery(env_id: str) -> bytes:
    return json.dumps({"id": str(uuid.uuid4()), "event": "environment.status_changed", "webhook_id": "wh-0",
                       "data": {"environment_id": env_id, "project_id": "p"}}).encode()


async def run(deliveries: int, keys: int, concurrency: int) -> None:
    """Print, per kind of delivery, the answers, deliveries a second and the sink's hints so far."""
    port = free_ports(1)[0]
    config = OperatorConfig(webhook_address="127.0.0.1", webhook_port=port)
    book = SecretBook(SignatureScheme.from_config(config))
    for i in range(keys):
        book.set(f"key-{i}", f"wh-{i}", f"secret-{i}", time.time())
    sink = CountingSink()
    receiver = Receiver(config, book, Calibrator(), sink)
    await receiver.start()
    slots = asyncio.Semaphore(concurrency)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60,
                                     limits=httpx.Limits(max_connections=concurrency)) as http:
            async def send(body: bytes, secret: str) -> int:
                signature = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
                async with slots:
                    answer = await http.post(WEBHOOK_PATH, content=body, headers={"X-OEC-Signature": signature})
                return answer.status_code

            last = f"secret-{keys - 1}"  # the last key the book tries
            kinds = [("forged", "guessed", [_delivery("known-1") for _ in range(deliveries)]),
                     ("unknown environment", last, [_delivery("unknown-1") for _ in range(deliveries)]),
                     ("accepted", last, [_delivery("known-1") for _ in range(deliveries)]),
                     ("over 64 KiB", last, [b'{"pad": "' + b"x" * MAX_BODY + b'"}'] * (deliveries // 4))]
            await asyncio.gather(*(send(_delivery("known-0"), last) for _ in range(deliveries)))  # warm-up
            for label, secret, bodies in kinds:
                start = time.perf_counter()
                codes = Counter(await asyncio.gather(*(send(body, secret) for body in bodies)))
                seconds = time.perf_counter() - start
                print(f"{label}: answers {dict(codes)}, {len(bodies) / seconds:.0f} a second, "
                      f"hints so far {sink.hints}")
    finally:
        await receiver.stop()


def main() -> None:
    """Parse the command line and run."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--deliveries", type=int, default=2000)
    parser.add_argument("--keys", type=int, default=10, help="API keys (webhook secrets) in the book")
    parser.add_argument("--concurrency", type=int, default=50)
    args = parser.parse_args()
    asyncio.run(run(args.deliveries, args.keys, args.concurrency))


if __name__ == "__main__":
    main()
