// bench/middleware: what the TypeScript middleware costs over a bare api_key_verify call from
// node-postgres, in one process, over one pool, in interleaved rounds. Run by bench/middleware.sh
// from the staged clients/typescript (its node_modules and dist/). Prints "name tps p50_ms" lines.
import pg from "pg";
import { initTRPC } from "@trpc/server";
import { checkApiKey, withApiKey } from "./dist/index.js";
import { apiKeyProcedure } from "./dist/trpc.js";

const PORT = Number(process.env.PGPORT);
const SECONDS = Number(process.env.BENCH_SECONDS || 3);
const ROUNDS = Number(process.env.BENCH_ROUNDS || 3);
const INFLIGHT = Number(process.env.BENCH_INFLIGHT || 8);
const pool = new pg.Pool({ host: "127.0.0.1", port: PORT, user: "postgres", database: "gateway", max: Number(process.env.BENCH_POOL || 4) });
const keys = (await pool.query("SELECT api_key FROM bench_keys")).rows.map((r) => r.api_key);
// One Request per key, built once: the app server has the request already; both sides read it.
const requests = keys.map((k) => new Request("http://app.test/api/run", { headers: { "X-API-Key": k } }));
const pick = () => requests[(Math.random() * requests.length) | 0];

// The baseline: what an app writes by hand - read the header, one parameterised query, check it.
const BARE = "SELECT valid, reason, key_id, user_id, project_id, rate_limit_remaining, retry_after_seconds FROM gateway.api_key_verify($1, $2)";
async function bare(req) {
  const { rows } = await pool.query(BARE, [req.headers.get("x-api-key"), null]);
  if (!rows[0].valid) throw new Error(rows[0].reason);
  return new Response(null, { status: 204 });
}
const route = withApiKey(pool, async () => new Response(null, { status: 204 }));
async function core(req) {
  await checkApiKey(pool, req.headers.get("x-api-key"));
  return new Response(null, { status: 204 });
}
// tRPC: the same procedure with the hand-written check, and with the package's middleware.
const t = initTRPC.context().create();
const router = t.router({
  bare: t.procedure.query(async ({ ctx }) => { await bare(ctx.req); return 1; }),
  // A hand-written tRPC middleware doing the bare check: the tRPC machinery of a middleware alone.
  handMw: t.procedure.use(async ({ ctx, next }) => {
    const { rows } = await pool.query(BARE, [ctx.req.headers.get("x-api-key"), null]);
    if (!rows[0].valid) throw new Error(rows[0].reason);
    return next({ ctx: { apiKey: rows[0] } });
  }).query(() => 1),
  keyed: t.procedure.concat(apiKeyProcedure(pool)).query(() => 1),
});
const caller = t.createCallerFactory(router);
const trpcBare = (req) => caller({ req }).bare();
const trpcHandMw = (req) => caller({ req }).handMw();
const trpcKeyed = (req) => caller({ req }).keyed();

const variants = { bare, core, route, trpcBare, trpcHandMw, trpcKeyed };
for (const fn of Object.values(variants)) for (let i = 0; i < 200; i++) await fn(pick()); // warm up, and check they pass

async function run(fn, seconds = SECONDS) {
  const lat = [];
  let n = 0;
  const end = performance.now() + seconds * 1000;
  await Promise.all(Array.from({ length: INFLIGHT }, async () => {
    while (performance.now() < end) {
      const t0 = performance.now();
      const res = await fn(pick());
      if (res instanceof Response && res.status !== 204) throw new Error(`status ${res.status}`);
      lat.push(performance.now() - t0);
      n++;
    }
  }));
  lat.sort((a, b) => a - b);
  return { tps: n / seconds, p50: lat[lat.length >> 1] };
}
const names = Object.keys(variants);
for (const name of names) await run(variants[name], 1); // a discarded second each: JIT, pool, buckets
const results = Object.fromEntries(names.map((k) => [k, []]));
// Interleaved rounds, each starting with another variant, so drift in the machine's load spreads evenly.
for (let r = 0; r < ROUNDS; r++) {
  for (let i = 0; i < names.length; i++) {
    const name = names[(r + i) % names.length];
    results[name].push(await run(variants[name]));
  }
}
const med = (xs) => xs.slice().sort((a, b) => a - b)[xs.length >> 1];
for (const [name, rs] of Object.entries(results)) {
  console.log(`${name} ${med(rs.map((x) => x.tps)).toFixed(0)} ${med(rs.map((x) => x.p50)).toFixed(3)}`);
}
await pool.end();
