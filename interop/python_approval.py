"""Approval at the client, driven by the official Python MCP SDK (mcp 2.3.0):
flaregate asks the person through elicitation, showing the call's preview,
in an initialized (2025-11-25) session (`elicitation/create`) and on
2026-07-28 requests (an `input_required` result; the SDK asks its user and
retries with the answer). Accept: the call runs. Decline: refused, nothing
sent. A client that cannot ask, or an agent whose policy names the operator
as approver: refused with an approval id for the operator.

    python_approval.py <url> <sandbox API> <operator-approved agent's url> <its sandbox API>
"""

import asyncio
import sys

import httpx2
from mcp import Client, ClientSession, types
from mcp.client.streamable_http import streamable_http_client

from checks import check

EXAMPLE_COM = "023e105f4ecef8ad9ca31a8372d0c353"
WWW = "8ce0e8a8a7b7b3c1d0e9f8a7b6c5d4e3"
MX = "3d2c1b0a99887766554433221100ffee"
TXT = "b1a2c3d4e5f60718293a4b5c6d7e8f91"
asked = []


def person(answer):
    async def callback(context, params):
        asked.append(params.message)
        if answer:
            return types.ElicitResult(action="accept", content={"approve": True})
        return types.ElicitResult(action="decline")
    return callback


async def delete(url, record, callback):
    async with streamable_http_client(url) as (read, write, *_):
        async with ClientSession(read, write, read_timeout_seconds=30,
                                 elicitation_callback=callback) as session:
            await session.initialize()
            return await session.call_tool("delete_dns_record",
                                           {"zone_id": EXAMPLE_COM, "dns_record_id": record})


async def delete_modern(url, record, callback):
    """The same call as a stateless 2026-07-28 request: the SDK drives the
    input_required round itself."""
    async with Client(url, mode="2026-07-28", elicitation_callback=callback) as client:
        return await client.call_tool("delete_dns_record",
                                      {"zone_id": EXAMPLE_COM, "dns_record_id": record})


def deletes(sandbox_api):
    """DELETE requests the sandbox received (its request log)."""
    root = sandbox_api.removesuffix("/client/v4")
    requests = httpx2.get(f"{root}/__sandbox/requests").json()
    return sum(1 for r in requests if r["method"] == "DELETE")


async def main():
    url, sandbox_api = sys.argv[1], sys.argv[2]
    done = await delete(url, WWW, person(True))
    check(not done.is_error, "accepted at the client: the record is deleted")
    check(asked and "www.example.com" in asked[0] and "delete_dns_record" in asked[0],
          "the person was shown the call and what it removes")
    declined = await delete(url, MX, person(False))
    check(declined.is_error and "did not approve" in declined.content[0].text,
          "declined at the client: refused")
    operator = await delete(url, TXT, None)
    text = operator.content[0].text
    check(operator.is_error and "flaregate approve" in text,
          "a client that cannot ask gets an approval id for the operator")
    check(deletes(sandbox_api) == 1, "only the approved delete reached the sandbox")

    asked.clear()
    declined = await delete_modern(url, MX, person(False))
    check(declined.is_error and "did not approve" in declined.content[0].text,
          "2026-07-28, declined at the client: refused")
    check(asked and "delete_dns_record" in asked[0], "2026-07-28: the person was asked, with the preview")
    check(deletes(sandbox_api) == 1, "2026-07-28: the declined delete did not reach the sandbox")
    done = await delete_modern(url, MX, person(True))
    check(not done.is_error, "2026-07-28, accepted at the client: the record is deleted")
    check(deletes(sandbox_api) == 2, "2026-07-28: the accepted delete reached the sandbox once")

    asked.clear()
    operator_url = sys.argv[3]
    held = await delete(operator_url, TXT, person(True))
    check(held.is_error and "flaregate approve" in held.content[0].text and not asked,
          "approver = operator: a client that can ask is not asked; the operator decides")
    held = await delete_modern(operator_url, TXT, person(True))
    check(held.is_error and "flaregate approve" in held.content[0].text and not asked,
          "approver = operator, 2026-07-28: not asked either")
    check(deletes(sys.argv[4]) == 0, "nothing the operator has not approved reached the sandbox")


asyncio.run(main())
