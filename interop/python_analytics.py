"""An agent answers "how many requests did example.com serve yesterday?"
through query_analytics, with the official Python MCP SDK against the
sandbox: it finds the example query its server instructions give for its
own zone, runs it, and reads the day's count; a query for another zone is
refused with the reason.

    python_analytics.py <MCP URL> <analyst key>
"""

import asyncio
import datetime
import re
import sys

import httpx2
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

from checks import check

EXAMPLE_COM = "023e105f4ecef8ad9ca31a8372d0c353"
EXAMPLE_ORG = "5a7805061c76ada191ed06f989cc3dac"
URL, KEY = sys.argv[1:3]


async def main():
    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {KEY}"}, timeout=30) as http:
        async with streamable_http_client(URL, http_client=http) as (read, write, *_):
            async with ClientSession(read, write) as session:
                started = await session.initialize()
                tools = {t.name for t in (await session.list_tools()).tools}
                check(tools == {"query_analytics"}, f"the analyst sees query_analytics only ({sorted(tools)})")
                said = started.instructions or ""
                found = re.search(r"requests served yesterday, in all: `([^`]+)`", said)
                check(found is not None, "the instructions give a query for yesterday's requests")
                query = found.group(1)
                check(EXAMPLE_COM in query, "the example names the analyst's own zone")
                answer = await session.call_tool("query_analytics", {"query": query})
                check(not answer.is_error, "the example query is answered")
                day = answer.structured_content["result"]["viewer"]["zones"][0]["httpRequests1dGroups"][0]
                yesterday = (datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=1)).date()
                check(day["dimensions"]["date"] == yesterday.isoformat(), f"the row is yesterday's ({day})")
                requests = day["sum"]["requests"]
                check(isinstance(requests, int) and requests > 0,
                      f"example.com served {requests} requests yesterday")
                other = query.replace(EXAMPLE_COM, EXAMPLE_ORG)
                refused = await session.call_tool("query_analytics", {"query": other})
                check(refused.is_error and "outside your zones" in refused.content[0].text,
                      "the same query for another zone is refused with the reason")


asyncio.run(main())
