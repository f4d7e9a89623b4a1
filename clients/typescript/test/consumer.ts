// Compiled with `tsc -p test/tsconfig.json` (no output): the package's .d.ts as an app sees them.
// A type error here fails the build step of test/integration/ts_middleware.sh.
import { initTRPC } from "@trpc/server";
import { fetchRequestHandler } from "@trpc/server/adapters/fetch";
import { Pool } from "pg";
import { withApiKey, withSupabaseUser, type VerifiedKey } from "../dist/index.js";
import { apiKeyProcedure, gatewayResponseMeta } from "../dist/trpc.js";

const pool = new Pool();
type Context = { req: Request; resHeaders: Headers; tenant: string };
const t = initTRPC.context<Context>().create();

// tRPC: ctx.apiKey is typed, and the app's own context stays.
const keyed = t.procedure.concat(apiKeyProcedure<Context>(pool, { requiredScope: "workflows:run" }));
export const router = t.router({
  whoami: keyed.query(({ ctx }) => {
    const key: VerifiedKey = ctx.apiKey;
    const tenant: string = ctx.tenant;
    return { key, tenant };
  }),
  rows: keyed.query(({ ctx }) =>
    withSupabaseUser(pool, { sub: ctx.apiKey.userId, role: "authenticated" }, async (c) => (await c.query("SELECT 1 AS one")).rows)),
});
export const handler = (req: Request) =>
  fetchRequestHandler({
    endpoint: "/api/trpc", req, router,
    createContext: ({ req, resHeaders }) => ({ req, resHeaders, tenant: "t" }),
    responseMeta: ({ errors }) => gatewayResponseMeta(errors),
  });

// Next.js App Router: `export const POST = ...` with the route's context type.
export const POST = withApiKey<{ params: Promise<{ id: string }> }>(pool, async (_req, key, { params }) => {
  const { id } = await params;
  return Response.json({ id, project: key.projectId, left: key.usageRemaining });
}, { cost: 1 });
