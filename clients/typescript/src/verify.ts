// The one call to gateway.api_key_verify, and what its answer means for a request.
import { GatewayError, errorForDatabase, errorForReason, type RefusalOptions } from "./errors.js";

/** Anything with node-postgres's `query(text, values)`: a Pool, a PoolClient, a Client. */
export interface Queryable {
  query(text: string, values?: unknown[]): Promise<{ rows: any[] }>;
}

/** What a route asks of a key. */
export interface VerifyOptions {
  /** The public interface the request is for (a uuid); unbound keys pass on any interface of their project. */
  publicInterfaceId?: string | null;
  /** A scope the key must carry (pg_gateway 0.6.0 or later). */
  requiredScope?: string;
  /** Uses this request costs a usage-limited key (pg_gateway 0.6.0 or later; the server's default is 1). */
  cost?: number;
}

/** The row `gateway.api_key_verify` returns (usage_remaining only from 0.6.0 on). */
export interface VerifyRow {
  valid: boolean;
  reason: string;
  key_id: string | null;
  user_id: string | null;
  project_id: string | null;
  rate_limit_remaining: number | null;
  retry_after_seconds: number | null;
  usage_remaining?: string | number | null;
}

/** A key that passed: whose it is, and what it has left. */
export interface VerifiedKey {
  keyId: string;
  userId: string;
  projectId: string;
  /** Requests left in the rate-limit bucket; null for keys without a rate limit. */
  rateLimitRemaining: number | null;
  /** Uses left for a usage-limited key; null for keys without a usage limit (or a server before 0.6.0). */
  usageRemaining: number | null;
}

// Named arguments, so the call means the same against the 2-argument function of 0.5.0 and the
// 4-argument one of 0.6.0, and `SELECT *`, so it reads usage_remaining when the server has it.
// Unnamed statements only (no `name:`): they work through pgbouncer in transaction mode.
const SQL_TEXT: string[] = [];
for (let i = 0; i < 4; i++) {
  const args = ["api_key => $1", "public_interface_id => $2::uuid"];
  if (i & 1) args.push(`required_scope => $${args.length + 1}::text`);
  if (i & 2) args.push(`cost => $${args.length + 1}::integer`);
  SQL_TEXT.push(`SELECT * FROM gateway.api_key_verify(${args.join(", ")})`);
}

/** Calls `gateway.api_key_verify` with the arguments the route asks for; returns its row as is. */
export async function callVerify(db: Queryable, apiKey: string | null, options: VerifyOptions = {}): Promise<VerifyRow> {
  const values: unknown[] = [apiKey, options.publicInterfaceId ?? null];
  let variant = 0;
  if (options.requiredScope !== undefined) {
    variant |= 1;
    values.push(options.requiredScope);
  }
  if (options.cost !== undefined) {
    if (!Number.isInteger(options.cost) || options.cost < 0) {
      throw new TypeError(`cost must be a whole number of uses, not ${options.cost}`);
    }
    variant |= 2;
    values.push(options.cost);
  }
  const { rows } = await db.query(SQL_TEXT[variant]!, values);
  const row = rows[0] as VerifyRow | undefined;
  if (!row) throw new Error("gateway.api_key_verify returned no row");
  return row;
}

export interface CheckOptions extends VerifyOptions, RefusalOptions {}

/**
 * A route's fixed options with what its resolve returned on top. A field resolve leaves undefined
 * keeps the fixed value: `publicInterfaceId: lookup(req)` missing a path must not unbind the route
 * (null still means "any interface", on purpose).
 */
export function resolvedCheck(fixed: CheckOptions, resolved: CheckOptions | null | undefined): CheckOptions {
  const out: Record<string, unknown> = { ...fixed };
  for (const [name, value] of Object.entries(resolved ?? {})) {
    if (value !== undefined) out[name] = value;
  }
  return out as CheckOptions;
}

/** The value of an X-API-Key header: null when absent or empty. */
export function apiKeyFrom(header: string | string[] | null | undefined): string | null {
  const value = Array.isArray(header) ? header[0] : header;
  if (value == null) return null;
  const trimmed = value.trim();
  return trimmed === "" ? null : trimmed;
}

/**
 * Verifies a key for a request: the key's identity, or a GatewayError that says how to refuse
 * (every reason and every database error mapped; see errors.ts).
 */
export async function checkApiKey(db: Queryable, apiKey: string | null | undefined, options: CheckOptions = {}): Promise<VerifiedKey> {
  if (apiKey == null || apiKey === "") throw errorForReason("missing", null, options);
  let row: VerifyRow;
  try {
    row = await callVerify(db, apiKey, options);
  } catch (err) {
    if (err instanceof TypeError) throw err;
    if ((err as { code?: string }).code === "42883" && (options.requiredScope !== undefined || options.cost !== undefined)) {
      // The server is older than the route: say so to the operator, not the caller.
      throw new GatewayError({
        status: 500,
        code: "internal_error",
        message: "internal error",
        sqlstate: "42883",
        cause: new Error("requiredScope and cost need pg_gateway 0.6.0 or later (gateway.api_key_verify with required_scope, cost)", { cause: err }),
      });
    }
    throw errorForDatabase(err);
  }
  if (row.valid === true && row.reason === "ok" && row.key_id && row.user_id && row.project_id) {
    const usage = row.usage_remaining;
    return {
      keyId: row.key_id,
      userId: row.user_id,
      projectId: row.project_id,
      rateLimitRemaining: row.rate_limit_remaining ?? null,
      usageRemaining: usage == null ? null : Number(usage),
    };
  }
  throw errorForReason(row.reason === "ok" ? "refused" : row.reason, row.retry_after_seconds, options);
}
