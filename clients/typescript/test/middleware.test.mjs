// The middleware package against a real cluster (and, when PGBOUNCER_PORT is set, through
// pgbouncer in transaction mode). Run by test/integration/ts_middleware.sh after `npm ci` and
// `tsc`, as `node --test-reporter=tap test/middleware.test.mjs`; by hand:
//   PGPORT=... REPO=/path/to/repo [PGBOUNCER_PORT=...] node --test-reporter=tap test/middleware.test.mjs
// Only top-level tests (one TAP line each), so the TAP counts what a user relies on.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import pg from "pg";
import { initTRPC, TRPCError } from "@trpc/server";
import { fetchRequestHandler } from "@trpc/server/adapters/fetch";
import {
  ConnectionStateLeak, GatewayError, TransactionRolledBack, REASON_REFUSALS, checkApiKey, errorForDatabase, errorForReason,
  statusForSqlstate, withApiKey, withSupabaseUser,
} from "../dist/index.js";
import { apiKeyProcedure, gatewayResponseMeta } from "../dist/trpc.js";

const HOST = "127.0.0.1";
const PORT = Number(process.env.PGPORT || 5432);
const BOUNCER = process.env.PGBOUNCER_PORT ? Number(process.env.PGBOUNCER_PORT) : null;
const DB = process.env.PGDATABASE_GATEWAY || "gateway";
const REPO = process.env.REPO || new URL("../../..", import.meta.url).pathname;
const APP = "pgw_ts_app"; // the app server's login: verify (via service_role) and SET ROLE authenticated

// Every query node-postgres sends in this process goes through Client.prototype.query: record
// any named (server-side prepared) statement, which pgbouncer < 1.21 breaks in transaction mode.
const named = [];
const originalQuery = pg.Client.prototype.query;
pg.Client.prototype.query = function (config, ...rest) {
  if (config && typeof config === "object" && config.name && !this.allowNamed) named.push(config.name);
  return originalQuery.call(this, config, ...rest);
};

const su = new pg.Client({ host: HOST, port: PORT, user: "postgres", database: DB });
const P = randomUUID(), Q = randomUUID();
const users = { alice: randomUUID(), bob: randomUUID(), carol: randomUUID() };
const ifaces = { a: randomUUID(), b: randomUUID(), q: randomUUID() };
const keys = {}; // tag -> { key_id, api_key }
let createdRoles = [];
let newVerify = false; // gateway.api_key_verify has required_scope and cost (0.6.0)
let issueArgs = {}; // api_key_issue's scope / usage argument names, when the server has them
const pools = [];
const newPool = (opts) => { const p = new pg.Pool({ host: HOST, port: PORT, user: APP, database: DB, ...opts }); pools.push(p); return p; };
let pool;

async function issue(tag, user, project, extra = "", params = []) {
  const { rows } = await su.query(
    `SELECT key_id, api_key FROM gateway.api_key_issue($1, $2, $3${extra})`, [users[user], project, `ts-${tag}-${randomUUID().slice(0, 8)}`, ...params]);
  keys[tag] = rows[0];
  return rows[0];
}

before(async () => {
  await su.connect();
  const before = (await su.query(
    "SELECT rolname FROM pg_roles WHERE rolname IN ('anon','authenticated','service_role',$1)", [APP])).rows.map((r) => r.rolname);
  await su.query(readFileSync(join(REPO, "test/pgtap/include/supabase_roles.psql"), "utf8"));
  if (!before.includes(APP)) await su.query(`CREATE ROLE ${APP} LOGIN`);
  // Inherits service_role's EXECUTE on api_key_verify; may SET ROLE authenticated.
  await su.query(`GRANT service_role, authenticated TO ${APP}`);
  createdRoles = [APP, "anon", "authenticated", "service_role"].filter((r) => !before.includes(r));
  await su.query(execFileSync("bash", [join(REPO, "scripts/doc-grants.sh")], { encoding: "utf8" }));
  await su.query("CREATE ROLE pgw_ts_limited LOGIN CONNECTION LIMIT 0");
  createdRoles.push("pgw_ts_limited");

  for (const [project, user, role] of [[P, "alice", "editor"], [P, "bob", "owner"], [Q, "carol", "owner"]]) {
    await su.query("INSERT INTO gateway.project_members (project_id, user_id, role) VALUES ($1, $2, $3)", [project, users[user], role]);
  }
  for (const [tag, project] of [["a", P], ["b", P], ["q", Q]]) {
    const sid = randomUUID();
    await su.query(`INSERT INTO gateway.service_interfaces (id, project_id, workflow_id, name, interface_type, callable_name)
                    VALUES ($1, $2, gen_random_uuid(), $3, 'signal', $3)`, [sid, project, `ts-${tag}-${sid.slice(0, 8)}`]);
    await su.query("INSERT INTO gateway.public_interfaces (id, service_interface_id, project_id) VALUES ($1, $2, $3)", [ifaces[tag], sid, project]);
  }

  await issue("ok", "alice", P);
  await issue("carol", "carol", Q);
  await issue("revoked", "alice", P);
  await su.query("SELECT gateway.api_key_revoke($1)", [keys.revoked.key_id]);
  await issue("expired", "alice", P, ", expires_at => now() + interval '1 hour'");
  await su.query("UPDATE gateway.api_keys SET expires_at = now() - interval '1 second' WHERE id = $1", [keys.expired.key_id]);
  await issue("unknown", "alice", P);
  await su.query("DELETE FROM gateway.api_keys WHERE id = $1", [keys.unknown.key_id]);
  await issue("bound", "alice", P, ", public_interface_id => $4", [ifaces.a]);
  for (const tag of ["limited", "limitedTrpc", "limitedBouncer"]) await issue(tag, "alice", P, ", rate_limit_per_minute => 1");

  // 0.6.0: the verify arguments, and how api_key_issue takes scopes and a usage limit.
  const args = (await su.query(
    "SELECT p.proname, a.arg, format_type(a.typ, NULL) AS type FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace, " +
    "LATERAL unnest(p.proargnames, coalesce(p.proallargtypes, p.proargtypes::oid[]), p.proargmodes::text[]) AS a(arg, typ, mode) " +
    "WHERE n.nspname = 'gateway' AND p.proname IN ('api_key_verify', 'api_key_issue') AND coalesce(a.mode, 'i') IN ('i', 'b')")).rows;
  newVerify = ["required_scope", "cost"].every((a) => args.some((r) => r.proname === "api_key_verify" && r.arg === a));
  const issueArg = (re, type) => args.find((r) => r.proname === "api_key_issue" && re.test(r.arg) && type.test(r.type))?.arg;
  issueArgs = { scopes: issueArg(/scope/, /^text\[\]$/), usage: issueArg(/^remaining$|usage|uses/, /^(integer|bigint)$/) };
  pool = newPool({ max: 2 });
});

after(async () => {
  for (const p of pools) await p.end().catch(() => {});
  try {
    await su.query("DELETE FROM gateway.api_keys WHERE project_id = ANY($1)", [[P, Q]]);
    await su.query("DELETE FROM gateway.public_interfaces WHERE project_id = ANY($1)", [[P, Q]]);
    await su.query("DELETE FROM gateway.service_interfaces WHERE project_id = ANY($1)", [[P, Q]]);
    await su.query("DELETE FROM gateway.project_members WHERE project_id = ANY($1)", [[P, Q]]);
    for (const r of createdRoles) await su.query(`DROP OWNED BY ${r}`);
    for (const r of createdRoles) await su.query(`DROP ROLE ${r}`);
  } finally {
    await su.end();
  }
});

// ------------------------------------------------------------------------------------------
// The mapping table, pure.
// ------------------------------------------------------------------------------------------
const REASONS = {
  missing: [401, "UNAUTHORIZED"], malformed: [401, "UNAUTHORIZED"], unknown: [401, "UNAUTHORIZED"],
  expired: [401, "UNAUTHORIZED"], revoked: [403, "FORBIDDEN"], wrong_interface: [403, "FORBIDDEN"],
  insufficient_scope: [403, "FORBIDDEN"], rate_limited: [429, "TOO_MANY_REQUESTS"],
  usage_exceeded: [429, "TOO_MANY_REQUESTS"],
};

test("mapping: every verify reason -> HTTP status and tRPC code; unknown reasons are refused", () => {
  assert.deepEqual(Object.keys(REASON_REFUSALS).sort(), Object.keys(REASONS).sort());
  for (const [reason, [status, code]] of Object.entries(REASONS)) {
    const e = errorForReason(reason, reason === "rate_limited" ? 7 : null);
    assert.equal(e.status, status, reason);
    assert.equal(e.trpcCode, code, reason);
    assert.equal(e.code, reason);
    assert.equal(e.headers()["Retry-After"], reason === "rate_limited" ? "7" : undefined, reason);
    assert.equal(e.headers()["WWW-Authenticate"] !== undefined, status === 401, reason);
  }
  assert.equal(errorForReason("rate_limited", 0).retryAfterSeconds, 1, "Retry-After is at least 1");
  assert.equal(errorForReason("rate_limited", 2.2).retryAfterSeconds, 3, "Retry-After rounds up");
  assert.equal(errorForReason("usage_exceeded", null, { usageExceededStatus: 403 }).status, 403);
  assert.equal(errorForReason("usage_exceeded").retryAfterSeconds, undefined);
  for (const odd of ["something_new", null, "ok", "__proto__", "toString"]) {
    const e = errorForReason(odd);
    assert.deepEqual([e.status, e.trpcCode, e.code], [403, "FORBIDDEN", "refused"], String(odd));
  }
});

test("mapping: SQLSTATEs and network errors -> 403/401/400/503/500, no database text in 5xx", () => {
  const cases = {
    "42501": 403, "28000": 401, "22P02": 400, "22023": 400, "22012": 400, "08006": 503, "08001": 503,
    "57P01": 503, "57P03": 503, "53300": 503, "28P01": 500, "42P01": 500, "XX000": 500, "P0001": 500, "23505": 500, "40001": 500,
  };
  for (const [code, status] of Object.entries(cases)) {
    assert.equal(statusForSqlstate(code), status, code);
    const e = errorForDatabase(Object.assign(new Error(`secret detail of ${code}`), { code }));
    assert.equal(e.status, status, code);
    assert.equal(e.sqlstate, code);
    if (status >= 500) assert.ok(!e.message.includes("secret") && !JSON.stringify(e.toJSON()).includes("secret"), code);
    else assert.equal(e.message, `secret detail of ${code}`, "4xx keep the database's message");
  }
  for (const code of ["ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "EPIPE"]) {
    assert.equal(errorForDatabase(Object.assign(new Error("x"), { code })).status, 503, code);
  }
  assert.equal(errorForDatabase(new Error("Connection terminated unexpectedly")).status, 503);
  assert.equal(errorForDatabase(new Error("timeout exceeded when trying to connect")).status, 503);
  assert.equal(errorForDatabase(new Error("boom")).status, 500);
  assert.equal(errorForDatabase(undefined).status, 500);
  const g = errorForReason("revoked");
  assert.equal(errorForDatabase(g), g, "a GatewayError passes as is");
});

// ------------------------------------------------------------------------------------------
// Against real keys.
// ------------------------------------------------------------------------------------------
const call = (handler, key, url = "http://app.test/api/x") =>
  handler(new Request(url, { headers: key === undefined ? {} : { "X-API-Key": key } }), { params: Promise.resolve({}) });
const echo = async (_req, key) => Response.json(key);

// [case, header value, route options, status, body code]
const routeCases = () => [
  ["ok", keys.ok.api_key, {}, 200, null],
  ["missing header", undefined, {}, 401, "missing"],
  ["empty header", "  ", {}, 401, "missing"],
  ["malformed", "gw_nope", {}, 401, "malformed"],
  ["unknown", keys.unknown.api_key, {}, 401, "unknown"],
  ["expired", keys.expired.api_key, {}, 401, "expired"],
  ["revoked", keys.revoked.api_key, {}, 403, "revoked"],
  ["wrong interface (bound to a, asked b)", keys.bound.api_key, { publicInterfaceId: ifaces.b }, 403, "wrong_interface"],
  ["bound key on its interface", keys.bound.api_key, { publicInterfaceId: ifaces.a }, 200, null],
  ["another project's interface", keys.ok.api_key, { publicInterfaceId: ifaces.q }, 403, "wrong_interface"],
  ["interface id not a uuid (22P02)", keys.ok.api_key, { publicInterfaceId: "not-a-uuid" }, 400, "database_error"],
];

test("Next.js route helper: every reason of a real key -> status and body; ok passes the key's identity", async () => {
  for (const [name, key, opts, status, code] of routeCases()) {
    const res = await call(withApiKey(pool, echo, opts), key);
    const body = await res.json();
    assert.equal(res.status, status, `${name}: ${JSON.stringify(body)}`);
    if (code) {
      assert.equal(body.error.code, code, name);
      assert.equal(res.headers.get("cache-control"), "no-store", name);
      assert.equal(res.headers.has("www-authenticate"), status === 401, name);
    } else {
      assert.deepEqual([body.keyId, body.userId, body.projectId], [name === "ok" ? keys.ok.key_id : keys.bound.key_id, users.alice, P], name);
    }
  }
});

test("resolve that leaves a field undefined keeps the route's fixed interface (no silent unbinding)", async () => {
  // e.g. resolve: (req) => ({ requiredScope: scopeOf(req), publicInterfaceId: lookup(req) }), lookup missing a path
  const opts = { publicInterfaceId: ifaces.q, resolve: () => ({ publicInterfaceId: undefined, requiredScope: undefined }) };
  const res = await call(withApiKey(pool, echo, opts), keys.ok.api_key);
  assert.equal(res.status, 403, `route helper: ${JSON.stringify(await res.json())}`);
  const { fetchIt } = trpcApp(pool, opts);
  const trpcRes = await fetchIt("whoami", keys.ok.api_key);
  assert.equal(trpcRes.status, 403, `tRPC: ${JSON.stringify(await trpcRes.json())}`);
});

test("Next.js route helper: a rate-limited key gets 429 with Retry-After, and the handler does not run", async () => {
  let ran = 0;
  const handler = withApiKey(pool, async (req, key) => { ran++; return echo(req, key); });
  assert.equal((await call(handler, keys.limited.api_key)).status, 200);
  const res = await call(handler, keys.limited.api_key);
  assert.equal(res.status, 429);
  assert.equal((await res.json()).error.code, "rate_limited");
  const retry = Number(res.headers.get("retry-after"));
  assert.ok(Number.isInteger(retry) && retry >= 1 && retry <= 60, `Retry-After ${res.headers.get("retry-after")}`);
  assert.equal(ran, 1);
});

test("Next.js route helper: database errors in the handler map by SQLSTATE; 5xx bodies carry no database text", async () => {
  const asUser = (sql, params) => withApiKey(pool, async (_req, key) =>
    withSupabaseUser(pool, { sub: key.userId, role: "authenticated" }, async (c) => Response.json((await c.query(sql, params)).rows)));
  // alice (editor of P) may not issue a key for bob: 42501 from the gateway itself.
  let res = await call(asUser("SELECT * FROM gateway.api_key_issue($1, $2, 'ts-denied')", [users.bob, P]), keys.ok.api_key);
  let body = await res.json();
  assert.equal(res.status, 403, JSON.stringify(body));
  assert.match(body.error.message, /permission denied/);
  res = await call(asUser("SELECT gateway.api_key_revoke($1)", ["not-a-uuid"]), keys.ok.api_key);
  assert.equal(res.status, 400);
  const seen = [];
  const broken = withApiKey(pool, async () => { await pool.query("SELECT * FROM ts_no_such_table_secret_name"); }, { onError: (e) => seen.push(e.code) });
  res = await call(broken, keys.ok.api_key);
  body = await res.text();
  assert.equal(res.status, 500);
  assert.ok(!body.includes("secret_name") && !body.includes("relation"), body);
  assert.deepEqual(seen, ["42P01"], "onError gets the real error");
});

test("Next.js route helper: an unreachable database or a full connection limit (53300) -> 503", async () => {
  const closed = newPool({ port: 1, max: 1 });
  let res = await call(withApiKey(closed, echo), keys.ok.api_key);
  assert.equal(res.status, 503);
  assert.equal((await res.json()).error.code, "service_unavailable");
  const full = newPool({ user: "pgw_ts_limited", max: 1 });
  res = await call(withApiKey(full, echo), keys.ok.api_key);
  const body = await res.json();
  assert.equal(res.status, 503, JSON.stringify(body));
  assert.ok(!JSON.stringify(body).includes("pgw_ts_limited"), "the role name stays inside");
});

// tRPC through its own fetch adapter, so the HTTP status is tRPC's own mapping of our codes.
function trpcApp(db, opts = {}) {
  const t = initTRPC.context().create();
  const keyed = t.procedure.concat(apiKeyProcedure(db, opts));
  const router = t.router({
    whoami: keyed.query(({ ctx }) => ctx.apiKey),
    denied: keyed.query(() => db.query("SELECT 1 FROM ts_missing_table_secret")),
    revokeBadId: keyed.query(() => db.query("SELECT gateway.api_key_revoke($1)", ["x"])),
  });
  const fetchIt = (path, key) => fetchRequestHandler({
    endpoint: "/trpc", router,
    req: new Request(`http://app.test/trpc/${path}`, { headers: key === undefined ? {} : { "x-api-key": key } }),
    createContext: ({ req, resHeaders }) => ({ req, resHeaders }),
  });
  return { t, router, fetchIt };
}

test("tRPC middleware: every reason of a real key -> TRPCError code and HTTP status; ok puts ctx.apiKey", async () => {
  for (const [name, key, opts, status, code] of routeCases()) {
    const { fetchIt, router, t } = trpcApp(pool, opts);
    const res = await fetchIt("whoami", key);
    const body = await res.json();
    assert.equal(res.status, status, `${name}: ${JSON.stringify(body)}`);
    if (code) {
      const want = status === 400 ? "BAD_REQUEST" : REASONS[code][1];
      assert.equal(body.error.data.code, want, name);
      // And through a server-side caller: a TRPCError whose cause is the GatewayError.
      const caller = t.createCallerFactory(router)({ headers: new Headers(key === undefined ? {} : { "x-api-key": key }) });
      await assert.rejects(caller.whoami(), (e) => e instanceof TRPCError && e.code === want && e.cause instanceof GatewayError, name);
    } else {
      assert.equal(body.result.data.userId, users.alice, name);
    }
  }
});

test("tRPC middleware: a dropped connection inside a procedure -> 503 without the driver's message", async () => {
  const okDb = { query: async () => ({ rows: [{ valid: true, reason: "ok", key_id: "k", user_id: "u", project_id: "p" }] }) };
  const t = initTRPC.context().create();
  const keyed = t.procedure.concat(apiKeyProcedure(okDb));
  const router = t.router({ dropped: keyed.query(() => { throw new Error("Connection terminated unexpectedly"); }) });
  const res = await fetchRequestHandler({
    endpoint: "/trpc", router, createContext: ({ req, resHeaders }) => ({ req, resHeaders }),
    req: new Request("http://app.test/trpc/dropped", { headers: { "x-api-key": "gw_any" } }),
  });
  const text = await res.text();
  assert.equal(res.status, 503, text);
  assert.ok(!text.includes("Connection terminated"), text);
});

test("tRPC middleware: rate-limited key -> TOO_MANY_REQUESTS, HTTP 429 with Retry-After", async () => {
  const { fetchIt } = trpcApp(pool);
  assert.equal((await fetchIt("whoami", keys.limitedTrpc.api_key)).status, 200);
  const res = await fetchIt("whoami", keys.limitedTrpc.api_key);
  const body = await res.json();
  assert.equal(res.status, 429);
  assert.equal(body.error.data.code, "TOO_MANY_REQUESTS");
  assert.ok(Number(res.headers.get("retry-after")) >= 1, `Retry-After ${res.headers.get("retry-after")}`);
  const meta = gatewayResponseMeta([new TRPCError({ code: "TOO_MANY_REQUESTS", cause: errorForReason("rate_limited", 5) })]);
  assert.deepEqual(meta, { headers: { "Retry-After": "5" } });
});

test("tRPC middleware: database errors inside a procedure map by SQLSTATE, 500 without the database's text", async () => {
  const { fetchIt } = trpcApp(pool);
  let res = await fetchIt("denied", keys.ok.api_key);
  const text = await res.text();
  assert.equal(res.status, 500);
  assert.ok(!text.includes("ts_missing_table_secret"), text);
  res = await fetchIt("revokeBadId", keys.ok.api_key);
  assert.equal(res.status, 400);
});

// ------------------------------------------------------------------------------------------
// Scopes and usage limits (pg_gateway 0.6.0).
// ------------------------------------------------------------------------------------------
// (Decided inside each test: the server is known only once before() has run.)

test("scopes: required_scope passes a key that has it, insufficient_scope (403/FORBIDDEN) otherwise", async (t) => {
  if (!newVerify) return t.skip("needs the 0.6.0 verify");
  if (!issueArgs.scopes) return t.skip("needs the 0.6.0 verify (api_key_issue takes no scopes here)");
  const k = await issue("scoped", "alice", P, `, ${issueArgs.scopes} => $4`, [["read"]]);
  assert.equal((await call(withApiKey(pool, echo, { requiredScope: "read" }), k.api_key)).status, 200);
  const res = await call(withApiKey(pool, echo, { requiredScope: "write" }), k.api_key);
  assert.equal(res.status, 403);
  assert.equal((await res.json()).error.code, "insufficient_scope");
  const { fetchIt } = trpcApp(pool, { requiredScope: "write" });
  const body = await (await fetchIt("whoami", k.api_key)).json();
  assert.equal(body.error.data.code, "FORBIDDEN");
  assert.equal((await call(withApiKey(pool, echo), k.api_key)).status, 200, "no scope asked: the route does not pass one");
});

test("usage limits: cost counts down usage_remaining, then usage_exceeded (429, no Retry-After)", async (t) => {
  if (!newVerify) return t.skip("needs the 0.6.0 verify");
  if (!issueArgs.usage) return t.skip("needs the 0.6.0 verify (api_key_issue takes no usage limit here)");
  const k = await issue("usage", "alice", P, `, ${issueArgs.usage} => $4`, [3]);
  const first = await (await call(withApiKey(pool, echo, { cost: 2 }), k.api_key)).json();
  assert.equal(first.usageRemaining, 1);
  const res = await call(withApiKey(pool, echo, { cost: 2 }), k.api_key);
  assert.equal(res.status, 429);
  assert.equal(res.headers.get("retry-after"), null);
  assert.equal((await res.json()).error.code, "usage_exceeded");
  const ok = await (await call(withApiKey(pool, echo), k.api_key)).json();
  assert.equal(ok.usageRemaining, 0, "the default cost (1) spends the last use");
});

// ------------------------------------------------------------------------------------------
// withSupabaseUser
// ------------------------------------------------------------------------------------------
const STATE = "SELECT current_user AS who, current_setting('request.jwt.claims', true) AS claims, gateway.current_user_id() AS uid";
const clean = (row) => row.who === APP && (row.claims ?? "") === "";

test("withSupabaseUser: runs as authenticated with the claims; RLS sees the user; nothing survives on the connection", async () => {
  const one = newPool({ max: 1 });
  const inside = await withSupabaseUser(one, { sub: users.alice, role: "authenticated" }, async (c) => {
    const state = (await c.query("SELECT current_user AS who, gateway.current_user_id() AS uid")).rows[0];
    const listed = (await c.query("SELECT user_id, project_id FROM gateway.api_keys_list")).rows;
    return { state, listed };
  });
  assert.deepEqual(inside.state, { who: "authenticated", uid: users.alice });
  assert.ok(inside.listed.length > 0 && inside.listed.every((r) => r.user_id === users.alice), "RLS: alice sees her own keys only");
  const afterwards = (await one.query("SELECT current_user AS who, current_setting('request.jwt.claims', true) AS claims")).rows[0];
  assert.ok(clean(afterwards), `the next user of the connection got ${JSON.stringify(afterwards)}`);
  assert.equal(one.totalCount, 1, "the same connection was reused");
});

test("withSupabaseUser: an error rolls back (also one fn swallowed), the connection comes back clean and usable", async () => {
  const one = newPool({ max: 1 });
  await assert.rejects(withSupabaseUser(one, { sub: users.alice, role: "authenticated" }, async (c) => {
    await c.query("SELECT * FROM gateway.api_key_issue($1, $2, 'ts-rolled-back')", [users.alice, P]);
    throw new Error("the handler failed");
  }), /the handler failed/);
  assert.equal((await su.query("SELECT count(*)::int AS n FROM gateway.api_keys WHERE name = 'ts-rolled-back'")).rows[0].n, 0, "rolled back");
  await assert.rejects(withSupabaseUser(one, { sub: users.alice }, (c) => c.query("SELECT 1/0")), (e) => e.code === "22012");
  // fn swallows a failed statement and returns: the COMMIT rolls back, and the caller hears of it.
  await assert.rejects(withSupabaseUser(one, { sub: users.alice, role: "authenticated" }, async (c) => {
    await c.query("SELECT * FROM gateway.api_key_issue($1, $2, 'ts-swallowed')", [users.alice, P]);
    await c.query("SELECT 1/0").catch(() => {});
    return "done";
  }), TransactionRolledBack);
  assert.equal((await su.query("SELECT count(*)::int AS n FROM gateway.api_keys WHERE name = 'ts-swallowed'")).rows[0].n, 0);
  assert.ok(clean((await one.query(STATE)).rows[0]));
  assert.equal(one.totalCount, 1, "a failed statement does not cost the connection");
});

test("withSupabaseUser: fn that leaves session state (SET ROLE, COMMIT + set_config) -> ConnectionStateLeak, connection closed", async () => {
  const one = newPool({ max: 1 });
  await assert.rejects(withSupabaseUser(one, { sub: users.alice }, (c) => c.query("SET SESSION ROLE authenticated")), ConnectionStateLeak);
  await assert.rejects(withSupabaseUser(one, { sub: users.alice }, async (c) => {
    await c.query("COMMIT");
    await c.query("SELECT set_config('request.jwt.claims', $1, false)", [JSON.stringify({ sub: users.alice })]);
  }), ConnectionStateLeak);
  const next = (await one.query(STATE)).rows[0];
  assert.ok(clean(next) && next.uid === null, `the next request got ${JSON.stringify(next)}`);
  await assert.rejects(withSupabaseUser(one, { sub: users.alice }, async () => 1, { role: "service_role" }), TypeError);
});

test("withSupabaseUser: fn that releases the connection itself does not hand alice's transaction to the next request", async () => {
  const one = newPool({ max: 1 });
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const alice = withSupabaseUser(one, { sub: users.alice, role: "authenticated" }, async (c) => {
    c.release(); // a handler that "cleans up" after itself
    await sleep(100);
    return "done";
  }).then(() => "resolved", (e) => e);
  await sleep(10); // the next request waits for the pool's one connection
  const next = (await one.query(STATE)).rows[0];
  const outcome = await alice;
  assert.ok(clean(next), `the next request ran as ${JSON.stringify(next)}`);
  assert.ok(outcome instanceof Error, "withSupabaseUser refuses an fn that released its connection");
  assert.ok(clean((await one.query(STATE)).rows[0]));
});

test("withSupabaseUser: fn that sets the legacy request.jwt.claim.sub for the session -> ConnectionStateLeak, connection closed", async () => {
  const one = newPool({ max: 1 });
  await assert.rejects(withSupabaseUser(one, { sub: users.alice }, (c) =>
    c.query("SELECT set_config('request.jwt.claim.sub', $1, false)", [users.alice])), ConnectionStateLeak);
  const next = (await one.query(STATE)).rows[0];
  assert.ok(clean(next) && next.uid === null, `the next request got ${JSON.stringify(next)}`);
});

test("withSupabaseUser: 40 interleaved users over a pool of 2 each see only themselves", async () => {
  const two = newPool({ max: 2 });
  const names = Object.keys(users);
  const results = await Promise.all(Array.from({ length: 40 }, async (_, i) => {
    const name = names[i % names.length];
    if (i % 4 === 3) return { name: null, row: (await two.query(STATE)).rows[0] }; // a plain query in between
    const row = await withSupabaseUser(two, { sub: users[name], role: "authenticated" }, async (c) => {
      await new Promise((r) => setTimeout(r, i % 3));
      return (await c.query(STATE)).rows[0];
    });
    return { name, row };
  }));
  for (const { name, row } of results) {
    if (name === null) assert.ok(clean(row), `a plain query saw ${JSON.stringify(row)}`);
    else assert.deepEqual([row.who, row.uid], ["authenticated", users[name]], name);
  }
  assert.ok(two.totalCount <= 2);
});

// ------------------------------------------------------------------------------------------
// Through pgbouncer, transaction pooling, fewer server connections than requests.
// ------------------------------------------------------------------------------------------
const bouncerSkip = BOUNCER ? false : "PGBOUNCER_PORT is not set";

test("pgbouncer (transaction mode, 2 server connections): 60 concurrent requests through the route helper, tRPC and withSupabaseUser", { skip: bouncerSkip }, async () => {
  const viaBouncer = newPool({ port: BOUNCER, max: 12 });
  const route = withApiKey(viaBouncer, async (_req, key) => withSupabaseUser(viaBouncer, { sub: key.userId, role: "authenticated" },
    async (c) => Response.json({ key, state: (await c.query(STATE)).rows[0] })));
  const { fetchIt } = trpcApp(viaBouncer);
  const cases = [
    [keys.ok.api_key, 200, users.alice], [keys.carol.api_key, 200, users.carol],
    [keys.revoked.api_key, 403], [keys.unknown.api_key, 401], [keys.expired.api_key, 401],
  ];
  const outcomes = await Promise.all(Array.from({ length: 60 }, async (_, i) => {
    const [key, status, user] = cases[i % cases.length];
    if (i % 2) {
      const res = await fetchIt("whoami", key);
      const body = await res.json();
      return { i, status, got: res.status, user, seen: body.result?.data?.userId, uid: body.result?.data?.userId };
    }
    const res = await call(route, key);
    const body = await res.json();
    return { i, status, got: res.status, user, seen: body.key?.userId, uid: body.state?.uid, who: body.state?.who };
  }));
  for (const o of outcomes) {
    assert.equal(o.got, o.status, `request ${o.i}`);
    if (o.user) assert.deepEqual([o.seen, o.uid], [o.user, o.user], `request ${o.i}`);
    if (o.who) assert.equal(o.who, "authenticated");
  }
  const after = await Promise.all(Array.from({ length: 12 }, () => viaBouncer.query(STATE)));
  for (const { rows: [row] } of after) assert.ok(clean(row), `a server connection kept ${JSON.stringify(row)}`);
  const rl = await call(withApiKey(viaBouncer, echo), keys.limitedBouncer.api_key);
  assert.equal(rl.status, 200);
  const limited = await call(withApiKey(viaBouncer, echo), keys.limitedBouncer.api_key);
  assert.equal(limited.status, 429);
  assert.ok(Number(limited.headers.get("retry-after")) >= 1);
});

test("pgbouncer: the pool really is transaction mode (a named prepared statement breaks, which is why the package sends none)", { skip: bouncerSkip }, async () => {
  const a = new pg.Client({ host: HOST, port: BOUNCER, user: APP, database: DB });
  const b = new pg.Client({ host: HOST, port: BOUNCER, user: APP, database: DB });
  a.allowNamed = true;
  await a.connect();
  await b.connect();
  try {
    await a.query({ name: "ts_named", text: "SELECT pg_backend_pid() AS pid" });
    await b.query("BEGIN");
    await b.query("SELECT pg_backend_pid()"); // b holds that server connection now
    await assert.rejects(a.query({ name: "ts_named", text: "SELECT pg_backend_pid() AS pid" }), (e) => e.code === "26000");
    await b.query("COMMIT");
  } finally {
    await a.end().catch(() => {});
    await b.end().catch(() => {});
  }
});

test("no named (server-side prepared) statement was sent by the package in this run", () => {
  assert.deepEqual(named, []);
});
