"""Drive flaregate with the official Python MCP SDK (mcp 2.3.0), a client we
did not write. Exits non-zero if anything is not as expected.

    python_client.py stdio <flaregate> [args...]      # serves the auditor
    python_client.py http <url> <auditor key> <site-deployer key>
"""

import asyncio
import sys

import httpx2
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client

from checks import check

EXAMPLE_COM = "023e105f4ecef8ad9ca31a8372d0c353"
AUDITOR_TOOLS = 19  # 18 read tools of the catalog, and list_alerts
DEPLOYER_TOOLS = {"list_worker_scripts", "get_worker_script", "put_worker_script",
                  "delete_worker_script", "purge_cache"}


async def as_auditor(read, write):
    async with ClientSession(read, write, read_timeout_seconds=20) as session:
        await session.initialize()
        tools = (await session.list_tools()).tools
        check(len(tools) == AUDITOR_TOOLS, f"auditor sees {AUDITOR_TOOLS} tools (got {len(tools)})")
        check(all(t.annotations.read_only_hint for t in tools), "every auditor tool is read-only")
        zones = await session.call_tool("list_zones", {})
        check(not zones.is_error, "list_zones succeeds")
        names = sorted(z["name"] for z in zones.structured_content["result"])
        check(names == ["example.com", "example.org"], f"list_zones returns the sandbox zones ({names})")
        zone = await session.call_tool("get_zone", {"zone_id": EXAMPLE_COM})
        check(zone.structured_content["result"]["name"] == "example.com", "get_zone has an object result")
        bad = await session.call_tool("get_zone", {"zone_id": "../accounts"})
        check(bad.is_error and "zone_id" in bad.content[0].text, "a hostile id is refused, naming the field")


async def as_deployer(read, write):
    async with ClientSession(read, write, read_timeout_seconds=20) as session:
        await session.initialize()
        tools = {t.name for t in (await session.list_tools()).tools}
        check(tools == DEPLOYER_TOOLS, "site-deployer sees only its five tools")
        denied = await session.call_tool("put_worker_script", {
            "account_id": "a1b2c3d4e5f60718293a4b5c6d7e8f90", "script_name": "api-gateway",
            "script": "export default {}"})
        check(denied.is_error and "site-*" in denied.content[0].text, "a script outside site-* is denied with the reason")
        deployed = await session.call_tool("put_worker_script", {
            "account_id": "a1b2c3d4e5f60718293a4b5c6d7e8f90", "script_name": "site-docs",
            "script": "export default { fetch() { return new Response('docs'); } };"})
        check(not deployed.is_error, "a site-* script deploys")
        # Previews answer in the tool's declared output schema, which the
        # SDK validates: an allowed one, and one the policy would refuse.
        previewed = await session.call_tool("put_worker_script", {
            "account_id": "a1b2c3d4e5f60718293a4b5c6d7e8f90", "script_name": "site-docs",
            "script": "export default {}", "dry_run": True})
        check(not previewed.is_error and previewed.structured_content["preview"] is True,
              "a dry_run preview validates against the tool's output schema")
        refused = await session.call_tool("put_worker_script", {
            "account_id": "a1b2c3d4e5f60718293a4b5c6d7e8f90", "script_name": "api-gateway",
            "script": "export default {}", "dry_run": True})
        check(refused.is_error and refused.structured_content["decision"]["would_be"] == "denied",
              "a preview the policy refuses is an error with the decision alone")


def http_client(key):
    return httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"},
                              timeout=httpx2.Timeout(30, read=300))


async def main():
    mode = sys.argv[1]
    if mode == "stdio":
        params = StdioServerParameters(command=sys.argv[2], args=sys.argv[3:])
        async with stdio_client(params) as (read, write):
            await as_auditor(read, write)
    elif mode == "http":
        url, auditor_key, deployer_key = sys.argv[2:5]
        async with http_client(auditor_key) as http:
            async with streamable_http_client(url, http_client=http) as (read, write, *_):
                await as_auditor(read, write)
        async with http_client(deployer_key) as http:
            async with streamable_http_client(url, http_client=http) as (read, write, *_):
                await as_deployer(read, write)
    else:
        sys.exit(f"unknown mode {mode}")


asyncio.run(main())
