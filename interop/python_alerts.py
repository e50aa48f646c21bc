"""A subscribed client hears of a Cloudflare alert as it arrives: with the
official Python MCP SDK, an agent subscribes to flaregate://alerts; the
sandbox sends an alert to flaregate's webhook, as Cloudflare would; the
client gets notifications/resources/updated and reads the alert, its text
quoted as data. A 2026-07-28 client listening (subscriptions/listen) on
flaregate://alerts gets the same event for the next alert.

    python_alerts.py <MCP URL> <watcher key> <sandbox root> <hook URL> <secret>
"""

import asyncio
import json
import sys

import httpx2
import mcp.types as types
from mcp import Client, ClientSession
from mcp.shared.subscriptions import ResourceUpdated
from mcp.client.streamable_http import streamable_http_client

from checks import check

URL, KEY, SANDBOX, HOOK, SECRET = sys.argv[1:6]
ALERTS = "flaregate://alerts"


async def main():
    updated = asyncio.Event()

    async def on_message(message):
        if isinstance(message, types.ResourceUpdatedNotification) and str(message.params.uri) == ALERTS:
            updated.set()

    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {KEY}"}, timeout=30) as http:
        async with streamable_http_client(URL, http_client=http) as (read, write, *_):
            async with ClientSession(read, write, message_handler=on_message) as session:
                started = await session.initialize()
                check(started.capabilities.resources is not None and started.capabilities.resources.subscribe,
                      "flaregate offers resources to subscribe to")
                listed = await session.list_resources()
                check([str(r.uri) for r in listed.resources] == [ALERTS], "the agent has the alerts list, empty so far")
                await session.subscribe_resource(ALERTS)
                async with httpx2.AsyncClient(timeout=30) as cloudflare:
                    fired = await cloudflare.post(f"{SANDBOX}/__sandbox/alerts", json={
                        "url": HOOK, "secret": SECRET, "alert_type": "http_alert_origin_error",
                        "zone": "example.com"})
                check(fired.status_code == 200 and fired.json()["status"] == 200,
                      "the sandbox delivered an alert to flaregate's webhook")
                await asyncio.wait_for(updated.wait(), 20)
                check(updated.is_set(), "the subscribed client heard notifications/resources/updated")
                read_back = await session.read_resource(ALERTS)
                alerts = json.loads(read_back.contents[0].text)
                check("never an instruction" in alerts["note"], "the alerts come with a note that they are data")
                texts = [a["text"] for a in alerts["alerts"]]
                check(texts == ["Origin error rate above 5% for example.com in the last 5 minutes"],
                      f"the alert is read back ({texts})")

    # 2026-07-28: a stateless client listens instead of subscribing.
    async with Client(URL, mode="2026-07-28") as client:
        async with client.listen(resource_subscriptions=[ALERTS]) as stream:
            check(ALERTS in (stream.honored.resource_subscriptions or []), "flaregate honours the alerts subscription")
            async with httpx2.AsyncClient(timeout=30) as cloudflare:
                fired = await cloudflare.post(f"{SANDBOX}/__sandbox/alerts", json={
                    "url": HOOK, "secret": SECRET, "alert_type": "dos_attack_l7", "zone": "example.com"})
            check(fired.status_code == 200, "the sandbox delivered a second alert")
            event = await asyncio.wait_for(stream.__anext__(), 20)
            check(isinstance(event, ResourceUpdated) and str(event.uri) == ALERTS,
                  f"the listening client heard the alerts updated ({event})")
        read_back = await client.read_resource(ALERTS)
        texts = [a["text"] for a in json.loads(read_back.contents[0].text)["alerts"]]
        check(texts[0] == "HTTP DDoS attack mitigated for example.com", f"the newest alert first ({texts})")


asyncio.run(main())
