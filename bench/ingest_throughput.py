"""Ingest throughput on one process per channel, next to raw aiokafka produce on the same broker.

Every message ingest accepts is one Redis claim, one produce awaited with ``acks=all``, one
Redis marker, and only then the answer to the provider. The ceiling is measured in the same
run on the same broker the same way: ``--concurrency`` tasks each producing one event and
awaiting its acknowledgement before the next (what an ingest request does), and, for scale, a
pipelined producer (what the broker takes when nobody waits). Channels, each against a fresh
``python -m services.ingest``:

- SMS: Twilio webhooks signed like Twilio signs them (HMAC-SHA1 over URL + sorted form);
- SMTP: ``--concurrency`` aiosmtplib sessions, each delivering messages one after another.

Rates come from the timestamps of the records ingest wrote (first to last), so start-up is
not part of them.

    python -m bench.ingest_throughput [--messages 3000] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import aiosmtplib
from aiokafka import AIOKafkaProducer

from bench.harness import Rate, bench_stack, fill, output_rate, report, running_service
from libs.common.clock import system_clock
from libs.common.events import CustomerIdentity, Event, MessageReceived, encode, event_id
from libs.common.topics import Topics
from tooling.devstack import ServiceProcess, create_topics, free_port

AUTH_TOKEN = "bench-auth-token"
OUR_NUMBER = "+15005550006"
SUPPORT = "support@northwind-shop.example"


def event(i: int) -> tuple[str, Event]:
    thread = f"sms:{OUR_NUMBER}:+1415555{i % 10_000:04d}"
    message = MessageReceived(
        channel="sms",
        provider="twilio",
        provider_message_id=f"SM{i:032x}",
        thread_key=thread,
        customer=CustomerIdentity(phone=f"+1415555{i % 10_000:04d}"),
        recipient=OUR_NUMBER,
        text=f"I was charged twice for order {i}",
        received_at=system_clock(),
    )
    return thread, Event(
        id=event_id("bench", str(i)),
        source="/bench",
        subject=thread,
        time=system_clock(),
        data=message,
    )


async def concurrent(count: int, concurrency: int, one: Callable[[int], Awaitable[None]]) -> None:
    """``one(i)`` for every i, ``concurrency`` at a time, each task one after another."""
    numbers = iter(range(count))

    async def worker() -> None:
        for i in numbers:
            await one(i)

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def acked_produce(bootstrap: str, topic: str, count: int, concurrency: int) -> Rate:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:

        async def one(i: int) -> None:
            key, value = event(i)
            payload, headers = encode(value)
            await producer.send_and_wait(topic, payload, key=key.encode(), headers=headers)

        started = time.perf_counter()
        await concurrent(count, concurrency, one)
        return Rate(count, time.perf_counter() - started)
    finally:
        await producer.stop()


def twilio_signature(url: str, form: dict[str, str]) -> str:
    signed = url + "".join(k + form[k] for k in sorted(form))
    mac = hmac.new(AUTH_TOKEN.encode(), signed.encode(), hashlib.sha1).digest()
    return base64.b64encode(mac).decode()


async def sms_load(base_url: str, run: str, count: int, concurrency: int) -> None:
    url = f"{base_url}/v1/sms/twilio"
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def one(i: int) -> None:
            sid = "SM" + hashlib.md5(f"{run}{i}".encode(), usedforsecurity=False).hexdigest()
            form = {
                "MessageSid": sid,
                "AccountSid": "AC" + "0" * 32,
                "From": f"+1415555{i % 10_000:04d}",
                "To": OUR_NUMBER,
                "Body": f"I was charged twice for order {i}",
                "NumMedia": "0",
            }
            headers = {"X-Twilio-Signature": twilio_signature(url, form)}
            async with http.post(url, data=form, headers=headers) as response:
                await response.read()
                if response.status != 200:
                    raise RuntimeError(f"sms webhook answered {response.status}")

        await concurrent(count, concurrency, one)


def email(run: str, i: int) -> bytes:
    return (
        f"From: Customer {i} <customer{i % 10_000}@example.org>\r\n"
        f"To: Northwind Support <{SUPPORT}>\r\n"
        f"Subject: Order NW-{i} charged twice\r\n"
        f"Message-ID: <{run}.{i}@mail.example.org>\r\n"
        "Date: Wed, 05 Jun 2024 10:48:19 +0000\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\n"
        f"Hello,\r\n\r\nI was charged twice for order NW-{i}. Please refund one.\r\n\r\n"
        f"Thanks,\r\nCustomer {i}\r\n"
    ).encode()


async def smtp_load(port: int, run: str, count: int, concurrency: int) -> None:
    numbers = iter(range(count))

    async def session() -> None:
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False)
        await client.connect()
        try:
            for i in numbers:
                await client.sendmail(f"customer{i}@example.org", [SUPPORT], email(run, i))
        finally:
            await client.quit()

    await asyncio.gather(*(session() for _ in range(concurrency)))


async def run(count: int, concurrency: int) -> dict[str, Any]:
    async with bench_stack("ingest") as (stack, workdir):
        bootstrap = stack.broker.bootstrap_servers
        prefix = f"b{uuid.uuid4().hex[:6]}."
        raw_topic = f"{prefix}raw"
        await create_topics(bootstrap, [raw_topic, f"{prefix}pipelined"])
        acked = await acked_produce(bootstrap, raw_topic, count, concurrency)
        await fill(bootstrap, f"{prefix}pipelined", (event(i) for i in range(count)))
        pipelined = await output_rate(bootstrap, f"{prefix}pipelined", count, timeout=120)
        results: dict[str, Any] = {
            "messages": count,
            "concurrency": concurrency,
            "raw_acked_produce_per_second": round(acked.per_second),
            "raw_pipelined_produce_per_second": round(pipelined.per_second),
        }
        loads: dict[str, Callable[[ServiceProcess, int, str], Awaitable[None]]] = {
            "sms": lambda p, _smtp, run_id: sms_load(p.url, run_id, count, concurrency),
            "smtp": lambda _p, smtp, run_id: smtp_load(smtp, run_id, count, concurrency),
        }
        for channel, load in loads.items():
            channel_prefix = f"{prefix}{channel}."
            topics = Topics.with_prefix(channel_prefix)
            await create_topics(bootstrap, topics.all())
            http_port, smtp_port = free_port(), free_port()
            environment = {
                "SWITCHBOARD_PUBLIC_URL": f"http://127.0.0.1:{http_port}",
                "SWITCHBOARD_SMTP_PORT": str(smtp_port),
                "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            }
            async with running_service(
                stack,
                "ingest",
                channel_prefix,
                workdir / f"{channel}.log",
                ready_timeout=60,
                environment=environment,
                port=http_port,
            ) as ingest:
                started = time.perf_counter()
                await load(ingest, smtp_port, uuid.uuid4().hex[:8])
                client_seconds = time.perf_counter() - started
                rate = await output_rate(bootstrap, topics.inbound, count, timeout=120)
            results[f"{channel}_per_second"] = round(rate.per_second)
            results[f"{channel}_client_per_second"] = round(count / client_seconds)
            results[f"{channel}_ratio"] = round(rate.per_second / acked.per_second, 3)
        return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=3_000)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    report("ingest_throughput", asyncio.run(run(args.messages, args.concurrency)))


if __name__ == "__main__":
    main()
