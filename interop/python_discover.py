"""An agent granted the whole imported API, in discover mode, driven by the
official Python MCP SDK (mcp 2.3.0): find the zone-setting endpoint and set
Always Use HTTPS on example.com, as a model would, through search_api,
describe_api and call_api. Prints what the task cost in context. With a
second URL (the same grant in typed mode) it also measures that tools/list.

    python_discover.py <discover url> [<typed url>]
"""

import asyncio
import json
import sys

from mcp import ClientSession, types
from mcp.client.streamable_http import streamable_http_client

from checks import check

EXAMPLE_COM = "023e105f4ecef8ad9ca31a8372d0c353"
SETTING_PATH = "/zones/{zone_id}/settings/{setting_id}"


def size(result):
    """What a model reads of one answer: its content text, in bytes."""
    return sum(len(block.text.encode()) for block in result.content if block.type == "text")


async def list_size(session):
    tools, cursor, pages = [], None, 0
    while True:
        params = types.PaginatedRequestParams(cursor=cursor) if cursor else None
        page = await session.list_tools(params=params)
        pages += 1
        tools.extend(page.tools)
        cursor = page.next_cursor
        if not cursor:
            break
    text = json.dumps([t.model_dump(by_alias=True, exclude_none=True) for t in tools])
    return tools, len(text.encode()), pages


async def discover(url):
    async with streamable_http_client(url) as (read, write, *_):
        async with ClientSession(read, write, read_timeout_seconds=30) as session:
            await session.initialize()
            tools, listed, _ = await list_size(session)
            names = [t.name for t in tools]
            # "*" grants the alerts group too: list_alerts comes with the three.
            check(names == ["search_api", "describe_api", "call_api", "list_alerts"],
                  f"discover mode offers three tools, and the alerts ({names})")
            spent, calls = listed, 0

            found = await session.call_tool("search_api", {"query": "zone setting edit"})
            spent, calls = spent + size(found), calls + 1
            candidates = found.structured_content["endpoints"]
            check(candidates, f"search_api finds {len(candidates)} endpoints")
            edit = None
            for candidate in candidates:
                if candidate["method"] != "PATCH":
                    continue
                described = await session.call_tool("describe_api", {"name": candidate["name"]})
                spent, calls = spent + size(described), calls + 1
                if described.structured_content["path"] == SETTING_PATH:
                    edit = described.structured_content
                    break
            check(edit is not None, f"describe_api finds the one-setting edit ({edit and edit['name']})")
            zone_ids = edit["input_schema"]["properties"]["zone_id"].get("enum")
            check(zone_ids == [EXAMPLE_COM], "its zone_id offers the one zone the agent holds")

            answer = await session.call_tool("call_api", {"name": edit["name"], "arguments": {
                "zone_id": EXAMPLE_COM, "setting_id": "always_use_https",
                "body": {"id": "always_use_https", "value": "on"}}})
            spent, calls = spent + size(answer), calls + 1
            check(not answer.is_error, "call_api sets Always Use HTTPS on example.com")
            check(answer.structured_content["result"]["value"] == "on", "the sandbox answers the new value")
            outside = await session.call_tool("call_api", {"name": edit["name"], "arguments": {
                "zone_id": "5a7805061c76ada191ed06f989cc3dac", "setting_id": "always_use_https",
                "body": {"id": "always_use_https", "value": "on"}}})
            check(outside.is_error and "outside your zones" in outside.content[0].text,
                  "the same call on example.org is refused")
            print(f"discover: tools/list {listed} bytes (~{listed // 4} tokens); "
                  f"task: {calls} calls, {spent} bytes (~{spent // 4} tokens) with the list")


async def typed(url):
    async with streamable_http_client(url) as (read, write, *_):
        async with ClientSession(read, write, read_timeout_seconds=60) as session:
            await session.initialize()
            tools, listed, pages = await list_size(session)
            check(len(tools) > 1000, f"typed mode lists {len(tools)} tools in {pages} pages")
            print(f"typed: tools/list {listed} bytes (~{listed // 4} tokens), "
                  f"{listed // len(tools)} bytes per tool")


async def main():
    await discover(sys.argv[1])
    if len(sys.argv) > 2:
        await typed(sys.argv[2])


asyncio.run(main())
