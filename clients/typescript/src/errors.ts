// Every way a request can be refused, as one table: verify's reasons and PostgreSQL's SQLSTATEs
// -> an HTTP status and a tRPC code. The tRPC and Next.js adapters only translate a GatewayError.

/** tRPC error codes this package uses (a subset of @trpc/server's, kept here so the core does not import it). */
export type TrpcCode =
  | "BAD_REQUEST"
  | "UNAUTHORIZED"
  | "FORBIDDEN"
  | "TOO_MANY_REQUESTS"
  | "INTERNAL_SERVER_ERROR"
  | "SERVICE_UNAVAILABLE";

/** The reasons `gateway.api_key_verify` answers with, plus `missing` (no X-API-Key header at all). */
export type VerifyReason =
  | "ok"
  | "missing"
  | "malformed"
  | "unknown"
  | "expired"
  | "revoked"
  | "wrong_interface"
  | "insufficient_scope"
  | "rate_limited"
  | "usage_exceeded";

export interface Refusal {
  status: number;
  trpcCode: TrpcCode;
  /** A message safe to show the caller. */
  message: string;
}

/**
 * Why a key is refused, and how.
 * - 401: the caller has not shown a usable key (none, not a key, no such key, past its expiry):
 *   show a key. Unknown and malformed look the same on purpose.
 * - 403: the key is known and matched, but may not do this (revoked, another interface, a scope it
 *   lacks): a different key, not a retry, helps.
 * - 429 rate_limited: the same key works again after Retry-After seconds.
 * - usage_exceeded: 429 by default, because the key is valid and allowed and only its quota of uses
 *   is spent (a refill, by interval or by `api_key_refill`, makes it work again without a new key);
 *   that is "resource exhausted" (gRPC's RESOURCE_EXHAUSTED maps to 429), not "forbidden". It has
 *   no Retry-After: verify does not know when a refill comes. Apps that want clients to stop
 *   retrying can pass `usageExceededStatus: 403`.
 */
export const REASON_REFUSALS: Readonly<Record<Exclude<VerifyReason, "ok">, Refusal>> = Object.freeze({
  missing: { status: 401, trpcCode: "UNAUTHORIZED", message: "missing X-API-Key header" },
  malformed: { status: 401, trpcCode: "UNAUTHORIZED", message: "invalid API key" },
  unknown: { status: 401, trpcCode: "UNAUTHORIZED", message: "invalid API key" },
  expired: { status: 401, trpcCode: "UNAUTHORIZED", message: "API key expired" },
  revoked: { status: 403, trpcCode: "FORBIDDEN", message: "API key revoked" },
  wrong_interface: { status: 403, trpcCode: "FORBIDDEN", message: "API key not valid for this interface" },
  insufficient_scope: { status: 403, trpcCode: "FORBIDDEN", message: "API key lacks the required scope" },
  rate_limited: { status: 429, trpcCode: "TOO_MANY_REQUESTS", message: "rate limit exceeded" },
  usage_exceeded: { status: 429, trpcCode: "TOO_MANY_REQUESTS", message: "API key usage limit exceeded" },
});

/** A reason this package does not know (a newer server): refused, never let through. */
const UNKNOWN_REASON: Refusal = { status: 403, trpcCode: "FORBIDDEN", message: "API key refused" };

const STATUS_TO_TRPC: Record<number, TrpcCode> = {
  400: "BAD_REQUEST",
  401: "UNAUTHORIZED",
  403: "FORBIDDEN",
  429: "TOO_MANY_REQUESTS",
  500: "INTERNAL_SERVER_ERROR",
  503: "SERVICE_UNAVAILABLE",
};

/** A refused request: the HTTP status, the tRPC code and what the caller may be told. */
export class GatewayError extends Error {
  override readonly name = "GatewayError";
  readonly status: number;
  readonly trpcCode: TrpcCode;
  /** A verify reason (`revoked`, ...) or `database_error`/`service_unavailable`/`internal_error`. */
  readonly code: string;
  /** Seconds until a rate-limited key may try again (sent as Retry-After). */
  readonly retryAfterSeconds: number | undefined;
  /** The SQLSTATE of a database error, when there was one. */
  readonly sqlstate: string | undefined;

  constructor(init: {
    status: number;
    code: string;
    message: string;
    trpcCode?: TrpcCode;
    retryAfterSeconds?: number;
    sqlstate?: string;
    cause?: unknown;
  }) {
    super(init.message, init.cause === undefined ? undefined : { cause: init.cause });
    this.status = init.status;
    this.code = init.code;
    this.trpcCode = init.trpcCode ?? STATUS_TO_TRPC[init.status] ?? "INTERNAL_SERVER_ERROR";
    this.retryAfterSeconds = init.retryAfterSeconds;
    this.sqlstate = init.sqlstate;
  }

  /** Response headers that belong with this error (Retry-After, WWW-Authenticate). */
  headers(): Record<string, string> {
    const h: Record<string, string> = {};
    if (this.retryAfterSeconds !== undefined) h["Retry-After"] = String(this.retryAfterSeconds);
    if (this.status === 401) h["WWW-Authenticate"] = 'ApiKey header="X-API-Key"';
    return h;
  }

  /** The JSON body an HTTP response carries: `{ error: { code, message } }`. */
  toJSON(): { error: { code: string; message: string } } {
    return { error: { code: this.code, message: this.message } };
  }
}

export interface RefusalOptions {
  /** The status for usage_exceeded: 429 (default) or 403. */
  usageExceededStatus?: 429 | 403;
}

/** The error for a verify answer that is not `ok`. */
export function errorForReason(
  reason: string | null | undefined,
  retryAfterSeconds?: number | null,
  options: RefusalOptions = {},
): GatewayError {
  const known = reason != null && Object.prototype.hasOwnProperty.call(REASON_REFUSALS, reason);
  let refusal = known ? REASON_REFUSALS[reason as Exclude<VerifyReason, "ok">] : UNKNOWN_REASON;
  if (reason === "usage_exceeded" && options.usageExceededStatus === 403) {
    refusal = { ...refusal, status: 403, trpcCode: "FORBIDDEN" };
  }
  let retry: number | undefined;
  if (reason === "rate_limited") {
    // Retry-After is whole seconds, at least 1 (0 would invite a tight retry loop).
    retry = Math.max(1, Math.ceil(Number(retryAfterSeconds ?? 1)) || 1);
  }
  return new GatewayError({
    status: refusal.status,
    trpcCode: refusal.trpcCode,
    code: known ? (reason as string) : "refused",
    message: refusal.message,
    retryAfterSeconds: retry,
  });
}

/** Node's network error codes that mean "the database cannot be reached right now". */
const NETWORK_CODES = new Set([
  "ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "EPIPE", "EHOSTUNREACH", "ENETUNREACH",
  "ENOTFOUND", "EAI_AGAIN", "ECONNABORTED",
]);
/** node-postgres errors without a code that mean the same. */
const NETWORK_MESSAGES = [/^Connection terminated/, /timeout exceeded when trying to connect/, /Client has encountered a connection error/];

/**
 * The SQLSTATE classes, in order:
 * 42501 -> 403, 28000 -> 401, 22xxx -> 400, 08xxx / 57P0x / 53300 (and network errors) -> 503,
 * anything else -> 500 (28P01, a wrong password of the app's own login, is the server's fault: 500). 4xx answers carry the database's message (pg_gateway writes them for
 * callers: what is wrong, never a secret); 5xx never do: they may name internals.
 */
export function statusForSqlstate(sqlstate: string | undefined): number {
  if (!sqlstate) return 500;
  if (sqlstate === "42501") return 403;
  if (sqlstate === "28000") return 401;
  if (sqlstate.startsWith("22")) return 400;
  if (sqlstate.startsWith("08") || sqlstate.startsWith("57P") || sqlstate === "53300") return 503;
  return 500;
}

/** Maps anything thrown while talking to PostgreSQL to a GatewayError (a GatewayError passes as is). */
export function errorForDatabase(err: unknown): GatewayError {
  if (err instanceof GatewayError) return err;
  const e = (err ?? {}) as { code?: unknown; message?: unknown };
  const code = typeof e.code === "string" ? e.code : undefined;
  const message = typeof e.message === "string" ? e.message : "";
  // EPIPE has a SQLSTATE's shape: network codes first.
  const isSqlstate = code !== undefined && !NETWORK_CODES.has(code) && /^[0-9A-Z]{5}$/.test(code);
  let status = isSqlstate ? statusForSqlstate(code) : 500;
  if (!isSqlstate && ((code && NETWORK_CODES.has(code)) || NETWORK_MESSAGES.some((re) => re.test(message)))) {
    status = 503;
  }
  if (status < 500) {
    return new GatewayError({ status, code: "database_error", message, sqlstate: code, cause: err });
  }
  return new GatewayError({
    status,
    code: status === 503 ? "service_unavailable" : "internal_error",
    message: status === 503 ? "the database is not available, try again" : "internal error",
    sqlstate: isSqlstate ? code : undefined,
    cause: err,
  });
}
