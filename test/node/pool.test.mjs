// A real client over node-postgres: the key and credential paths driven the way a Supabase app
// drives them (PostgREST style: one `authenticator` login, a pool, and per request
// BEGIN; SET LOCAL ROLE ...; set_config('request.jwt.claims', ..., true); ...; COMMIT), with the
// users of two projects firing a few hundred interleaved requests at a pool of two connections.
// Every answer is checked to belong to its caller; denials must carry the expected SQLSTATE.
//
// Prints TAP: one line per row of EXPECTATIONS below (each row covers every request of that kind)
// plus a few whole-run checks. Run by test/integration/node_pool.sh (which runs `npm ci` first);
// by hand: PGPORT=... REPO=/path/to/repo node pool.test.mjs   (PGHOST defaults to 127.0.0.1).
import { execFileSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { isDeepStrictEqual } from "node:util";
import pg from "pg";

const HOST = process.env.PGHOST_TCP || "127.0.0.1";
const PORT = Number(process.env.PGPORT || 5432);
const DB = process.env.PGDATABASE_GATEWAY || "gateway";
const REPO = process.env.REPO || new URL("../..", import.meta.url).pathname;
const ROUNDS = Number(process.env.NODE_POOL_ROUNDS || 4);

// ------------------------------------------------------------------------------------------
// The target tenant rules, as a table: caller x action x own/other project -> outcome.
// "old" says what the rules of 0.2.0 do instead, where they differ (those rows fail until the
// tenant-rules change lands). Callers: alice = owner of P, bob = editor of P, carol = owner of Q,
// dave = member of nothing, plus erin = viewer of Q (a fifth caller, for the viewer rule);
// "no claims", "claims without sub" and "sub not a uuid" are the `authenticated` role without a
// usable identity; service_role is the trusted server role (BYPASSRLS).
// ------------------------------------------------------------------------------------------
const EXPECTATIONS = [
  // id                       caller                     action                                      expected
  ["claims.whoami",         "every user",              "current_user_id() with claims",             "the caller's sub"],
  ["issue.self.own",        "owner, editor",           "api_key_issue(self, own project)",          "ok: a key of the caller in that project"],
  ["issue.self.other",      "all but service_role",    "api_key_issue(self, other project)",        "42501", "old: ok (only sub = user_id is checked)"],
  ["issue.member.own",      "owner, editor",           "api_key_issue(another member, own project)", "42501"],
  ["issue.viewer",          "viewer",                  "api_key_issue(self, own project)",          "42501", "old: ok (only sub = user_id is checked)"],
  ["list.owner",            "owner",                   "api_keys_list",                             "own keys + every key of own project"],
  ["list.member",           "editor, viewer, outsider","api_keys_list",                             "own keys only"],
  ["revoke.own",            "owner, editor",           "api_key_revoke(own key)",                   "ok: true"],
  ["revoke.member.owner",   "owner",                   "api_key_revoke(editor's key, own project)", "ok: true", "old: 42501 (only the key's owner may revoke)"],
  ["revoke.member.editor",  "editor, viewer",          "api_key_revoke(owner's key, own project)",  "42501"],
  ["revoke.other",          "all but service_role",    "api_key_revoke(key of other project)",      "42501"],
  ["revoke.random",         "all but service_role",    "api_key_revoke(random uuid)",               "42501, same message as revoke.other", "old: P0002"],
  ["rotate.own",            "owner, editor",           "api_key_rotate(own key)",                   "ok: successor of the caller, same project"],
  ["rotate.member.owner",   "owner",                   "api_key_rotate(editor's key, own project)", "42501"],
  ["creds.own",             "owner, editor",           "connector_credentials(own project)",        "ok: the credentials of the caller's project"],
  ["creds.other",           "all but service_role",    "connector_credentials(other project)",      "42501, text never names the project id", "old: message names the project id"],
  ["creds.random",          "all but service_role",    "connector_credentials(random uuid)",        "42501, same message as creds.other", "old: P0002"],
  ["creds.viewer",          "viewer",                  "connector_credentials(own project)",        "42501, text never names the project id", "old: message names the project id"],
  ["noclaims.whoami",       "no claims",               "current_user_id() after pooled claims",     "NULL (no leak between requests)"],
  ["noclaims.list",         "no claims",               "api_keys_list",                             "no rows"],
  ["noclaims.issue",        "no claims",               "api_key_issue(alice, P)",                   "28000", "old: ok (a missing claim is trusted)"],
  ["noclaims.revoke",       "no claims",               "api_key_revoke(bob's key)",                 "28000", "old: ok, the key is revoked"],
  ["noclaims.creds",        "no claims",               "connector_credentials(P)",                  "28000", "old: ok, P's credentials returned"],
  ["nosub.whoami",          "claims without sub",      "current_user_id()",                         "NULL"],
  ["nosub.list",            "claims without sub",      "api_keys_list",                             "no rows"],
  ["nosub.issue",           "claims without sub",      "api_key_issue(alice, P)",                   "28000", "old: ok"],
  ["nosub.revoke",          "claims without sub",      "api_key_revoke(bob's key)",                 "28000", "old: ok, the key is revoked"],
  ["nosub.creds",           "claims without sub",      "connector_credentials(P)",                  "28000", "old: ok, P's credentials returned"],
  ["badsub.list",           "sub not a uuid",          "api_keys_list",                             "no rows or 28000, never 22P02", "old: 22P02"],
  ["badsub.issue",          "sub not a uuid",          "api_key_issue(alice, P)",                   "28000", "old: 22P02"],
  ["badsub.revoke",         "sub not a uuid",          "api_key_revoke(bob's key)",                 "28000", "old: 22P02"],
  ["badsub.creds",          "sub not a uuid",          "connector_credentials(P)",                  "28000", "old: 22P02"],
  ["svc.issue.member",      "service_role",            "api_key_issue(editor bob, P)",              "ok"],
  ["svc.issue.nonmember",   "service_role",            "api_key_issue(dave, P)",                    "42501", "old: ok (service_role is trusted for anyone)"],
  ["svc.verify",            "service_role",            "api_key_verify(each issued key)",           "ok, with the key's id, owner and project"],
  ["svc.creds",             "service_role",            "connector_credentials(P and Q)",            "ok: each project's own credentials"],
].map(([id, caller, action, expected, old]) => ({ id, caller, action, expected, old, requests: 0, failures: [] }));
const row = Object.fromEntries(EXPECTATIONS.map((r) => [r.id, r]));

// ------------------------------------------------------------------------------------------
// TAP
// ------------------------------------------------------------------------------------------
const tap = [];
function check(ok, description, diags = []) {
  tap.push({ ok, description, diags });
}
function flushTap() {
  console.log(`1..${tap.length}`);
  tap.forEach((t, i) => {
    console.log(`${t.ok ? "ok" : "not ok"} ${i + 1} - ${t.description}`);
    for (const d of t.diags.slice(0, 4)) console.log(String(d).split("\n").map((l) => `#   ${l}`).join("\n"));
    if (t.diags.length > 4) console.log(`#   ... and ${t.diags.length - 4} more`);
  });
}

// ------------------------------------------------------------------------------------------
// The documented grants: the docs' ```sql blocks that open with "-- grants for Supabase", read by
// the same script the pgTAP role suites use (scripts/doc-grants.sh), so the suite tests what
// the docs say.
// ------------------------------------------------------------------------------------------
function stripComments(sql) {
  let out = "", quote = null;
  for (let i = 0; i < sql.length; i++) {
    const c = sql[i];
    if (quote) { out += c; if (c === quote) quote = null; continue; }
    if (c === "'" || c === '"') { quote = c; out += c; continue; }
    if (c === "-" && sql[i + 1] === "-") { while (i < sql.length && sql[i] !== "\n") i++; out += "\n"; continue; }
    out += c;
  }
  return out;
}

function documentedGrants() {
  const text = execFileSync("bash", [join(REPO, "scripts/doc-grants.sh")], { encoding: "utf8" });
  const statements = stripComments(text).split(";").map((x) => x.trim().replace(/\s+/g, " ")).filter(Boolean);
  const others = statements.filter((x) => !/^(GRANT|REVOKE|ALTER DEFAULT PRIVILEGES)\s/i.test(x));
  if (others.length) throw new Error(`not a grant in a grants block: ${others[0].slice(0, 80)}`);
  const missing = statements.length ? [] : ['docs/security.md: no ```sql block opening with "-- grants for Supabase"'];
  return { statements, sources: ["scripts/doc-grants.sh"], missing };
}

// ------------------------------------------------------------------------------------------
// Set-up as the superuser: Supabase's roles, the documented grants, two projects, connectors.
// ------------------------------------------------------------------------------------------
const P = randomUUID(), Q = randomUUID();
const users = { alice: randomUUID(), bob: randomUUID(), carol: randomUUID(), dave: randomUUID(), erin: randomUUID() };
const nameOf = Object.fromEntries(Object.entries(users).map(([n, id]) => [id, n]));
const members = [[P, "alice", "owner"], [P, "bob", "editor"], [Q, "carol", "owner"], [Q, "erin", "viewer"]];
const ownProject = { alice: P, bob: P, carol: Q };
const otherProject = { alice: Q, bob: Q, carol: P, dave: P, erin: P };
const adminProjects = { alice: [P], bob: [], carol: [Q], dave: [], erin: [] };
const connectors = {}; // project -> connector id
const credsFor = (project) => ({ project, token: `token-of-${project}`, note: "node-pool" });

const su = new pg.Client({ host: HOST, port: PORT, user: "postgres", database: DB });
let createdRoles = [];

async function setup() {
  const before = (await su.query(
    "SELECT rolname FROM pg_roles WHERE rolname IN ('anon','authenticated','service_role','authenticator')")).rows.map((r) => r.rolname);
  // The roles exactly as the pgTAP suites create them (Supabase's), then Supabase's login role.
  await su.query(readFileSync(join(REPO, "test/pgtap/include/supabase_roles.psql"), "utf8"));
  if (!before.includes("authenticator")) await su.query("CREATE ROLE authenticator NOINHERIT LOGIN");
  await su.query("GRANT anon, authenticated, service_role TO authenticator");
  createdRoles = ["authenticator", "anon", "authenticated", "service_role"].filter((r) => !before.includes(r));

  const { statements, sources, missing } = documentedGrants();
  const failed = [...missing];
  for (const s of statements) {
    try { await su.query(s); } catch (e) { failed.push(`${e.code} ${e.message}: ${s.slice(0, 100)}`); }
  }
  check(statements.length > 0 && failed.length === 0,
    `the documented grants apply (${statements.length} statements from ${sources.join(", ") || "no doc"})`, failed);

  for (const [project, user, role] of members) {
    await su.query("INSERT INTO gateway.project_members (project_id, user_id, role) VALUES ($1, $2, $3)",
      [project, users[user], role]);
  }
  for (const project of [P, Q]) {
    const { rows } = await su.query(
      "INSERT INTO gateway.connectors (project_id, name, connector_type) VALUES ($1, 'node-pool', 'http') RETURNING id", [project]);
    connectors[project] = rows[0].id;
    await su.query("SELECT gateway.connector_set_credentials($1, $2)", [connectors[project], credsFor(project)]);
  }
}

async function cleanup() {
  try {
    await su.query("DELETE FROM gateway.api_keys WHERE project_id = ANY($1)", [[P, Q]]);
    await su.query("DELETE FROM gateway.connectors WHERE project_id = ANY($1)", [[P, Q]]);
    await su.query("DELETE FROM gateway.project_members WHERE project_id = ANY($1)", [[P, Q]]);
    // Roles this run created go again, with their grants, so later suites see the cluster as it was.
    for (const r of createdRoles) await su.query(`DROP OWNED BY ${r}`);
    for (const r of createdRoles) await su.query(`DROP ROLE ${r}`);
  } catch (e) {
    console.log(`# cleanup: ${e.code} ${e.message}`);
  }
}

// ------------------------------------------------------------------------------------------
// The client: one pool of two connections for the `authenticator` login, PostgREST style.
// ------------------------------------------------------------------------------------------
const pool = new pg.Pool({ host: HOST, port: PORT, user: "authenticator", database: DB, max: 2 });
const leaks = [];
let unclaimedAfterClaims = 0; // requests without claims that ran right after one with claims
let requestsRun = 0;

// role: 'authenticated' | 'service_role'; claims: an object, or undefined for none.
// onStart runs once the request holds a connection, before it begins.
async function request(role, claims, sql, params = [], onStart = () => {}) {
  const client = await pool.connect();
  requestsRun++;
  onStart();
  // Whether the previous request on this very connection carried claims (for the leak check).
  const afterClaims = client.lastHadClaims === true;
  client.lastHadClaims = claims !== undefined;
  let broken = false;
  try {
    await client.query("BEGIN");
    // Whatever the previous request on this connection did must be gone.
    const pre = (await client.query(
      "SELECT current_user AS who, current_setting('request.jwt.claims', true) AS claims, " +
      "current_setting('request.jwt.claim.sub', true) AS sub")).rows[0];
    if (pre.who !== "authenticator" || (pre.claims ?? "") !== "" || (pre.sub ?? "") !== "") {
      leaks.push(`a request started as ${pre.who} with claims ${JSON.stringify(pre.claims)} sub ${JSON.stringify(pre.sub)}`);
    }
    await client.query(`SET LOCAL ROLE ${role}`);
    if (claims !== undefined) {
      await client.query("SELECT set_config('request.jwt.claims', $1, true)", [JSON.stringify(claims)]);
    }
    const { rows } = await client.query(sql, params);
    await client.query("COMMIT");
    return { rows, afterClaims };
  } catch (e) {
    try { await client.query("ROLLBACK"); } catch { broken = true; }
    return { error: { code: e.code, message: e.message, detail: e.detail, hint: e.hint }, afterClaims };
  } finally {
    client.release(broken);
  }
}
const asUser = (name, sql, params, onStart) =>
  request("authenticated", { sub: users[name], role: "authenticated" }, sql, params, onStart);

const SQL = {
  whoami: "SELECT gateway.current_user_id() AS uid",
  issue: "SELECT key_id, api_key FROM gateway.api_key_issue($1, $2, $3)",
  list: "SELECT id, user_id, project_id, status FROM gateway.api_keys_list",
  revoke: "SELECT gateway.api_key_revoke($1) AS revoked",
  rotate: "SELECT new_key_id, api_key FROM gateway.api_key_rotate($1)",
  creds: "SELECT gateway.connector_credentials($1) AS credentials",
  verify: "SELECT valid, reason, key_id, user_id, project_id FROM gateway.api_key_verify($1)",
};

// What this client knows about keys: id -> { user, project, key, revoked }
const keys = new Map();
let nameSeq = 0;
const keyName = (tag) => `node-${tag}-${++nameSeq}`;

// ------------------------------------------------------------------------------------------
// Outcome checks. Each returns null when the answer is right, else what was wrong.
// ------------------------------------------------------------------------------------------
const show = (r) => (r.error ? `${r.error.code} ${r.error.message}` : `ok ${JSON.stringify(r.rows).slice(0, 160)}`);
const uuidRe = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/gi;
const normalized = (e) => e.message.replace(uuidRe, "<uuid>");

function expectOk(r, validate = () => null) {
  return r.error ? `expected success, got ${show(r)}` : validate(r.rows);
}
function expectError(r, code) {
  if (!r.error) return `expected ${code}, got ${show(r)}`;
  return r.error.code === code ? null : `expected ${code}, got ${show(r)}`;
}
function fail(id, who, problem) {
  if (problem) row[id].failures.push(`${who}: ${problem}`);
}

// Records an issued key and verifies it through service_role at once (another pooled request).
async function issued(r, user, project, source) {
  if (r.error || !r.rows[0]) return;
  const { key_id, api_key } = r.rows[0];
  keys.set(key_id, { user, project, key: api_key, revoked: false, source });
  row["svc.verify"].requests++;
  const v = await request("service_role", undefined, SQL.verify, [api_key]);
  fail("svc.verify", `key of ${nameOf[user] ?? user} from ${source}`, expectOk(v, ([x]) =>
    x.valid && x.reason === "ok" && x.key_id === key_id && x.user_id === user && x.project_id === project
      ? null : `verify said ${JSON.stringify(x)}`));
}

function validKey(user, project) {
  return ([x]) => (x && x.key_id && /^gw_[0-9A-Za-z_]{62}$/.test(x.api_key) ? null : `bad issue answer ${JSON.stringify(x)}`);
}

// Keys visible to a caller under the target rules: their own, plus every key of projects where
// they are admin or owner.
const visibleTo = (name) => (k) => k.user === users[name] || adminProjects[name].includes(k.project);

// ------------------------------------------------------------------------------------------
// The requests
// ------------------------------------------------------------------------------------------
const denials = { revokeOther: {}, revokeRandom: {}, credsOther: {}, credsRandom: {} }; // caller -> [error]

async function setupKey(name, tag) {
  const project = ownProject[name];
  const r = await request("service_role", undefined, SQL.issue, [users[name], project, keyName(tag)]);
  if (r.error) throw new Error(`setup key for ${name}: ${show(r)}`);
  const { key_id, api_key } = r.rows[0];
  keys.set(key_id, { user: users[name], project, key: api_key, revoked: false, source: `setup ${tag}` });
  return key_id;
}

function buildRequests(reserved) {
  const reqs = [];
  const add = (id, fn) => { row[id].requests++; reqs.push(fn); };
  for (let round = 0; round < ROUNDS; round++) {
    for (const name of Object.keys(users)) {
      const me = users[name], other = otherProject[name];
      add("claims.whoami", async () => {
        const r = await asUser(name, SQL.whoami);
        fail("claims.whoami", name, expectOk(r, ([x]) => (x.uid === me ? null : `got ${x.uid}`)));
      });
      add("issue.self.other", async () => {
        const r = await asUser(name, SQL.issue, [me, other, keyName("attack")]);
        fail("issue.self.other", name, expectError(r, "42501"));
        await issued(r, me, other, `${name} issue.self.other`);
      });
      add(adminProjects[name].length ? "list.owner" : "list.member", async () => {
        const id = adminProjects[name].length ? "list.owner" : "list.member";
        // Every key of theirs whose issue had committed when the request began must be listed.
        let mustSee = [];
        const r = await asUser(name, SQL.list, [], () => {
          mustSee = [...keys].filter(([, k]) => k.user === me).map(([kid]) => kid);
        });
        fail(id, name, expectOk(r, (rows) => {
          const bad = rows.filter((x) => !visibleTo(name)({ user: x.user_id, project: x.project_id }));
          if (bad.length) return `sees ${bad.length} keys not theirs, e.g. ${JSON.stringify(bad[0])}`;
          const ids = new Set(rows.map((x) => x.id));
          const missing = mustSee.filter((kid) => !ids.has(kid));
          return missing.length ? `misses ${missing.length} of their own keys` : null;
        }));
      });
      add("revoke.random", async () => {
        const r = await asUser(name, SQL.revoke, [randomUUID()]);
        fail("revoke.random", name, expectError(r, "42501"));
        if (r.error) (denials.revokeRandom[name] ??= []).push(r.error);
      });
      add("creds.other", async () => {
        const r = await asUser(name, SQL.creds, [connectors[other]]);
        fail("creds.other", name, expectError(r, "42501"));
        if (!r.error) return;
        (denials.credsOther[name] ??= []).push(r.error);
        const text = [r.error.message, r.error.detail, r.error.hint].join(" ");
        if (text.includes(other)) fail("creds.other", name, `the error names the project: ${r.error.message}`);
      });
      add("creds.random", async () => {
        const r = await asUser(name, SQL.creds, [randomUUID()]);
        fail("creds.random", name, expectError(r, "42501"));
        if (r.error) (denials.credsRandom[name] ??= []).push(r.error);
      });
      // A key of another project: alice/bob attack carol's, the others attack alice's.
      const victim = name === "alice" || name === "bob" ? "carol" : "alice";
      add("revoke.other", async () => {
        const kid = reserved.protect[victim];
        const r = await asUser(name, SQL.revoke, [kid]);
        fail("revoke.other", `${name} on ${victim}'s key`, expectError(r, "42501"));
        if (r.error) (denials.revokeOther[name] ??= []).push(r.error);
        else if (r.rows[0]?.revoked) keys.get(kid).revoked = true;
      });
      if (name === "dave") {
        add("issue.self.other", async () => { // and the other project too
          const r = await asUser(name, SQL.issue, [me, Q, keyName("attack")]);
          fail("issue.self.other", `${name} in Q`, expectError(r, "42501"));
          await issued(r, me, Q, "dave issue.self.other Q");
        });
        continue;
      }
      if (name === "erin") { // viewer of Q
        add("issue.viewer", async () => {
          const r = await asUser(name, SQL.issue, [me, Q, keyName("viewer")]);
          fail("issue.viewer", name, expectError(r, "42501"));
          await issued(r, me, Q, "erin issue.viewer");
        });
        add("creds.viewer", async () => {
          const r = await asUser(name, SQL.creds, [connectors[Q]]);
          fail("creds.viewer", name, expectError(r, "42501"));
          if (r.error) (denials.credsOther[name] ??= []).push(r.error);
          if (r.error && [r.error.message, r.error.detail, r.error.hint].join(" ").includes(Q)) {
            fail("creds.viewer", name, `the error names the project: ${r.error.message}`);
          }
        });
        add("revoke.member.editor", async () => {
          const kid = reserved.protect.carol;
          const r = await asUser(name, SQL.revoke, [kid]);
          fail("revoke.member.editor", "erin on carol's key", expectError(r, "42501"));
          if (r.error) (denials.revokeOther[name] ??= []).push(r.error);
          if (!r.error && r.rows[0].revoked) keys.get(kid).revoked = true;
        });
        continue;
      }
      const own = ownProject[name];
      add("issue.self.own", async () => {
        const r = await asUser(name, SQL.issue, [me, own, keyName("own")]);
        fail("issue.self.own", name, expectOk(r, validKey()));
        await issued(r, me, own, `${name} issue.self.own`);
      });
      add("revoke.own", async () => {
        const kid = reserved.revokeOwn[name].pop();
        const r = await asUser(name, SQL.revoke, [kid]);
        fail("revoke.own", name, expectOk(r, ([x]) => (x.revoked === true ? null : `returned ${x.revoked}`)));
        if (!r.error && r.rows[0].revoked) keys.get(kid).revoked = true;
      });
      add("rotate.own", async () => {
        const kid = reserved.rotateOwn[name].pop();
        const r = await asUser(name, SQL.rotate, [kid]);
        fail("rotate.own", name, expectOk(r, ([x]) => (x.new_key_id && x.api_key ? null : `bad answer ${JSON.stringify(x)}`)));
        if (!r.error) await issued({ rows: [{ key_id: r.rows[0].new_key_id, api_key: r.rows[0].api_key }] }, me, own, `${name} rotate.own`);
      });
      add("creds.own", async () => {
        const r = await asUser(name, SQL.creds, [connectors[own]]);
        fail("creds.own", name, expectOk(r, ([x]) =>
          isDeepStrictEqual(x.credentials, credsFor(own)) ? null : `got ${JSON.stringify(x.credentials)}`));
      });
      if (name === "alice" || name === "bob") {
        const peer = name === "alice" ? "bob" : "alice";
        add("issue.member.own", async () => {
          const r = await asUser(name, SQL.issue, [users[peer], P, keyName("for-peer")]);
          fail("issue.member.own", `${name} for ${peer}`, expectError(r, "42501"));
          await issued(r, users[peer], P, `${name} issue.member.own`);
        });
      }
      if (name === "alice") {
        add("revoke.member.owner", async () => {
          const kid = reserved.adminVictim.pop();
          const r = await asUser(name, SQL.revoke, [kid]);
          fail("revoke.member.owner", "alice on bob's key", expectOk(r, ([x]) => (x.revoked === true ? null : `returned ${x.revoked}`)));
          if (!r.error && r.rows[0].revoked) keys.get(kid).revoked = true;
        });
        add("rotate.member.owner", async () => {
          const r = await asUser(name, SQL.rotate, [reserved.protect.bob]);
          fail("rotate.member.owner", "alice on bob's key", expectError(r, "42501"));
          if (!r.error) await issued({ rows: [{ key_id: r.rows[0].new_key_id, api_key: r.rows[0].api_key }] }, users.bob, P, "alice rotate.member.owner");
        });
      }
      if (name === "bob") {
        add("revoke.member.editor", async () => {
          const kid = reserved.protect.alice;
          const r = await asUser(name, SQL.revoke, [kid]);
          fail("revoke.member.editor", "bob on alice's key", expectError(r, "42501"));
          if (r.error) (denials.revokeOther[name] ??= []).push(r.error);
          if (!r.error && r.rows[0].revoked) keys.get(kid).revoked = true;
        });
      }
    }

    // `authenticated` without a usable identity, right among the requests that carry one.
    const anonymous = { noclaims: undefined, nosub: { role: "authenticated" }, badsub: { sub: "not-a-uuid", role: "authenticated" } };
    for (const [tag, claims] of Object.entries(anonymous)) {
      const call = async (sql, params) => {
        const r = await request("authenticated", claims, sql, params);
        if (claims === undefined && r.afterClaims) unclaimedAfterClaims++;
        return r;
      };
      if (tag !== "badsub") {
        add(`${tag}.whoami`, async () => {
          const r = await call(SQL.whoami);
          fail(`${tag}.whoami`, tag, expectOk(r, ([x]) => (x.uid === null ? null : `identity ${x.uid} (${nameOf[x.uid] ?? "?"})`)));
        });
      }
      add(`${tag}.list`, async () => {
        const r = await call(SQL.list);
        if (tag === "badsub" && r.error?.code === "28000") return;
        fail(`${tag}.list`, tag, expectOk(r, (rows) => (rows.length === 0 ? null : `${rows.length} rows`)));
      });
      add(`${tag}.issue`, async () => {
        const r = await call(SQL.issue, [users.alice, P, keyName(tag)]);
        fail(`${tag}.issue`, tag, expectError(r, "28000"));
        await issued(r, users.alice, P, `${tag}.issue`);
      });
      add(`${tag}.revoke`, async () => {
        const kid = reserved.anonVictim;
        const r = await call(SQL.revoke, [kid]);
        fail(`${tag}.revoke`, tag, expectError(r, "28000"));
        if (!r.error && r.rows[0].revoked) keys.get(kid).revoked = true;
      });
      add(`${tag}.creds`, async () => {
        const r = await call(SQL.creds, [connectors[P]]);
        fail(`${tag}.creds`, tag, expectError(r, "28000"));
      });
    }

    // The trusted server role.
    add("svc.issue.member", async () => {
      const r = await request("service_role", undefined, SQL.issue, [users.bob, P, keyName("svc")]);
      fail("svc.issue.member", "for bob in P", expectOk(r, validKey()));
      await issued(r, users.bob, P, "svc.issue.member");
    });
    add("svc.issue.nonmember", async () => {
      const r = await request("service_role", undefined, SQL.issue, [users.dave, P, keyName("svc")]);
      fail("svc.issue.nonmember", "for dave in P", expectError(r, "42501"));
      await issued(r, users.dave, P, "svc.issue.nonmember");
    });
    for (const project of [P, Q]) {
      add("svc.creds", async () => {
        const r = await request("service_role", undefined, SQL.creds, [connectors[project]]);
        fail("svc.creds", project === P ? "P" : "Q", expectOk(r, ([x]) =>
          isDeepStrictEqual(x.credentials, credsFor(project)) ? null : `got ${JSON.stringify(x.credentials)}`));
      });
    }
  }
  return reqs;
}

function shuffle(a) {
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [a[i], a[j]] = [a[j], a[i]];
  }
  return a;
}

// ------------------------------------------------------------------------------------------
async function main() {
  const started = Date.now();
  await su.connect();
  try {
    await setup();
  } catch (e) {
    check(false, "set-up as superuser (roles, grants, memberships, connectors)", [`${e.code ?? ""} ${e.message}`]);
    return;
  }

  // Keys the requests below act on, issued by the trusted server role.
  let reserved;
  try {
    reserved = { revokeOwn: {}, rotateOwn: {}, protect: {}, adminVictim: [] };
    for (const name of ["alice", "bob", "carol"]) {
      reserved.revokeOwn[name] = [], reserved.rotateOwn[name] = [];
      for (let i = 0; i < ROUNDS; i++) {
        reserved.revokeOwn[name].push(await setupKey(name, "revoke-own"));
        reserved.rotateOwn[name].push(await setupKey(name, "rotate-own"));
      }
      reserved.protect[name] = await setupKey(name, "protected");
    }
    for (let i = 0; i < ROUNDS; i++) reserved.adminVictim.push(await setupKey("bob", "admin-victim"));
    reserved.anonVictim = await setupKey("bob", "anon-victim");
    check(true, `service_role issues the set-up keys for members (${keys.size} keys)`);
  } catch (e) {
    check(false, "service_role issues the set-up keys for members", [e.message]);
    return;
  }
  const protectedKeys = [...Object.values(reserved.protect), reserved.anonVictim];

  // The storm: every request at once over a pool of two connections, in random order.
  const reqs = shuffle(buildRequests(reserved));
  const stormStart = Date.now();
  await Promise.all(reqs.map((fn) => fn().catch((e) => leaks.push(`request crashed: ${e.stack}`))));
  const stormMs = Date.now() - stormStart;

  for (const r of EXPECTATIONS) {
    let extra = [];
    // Same answer for "exists, not yours" and "does not exist".
    const pairs = { "revoke.random": ["revokeOther", "revokeRandom"], "creds.random": ["credsOther", "credsRandom"] };
    if (pairs[r.id]) {
      const [a, b] = pairs[r.id];
      for (const name of Object.keys(users)) {
        const messages = new Set([...(denials[a][name] ?? []), ...(denials[b][name] ?? [])].map(normalized));
        if (messages.size > 1) extra.push(`${name} got different denials: ${[...messages].map((m) => `"${m}"`).join(" vs ")}`);
      }
    }
    const failures = [...r.failures, ...extra];
    const label = `${r.id}: ${r.caller} | ${r.action} -> ${r.expected} (${r.requests} requests)`;
    check(failures.length === 0 && r.requests > 0, label, failures.length && r.old ? [`(${r.old})`, ...failures] : failures);
  }

  check(leaks.length === 0 && unclaimedAfterClaims > 0,
    `no pooled request started with a previous request's role or claims (${requestsRun} requests, storm ${stormMs} ms; ` +
    `${unclaimedAfterClaims} requests without claims ran right after a request with claims on their connection)`, leaks);

  // After the storm, in order: each user's list is exactly what the rules let them see.
  const listProblems = [];
  for (const name of Object.keys(users)) {
    const r = await asUser(name, SQL.list);
    if (r.error) { listProblems.push(`${name}: ${show(r)}`); continue; }
    const got = new Set(r.rows.map((x) => x.id));
    const want = new Set([...keys].filter(([, k]) => visibleTo(name)(k)).map(([kid]) => kid));
    const extraIds = [...got].filter((x) => !want.has(x)), missing = [...want].filter((x) => !got.has(x));
    if (extraIds.length || missing.length) listProblems.push(`${name}: ${extraIds.length} unexpected, ${missing.length} missing`);
    for (const x of r.rows) {
      const k = keys.get(x.id);
      if (k && (k.user !== x.user_id || k.project !== x.project_id)) listProblems.push(`${name}: key ${x.id} listed with another owner/project`);
    }
  }
  check(listProblems.length === 0, "after the storm, api_keys_list is exactly each user's own keys plus, for owners, their project's keys", listProblems);

  // Every key this run issued verifies through service_role with its owner and project.
  const verifyProblems = [];
  for (const [kid, k] of keys) {
    const r = await request("service_role", undefined, SQL.verify, [k.key]);
    if (r.error) { verifyProblems.push(`${k.source}: ${show(r)}`); continue; }
    const x = r.rows[0], want = k.revoked ? "revoked" : "ok";
    if (x.reason !== want || x.key_id !== kid || x.user_id !== k.user || x.project_id !== k.project) {
      verifyProblems.push(`${k.source}: expected ${want} for ${nameOf[k.user] ?? k.user}, got ${JSON.stringify(x)}`);
    }
  }
  check(verifyProblems.length === 0, `service_role: api_key_verify of all ${keys.size} keys gives their id, owner, project (revoked ones: revoked)`, verifyProblems);

  const victims = [];
  for (const kid of protectedKeys) {
    const r = await request("service_role", undefined, SQL.verify, [keys.get(kid).key]);
    if (r.error || r.rows[0].reason !== "ok") victims.push(`${keys.get(kid).source} of ${nameOf[keys.get(kid).user]}: ${show(r)}`);
  }
  check(victims.length === 0, "the keys the attacks aimed at still verify ok", victims);

  const total = (Date.now() - started) / 1000;
  check(total < 30, `the whole run took ${total.toFixed(1)} s (< 30 s)`);
}

try {
  await main();
} catch (e) {
  check(false, "the suite ran to its end", [e.stack]);
} finally {
  await pool.end().catch(() => {});
  await cleanup();
  await su.end().catch(() => {});
  flushTap();
}
process.exitCode = tap.every((t) => t.ok) ? 0 : 1;
