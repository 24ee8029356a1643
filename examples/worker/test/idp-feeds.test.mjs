// The origin's identity-provider feeds, with real parts on loopback: the real `revguard origin
// serve`, the real oidc-provider signing a user in and out (its own back-channel logout call
// reaches the origin), and Security Event Tokens minted with npm `jose` (RFC 8935 push).
// Every refused event must revoke nothing: the list and the generation are checked.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomUUID } from "node:crypto";
import { SignJWT, exportJWK, generateKeyPair } from "jose";
import { Idp, Loopback, OriginService, claimsOf, until } from "./support.mjs";

const SSF_ISSUER = "https://ssf-transmitter.test";
const SSF_AUDIENCE = "https://revguard-origin.test";
const SSF_TOKEN = "ssf-push-token-0123456789";
const CAEP = "https://schemas.openid.net/secevent/caep/event-type/";
const RISC = "https://schemas.openid.net/secevent/risc/event-type/";

let idp;
let origin;
let relay;
let transmitterJwks;
let transmitterKey;
let otherKey;
const relayed = []; // logout tokens the relay client's back-channel calls carried

before(async () => {
  idp = await new Idp().start();
  // The SSF transmitter's key set, served on loopback.
  transmitterKey = await keyPair("tx-1");
  otherKey = await keyPair("tx-1"); // same kid, another key: a forged signature
  transmitterJwks = await new Loopback((_req, res) => {
    res.setHeader("content-type", "application/json");
    res.end(JSON.stringify({ keys: [transmitterKey.publicJwk] }));
  }).start();
  origin = await new OriginService({
    heartbeat_secs: 100,
    backchannel_logout: [{
      name: "oidc-provider", issuer: idp.url, jwks_uri: `${idp.url}/jwks`,
      client_ids: ["web", "web-relay"], token_lifetime_secs: 3600, jwks_refetch_cooldown_secs: 0,
    }],
    ssf: [{
      name: "transmitter", issuer: SSF_ISSUER, jwks_uri: `${transmitterJwks.url}/jwks`,
      audience: SSF_AUDIENCE, api_token_sha256: createHash("sha256").update(SSF_TOKEN).digest("hex"),
    }],
  }).start();
  // A client whose back-channel calls pass a recording relay (the same request, forwarded),
  // so that the logout token the provider sent can be sent again.
  relay = await new Loopback(async (req, res) => {
    const chunks = [];
    for await (const c of req) chunks.push(c);
    const body = Buffer.concat(chunks).toString();
    relayed.push(new URLSearchParams(body).get("logout_token"));
    const answer = await origin.post("/v1/logout/backchannel", body, req.headers["content-type"]);
    res.statusCode = answer.status;
    if (process.env.FEEDS_DEBUG) console.log("relay", answer.status, answer.text);
    res.end(answer.text);
  }).start();
  idp.enableLogin({
    web: `${origin.url}/v1/logout/backchannel`,
    "web-relay": `${relay.url}/logout`,
  });
});

after(async () => {
  await Promise.allSettled([idp?.stop(), origin?.stop(), relay?.stop(), transmitterJwks?.stop()]);
  origin?.cleanup();
});

async function keyPair(kid) {
  const { publicKey, privateKey } = await generateKeyPair("ES256", { extractable: true });
  return { kid, privateKey, publicJwk: { ...(await exportJWK(publicKey)), kid, alg: "ES256", use: "sig" } };
}

/** A SET signed with `key` (the transmitter's by default); `claims` override the defaults. */
function mintSet(events, claims = {}, { key = transmitterKey, typ = "secevent+jwt" } = {}) {
  const payload = {
    iss: SSF_ISSUER, aud: SSF_AUDIENCE, iat: Math.floor(Date.now() / 1000), jti: randomUUID(), events, ...claims,
  };
  return new SignJWT(payload).setProtectedHeader({ alg: "ES256", kid: key.kid, typ }).sign(key.privateKey);
}

function push(set, { token = SSF_TOKEN, contentType = "application/secevent+jwt" } = {}) {
  const headers = token ? { authorization: `Bearer ${token}` } : {};
  return origin.post("/v1/ssf/push", set, contentType, headers);
}

const user = (sub) => ({ format: "iss_sub", iss: "https://idp.example", sub });

/** Waits until the origin publishes a generation after `before`. */
async function published(before) {
  const { result } = await until(() => origin.generation(), (g) => g > before);
  assert.ok(result > before, `no generation after ${before}`);
  return result;
}

test("back-channel logout: oidc-provider's own call revokes the session's sid, and a new generation is published", async () => {
  const session = await idp.signIn({ user: "alice", clientId: "web" });
  assert.equal(claimsOf(session.accessToken).sid, session.sid);
  const before = await origin.generation();
  const started = performance.now();
  const calls = await idp.signOut(session);
  const signedOut = performance.now();
  assert.deepEqual(calls.map((c) => [c.clientId, c.ok]), [["web", true]], JSON.stringify(calls));
  const listed = await origin.revocations({ kind: "sid", value: session.sid });
  assert.equal(listed.length, 1, JSON.stringify(listed));
  assert.equal(listed[0].source, "backchannel_logout");
  assert.equal(listed[0].created_by, "oidc-provider");
  assert.equal(listed[0].reason, "backchannel-logout");
  assert.ok(listed[0].exp > Date.now() / 1000 + 3000, JSON.stringify(listed[0]));
  await published(before);
  console.log(
    `back-channel logout: end_session confirm answered (back-channel call committed) in ` +
      `${(signedOut - started).toFixed(0)} ms; generation published ${(performance.now() - started).toFixed(0)} ms after sign-out began`,
  );
});

test("back-channel logout: the IdP's JWKS unreachable gets a retryable 503 and revokes nothing; the same token is accepted once it is back", async () => {
  // The origin holds the provider's keys since the previous logout: a new signing key makes
  // it refetch the key set, which is down.
  idp.rotate();
  const session = await idp.signIn({ user: "bob", clientId: "web-relay" });
  idp.jwksDown = true;
  const countBefore = (await origin.revocations()).length;
  const generationBefore = await origin.generation();
  const calls = await idp.signOut(session);
  assert.equal(calls.length, 1);
  assert.equal(calls[0].ok, false, "the provider saw a failure");
  assert.equal(relayed.length, 1);
  const token = relayed[0];
  // The same token again, while the JWKS is still down: 503 with Retry-After.
  const down = await origin.post("/v1/logout/backchannel", new URLSearchParams({ logout_token: token }).toString(),
    "application/x-www-form-urlencoded");
  assert.equal(down.status, 503, down.text);
  assert.equal(down.json.error, "temporarily_unavailable");
  assert.ok(Number(down.headers.get("retry-after")) >= 1);
  assert.equal(down.headers.get("cache-control"), "no-store");
  assert.equal((await origin.revocations()).length, countBefore);
  assert.equal((await origin.revocations({ kind: "sid", value: session.sid })).length, 0);
  assert.equal(await origin.generation(), generationBefore);
  // Back: the same token is accepted (no refetch cooldown configured here: each request may
  // fetch, so each of the failures above was the key set being down).
  idp.jwksDown = false;
  const { result } = await until(
    () => origin.post("/v1/logout/backchannel", new URLSearchParams({ logout_token: token }).toString(),
      "application/x-www-form-urlencoded"),
    (r) => r.status !== 503,
  );
  assert.equal(result.status, 200, result.text);
  assert.equal(result.headers.get("cache-control"), "no-store");
  assert.equal((await origin.revocations({ kind: "sid", value: session.sid })).length, 1);
  await published(generationBefore);
  // A replay of it: 400 invalid_request, nothing more.
  const again = await origin.post("/v1/logout/backchannel", new URLSearchParams({ logout_token: token }).toString(),
    "application/x-www-form-urlencoded");
  assert.equal(again.status, 400);
  assert.equal(again.json.error, "invalid_request");
  assert.match(again.json.error_description, /jti/);
});

test("back-channel logout: malformed requests get 400 invalid_request", async () => {
  const form = "application/x-www-form-urlencoded";
  for (const [body, type] of [
    ["logout_token=not-a-jwt", form],
    ["other=1", form],
    ["{}", "application/json"],
  ]) {
    const r = await origin.post("/v1/logout/backchannel", body, type);
    assert.equal(r.status, 400, body);
    assert.equal(r.json.error, "invalid_request");
  }
});

test("SSF: each mapped event type becomes the documented revocation (202 Accepted)", async () => {
  const cases = [
    [`${CAEP}session-revoked`, { format: "complex", session: { format: "opaque", id: "sess-9" }, user: user("u-0") },
      { kind: "sid", value: "sess-9" }],
    [`${CAEP}session-revoked`, user("u-1"), { kind: "sub", value: "u-1" }],
    [`${CAEP}credential-change`, user("u-2"), { kind: "sub", value: "u-2" }],
    [`${CAEP}token-claims-change`, user("u-3"), { kind: "sub", value: "u-3" }],
    [`${RISC}account-disabled`, user("u-4"), { kind: "sub", value: "u-4" }],
    [`${RISC}account-purged`, { format: "opaque", id: "u-5" }, { kind: "sub", value: "u-5" }],
    [`${RISC}sessions-revoked`, user("u-6"), { kind: "sub", value: "u-6" }],
    [`${RISC}account-disabled`, { format: "complex", tenant: { format: "opaque", id: "acme" } },
      { kind: "tenant", value: "acme" }],
  ];
  for (const [event, subId, expected] of cases) {
    const before = await origin.generation();
    const at = Math.floor(Date.now() / 1000) - 30;
    const set = await mintSet({ [event]: { event_timestamp: at } }, { sub_id: subId });
    const r = await push(set);
    assert.equal(r.status, 202, `${event}: ${r.text}`);
    assert.equal(r.text, "");
    const listed = await origin.revocations(expected);
    assert.equal(listed.length, 1, `${event} ${JSON.stringify(expected)}`);
    assert.equal(listed[0].source, "ssf");
    assert.equal(listed[0].created_by, "transmitter");
    if (expected.kind !== "sid") assert.equal(listed[0].not_before, at, event);
    await published(before);
  }
  // The older per-event `subject` member, and no event_timestamp: issued before the SET's iat.
  const iat = Math.floor(Date.now() / 1000);
  const r = await push(await mintSet({ [`${RISC}account-disabled`]: { subject: user("u-7") } }, { iat }));
  assert.equal(r.status, 202, r.text);
  assert.equal((await origin.revocations({ kind: "sub", value: "u-7" }))[0].not_before, iat);
});

test("SSF: bad signature, wrong audience, replayed jti, unknown event, malformed body, no authentication: the RFC 8935 error, nothing revoked", async () => {
  const revoke = { [`${CAEP}session-revoked`]: {} };
  const replayed = await mintSet(revoke, { sub_id: user("replayed") });
  const first = await origin.generation();
  assert.equal((await push(replayed)).status, 202);
  await published(first);
  const countBefore = (await origin.revocations()).length;
  const generationBefore = await origin.generation();
  const cases = [
    ["bad signature", await mintSet(revoke, { sub_id: user("x1") }, { key: otherKey }), {}, 400, "invalid_key"],
    ["wrong audience", await mintSet(revoke, { sub_id: user("x2"), aud: "https://elsewhere.test" }), {}, 400,
      "invalid_audience"],
    ["unknown issuer", await mintSet(revoke, { sub_id: user("x3"), iss: "https://unknown.test" }), {}, 400,
      "invalid_issuer"],
    ["replayed jti", replayed, {}, 400, "invalid_request"],
    ["unknown event type", await mintSet({ "https://example.test/event/other": {} }, { sub_id: user("x4") }), {}, 400,
      "invalid_request"],
    ["malformed body", "this is not a JWS", {}, 400, "invalid_request"],
    ["wrong content type", await mintSet(revoke, { sub_id: user("x5") }), { contentType: "application/jwt" }, 400,
      "invalid_request"],
    ["wrong typ", await mintSet(revoke, { sub_id: user("x6") }, { typ: "JWT" }), {}, 400, "invalid_request"],
    ["no bearer token", await mintSet(revoke, { sub_id: user("x7") }), { token: null }, 401, "authentication_failed"],
    ["wrong bearer token", await mintSet(revoke, { sub_id: user("x8") }), { token: "nope" }, 401,
      "authentication_failed"],
  ];
  for (const [name, body, options, status, err] of cases) {
    const r = await push(body, options);
    assert.equal(r.status, status, `${name}: ${r.text}`);
    assert.equal(r.headers.get("content-type"), "application/json", name);
    assert.equal(r.json.err, err, `${name}: ${r.text}`);
    assert.equal(typeof r.json.description, "string", name);
  }
  assert.equal((await origin.revocations()).length, countBefore);
  assert.equal(await origin.generation(), generationBefore);
  // Counted by outcome.
  const metrics = await (await fetch(new URL("/metrics", origin.url))).text();
  for (const outcome of ["bad_key_or_signature", "wrong_audience", "unknown_issuer", "replayed",
    "authentication_failed"]) {
    assert.match(metrics, new RegExp(`revguard_origin_feed_events_total\\{feed="ssf",outcome="${outcome}"\\} [1-9]`), outcome);
  }
});
