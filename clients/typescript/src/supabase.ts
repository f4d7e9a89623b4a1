// Runs a piece of a request as the signed-in Supabase user, the way PostgREST does: one
// transaction on a pooled connection with the role and the JWT claims set LOCAL to it.
import type { Pool, PoolClient } from "pg";

/** The roles a request may take; fixed names, never built from input. */
export type SupabaseRole = "authenticated" | "anon";

export interface SupabaseUserOptions {
  /** The role to take for the transaction (default `authenticated`). */
  role?: SupabaseRole;
}

/** JWT claims as Supabase puts them in `request.jwt.claims` (at least `sub` for a signed-in user). */
export type JwtClaims = { sub?: string; role?: string; [claim: string]: unknown };

/**
 * Thrown when fn returned normally but its transaction had failed (fn caught a statement's error
 * and went on): PostgreSQL answers such a COMMIT by rolling back, so none of fn's writes happened.
 */
export class TransactionRolledBack extends Error {
  override readonly name = "TransactionRolledBack";
}

/** Thrown when the connection came back from `fn` with a role or claims that outlive the transaction. */
export class ConnectionStateLeak extends Error {
  override readonly name = "ConnectionStateLeak";
}

const ROLES: ReadonlySet<string> = new Set(["authenticated", "anon"]);

/**
 * withSupabaseUser(pool, claims, fn): BEGIN; SET LOCAL ROLE authenticated;
 * set_config('request.jwt.claims', claims, true); fn(client); COMMIT - on one pooled connection.
 * On an error in fn it rolls back and rethrows; the connection always goes back to the pool. If fn
 * swallowed a failed statement and returned, the COMMIT is a rollback: TransactionRolledBack.
 * The role is the `role` option, never the claims' `role` (a token does not pick its database role).
 *
 * Everything it sets is transaction-local, so nothing survives COMMIT or ROLLBACK, also behind
 * pgbouncer in transaction mode. fn must not end the transaction itself (COMMIT/ROLLBACK) or SET
 * anything for the session: the helper checks, in the same round trip as COMMIT, that the
 * connection's role and claims are what they were before, and if not it destroys the connection
 * and throws ConnectionStateLeak instead of handing it to the next request.
 */
export async function withSupabaseUser<T>(
  pool: Pool,
  claims: JwtClaims,
  fn: (client: PoolClient) => Promise<T>,
  options: SupabaseUserOptions = {},
): Promise<T> {
  const role = options.role ?? "authenticated";
  if (!ROLES.has(role)) throw new TypeError(`role must be authenticated or anon, not ${String(role)}`);
  if (claims === null || typeof claims !== "object" || Array.isArray(claims)) {
    throw new TypeError("claims must be the JWT's claims object");
  }
  const claimsJson = JSON.stringify(claims);

  const client = await pool.connect();
  // fn gets the connection but must not release it: released mid-transaction, the pool would hand
  // it, still SET LOCAL ROLE with these claims, to the next request while this one goes on.
  const release = client.release;
  client.release = () => {
    throw new Error("withSupabaseUser releases the connection itself: fn must not call client.release()");
  };
  // Set when the connection must not go back to the pool: a failed BEGIN, ROLLBACK or COMMIT
  // leaves it in a state nobody can vouch for, and a leak check that fails speaks for itself.
  let broken: Error | undefined;
  try {
    let before: StateRow;
    try {
      // BEGIN and the connection's state before it, in one simple-protocol round trip.
      before = stateOf(await client.query(BEGIN_AND_STATE));
    } catch (err) {
      broken = err as Error;
      throw err;
    }
    let result: T;
    try {
      // set_config('role', ..., true) is SET LOCAL ROLE with the role as a parameter.
      await client.query("SELECT set_config('role', $1, true), set_config('request.jwt.claims', $2, true)", [role, claimsJson]);
      result = await fn(client);
    } catch (err) {
      try {
        await client.query("ROLLBACK");
      } catch (rollbackError) {
        broken = rollbackError as Error;
      }
      throw err;
    }
    let after: StateRow;
    let committed: boolean;
    try {
      const ended = await client.query(COMMIT_AND_STATE);
      after = stateOf(ended);
      committed = (ended as unknown as Array<{ command: string }>)[0]?.command === "COMMIT";
    } catch (err) {
      broken = err as Error;
      throw err;
    }
    if (after.who !== before.who || (after.claims ?? "") !== (before.claims ?? "") || (after.sub ?? "") !== (before.sub ?? "")) {
      broken = new ConnectionStateLeak(
        `the connection left withSupabaseUser as ${after.who} (it came in as ${before.who}) or with other claims: ` +
          "fn ended the transaction or SET something for the session; the connection was closed",
      );
      throw broken;
    }
    if (!committed) {
      throw new TransactionRolledBack("the transaction had failed inside fn and was rolled back; nothing it wrote was kept");
    }
    return result;
  } finally {
    client.release = release;
    client.release(broken ?? false);
  }
}

type StateRow = { who: string; claims: string | null; sub: string | null };
// request.jwt.claim.sub too: gateway.current_user_id() falls back to it when claims are unset.
const STATE =
  "SELECT current_user AS who, current_setting('request.jwt.claims', true) AS claims, current_setting('request.jwt.claim.sub', true) AS sub";
const BEGIN_AND_STATE = `BEGIN; ${STATE}`;
const COMMIT_AND_STATE = `COMMIT; ${STATE}`;

// A multi-statement simple query answers with one result per statement; the state is the last.
function stateOf(results: unknown): StateRow {
  const list = results as Array<{ rows: StateRow[] }>;
  const row = Array.isArray(list) ? list[list.length - 1]?.rows[0] : undefined;
  if (!row) throw new Error("could not read the connection's role and claims");
  return row;
}
