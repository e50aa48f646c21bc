// A real OAuth 2 authorization server for the interop run (oauth2-mock-server,
// from npm): authorization code + PKCE, tokens signed RS256 with a key it
// makes. It honours the client's resource indicator (RFC 8707) by setting
// the access token's `aud` to the `resource` sent to the token endpoint,
// and gives the person flaregate's scopes and group.
// Usage: node interop/oauth_server.mjs   (prints "issuer: URL", runs until killed)
import { OAuth2Server } from "oauth2-mock-server";

const server = new OAuth2Server();
await server.issuer.keys.generate("RS256");
server.service.on("beforeTokenSigning", (token, req) => {
  const body = req.body ?? {};
  token.payload.aud = body.resource ?? "no resource indicator was sent";
  token.payload.scope = "flaregate:read flaregate:write";
  token.payload.groups = ["sre"];
  token.payload.email = "alice@example.com";
  token.payload.client_id = body.client_id;
});
await server.start(0, "127.0.0.1");
console.log(`issuer: ${server.issuer.url}`);
