"""The whole OAuth flow with the official Python MCP SDK (mcp 2.3.0), a
client we did not write, against a real authorization server: flaregate
answers 401 with its protected resource metadata, the SDK finds the
authorization server from it, runs authorization code + PKCE with the
resource indicator (headless: the authorization page redirects at once),
and calls tools with the token it got.

    python_oauth.py <flaregate MCP URL>
"""

import asyncio
import sys
from urllib.parse import parse_qs, urlparse

import httpx2
from mcp import ClientSession
from mcp.client.auth import AuthorizationCodeResult, OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import OAuthClientInformationFull, OAuthClientMetadata, OAuthToken

from checks import check

EXAMPLE_COM = "023e105f4ecef8ad9ca31a8372d0c353"
REDIRECT = "http://127.0.0.1:9/callback"


class Memory:
    """Token storage with the client registered in advance (the server has
    no dynamic registration)."""

    def __init__(self):
        self.tokens = None
        self.client = OAuthClientInformationFull(
            client_id="flaregate-interop", redirect_uris=[REDIRECT],
            token_endpoint_auth_method="none",
            grant_types=["authorization_code", "refresh_token"], response_types=["code"])

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client = client_info


async def main():
    url = sys.argv[1]
    redirected = {}

    async def redirect_handler(authorization_url: str) -> None:
        # The person signs in: here the authorization page answers with the
        # redirect at once, carrying the code.
        async with httpx2.AsyncClient() as browser:
            page = await browser.get(authorization_url, follow_redirects=False)
        location = page.headers["location"]
        redirected.update({k: v[0] for k, v in parse_qs(urlparse(location).query).items()})
        check("resource=" in authorization_url, "the authorization request carries the resource indicator")

    async def callback_handler() -> AuthorizationCodeResult:
        return AuthorizationCodeResult(code=redirected["code"], state=redirected.get("state"))

    storage = Memory()
    auth = OAuthClientProvider(
        server_url=url,
        client_metadata=OAuthClientMetadata(redirect_uris=[REDIRECT], client_name="flaregate interop"),
        storage=storage, redirect_handler=redirect_handler, callback_handler=callback_handler)
    async with httpx2.AsyncClient(auth=auth, timeout=httpx2.Timeout(30, read=300)) as http:
        async with streamable_http_client(url, http_client=http) as (read, write, *_):
            async with ClientSession(read, write, read_timeout_seconds=20) as session:
                await session.initialize()
                check(storage.tokens is not None, "the SDK signed in through the authorization server")
                tools = {t.name for t in (await session.list_tools()).tools}
                check("list_dns_records" in tools and "list_zones" not in tools,
                      f"the token reaches the sre agent's tools only ({sorted(tools)})")
                records = await session.call_tool("list_dns_records", {"zone_id": EXAMPLE_COM})
                check(not records.is_error, "a call with the token succeeds")


asyncio.run(main())
