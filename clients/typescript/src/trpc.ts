// tRPC v11: a procedure builder to .concat() (tRPC's way to ship a middleware in a library) and
// the error translation, so procedures refuse keys with the right TRPCError code.
import { TRPCError, initTRPC } from "@trpc/server";
import { GatewayError, errorForDatabase } from "./errors.js";
import { apiKeyFrom, checkApiKey, resolvedCheck, type CheckOptions, type Queryable, type VerifiedKey } from "./verify.js";

/** Headers as tRPC's adapters hand them over: Fetch `Headers` or Node's header object. */
type AnyHeaders = Headers | Record<string, string | string[] | undefined>;

/** The context this middleware can read the key from, if no getApiKey is given. */
export interface ApiKeyContext {
  /** Fetch/Next adapters: the request. */
  req?: { headers: AnyHeaders };
  /** Or the headers themselves. */
  headers?: AnyHeaders;
  /** Fetch adapter's response headers: Retry-After is set here when present. */
  resHeaders?: Headers;
}

export interface TrpcApiKeyOptions<TCtx> extends CheckOptions {
  /** Reads the key from the context; default: X-API-Key of ctx.headers or ctx.req.headers. */
  getApiKey?: (ctx: TCtx) => string | null | undefined;
  /** Per call: interface/scope/cost from the procedure's path, meta or context. */
  resolve?: (opts: { ctx: TCtx; path: string; meta: unknown }) => CheckOptions | Promise<CheckOptions>;
  /** Called with every error that becomes a 5xx (the TRPCError never carries its text). */
  onError?: (err: unknown) => void;
}

function headerOf(headers: AnyHeaders | undefined, name: string): string | null {
  if (!headers) return null;
  if (typeof (headers as Headers).get === "function") return (headers as Headers).get(name);
  return apiKeyFrom((headers as Record<string, string | string[] | undefined>)[name]);
}

/** The TRPCError for a GatewayError (the GatewayError is its cause, with status and Retry-After). */
export function toTRPCError(err: GatewayError): TRPCError {
  return new TRPCError({ code: err.trpcCode, message: err.message, cause: err });
}

/**
 * A procedure builder whose middleware checks X-API-Key and adds `apiKey: VerifiedKey` to the
 * context. Use it with `.concat()`:
 *
 *   const apiKey = apiKeyProcedure<Context>(pool, { publicInterfaceId });
 *   export const keyed = t.procedure.concat(apiKey);
 *
 * Refusals throw TRPCError UNAUTHORIZED / FORBIDDEN / TOO_MANY_REQUESTS (Retry-After goes to
 * ctx.resHeaders when the adapter gives it; the cause is the GatewayError either way), and
 * database errors from the procedure are mapped by SQLSTATE as well.
 */
export function apiKeyProcedure<TCtx extends object = ApiKeyContext>(db: Queryable, options: TrpcApiKeyOptions<TCtx> = {}) {
  const { getApiKey, resolve, onError, ...fixed } = options;
  const t = initTRPC.context<TCtx>().create();
  return t.procedure.use(async ({ ctx, path, meta, next }) => {
    const appCtx = ctx as unknown as TCtx;
    const c = ctx as unknown as ApiKeyContext;
    let key: VerifiedKey;
    try {
      const raw = getApiKey ? getApiKey(appCtx) : (headerOf(c.headers, "x-api-key") ?? headerOf(c.req?.headers, "x-api-key"));
      const check = resolve ? resolvedCheck(fixed, await resolve({ ctx: appCtx, path, meta })) : fixed;
      key = await checkApiKey(db, apiKeyFrom(raw), check);
    } catch (err) {
      throw refuse(err, c, onError);
    }
    const result = await next({ ctx: { apiKey: key } });
    // A database error inside the procedure: same mapping (a TRPCError the procedure chose stays).
    if (!result.ok && result.error.code === "INTERNAL_SERVER_ERROR" && result.error.cause && !(result.error.cause instanceof GatewayError)) {
      const cause = result.error.cause as { code?: unknown };
      // node-postgres's connection errors have no code (Connection terminated ...): 503 too, and
      // never tRPC's default answer with the driver's message.
      if (typeof cause.code === "string" || errorForDatabase(cause).status === 503) throw refuse(cause, c, onError);
    }
    return result;
  });
}

function refuse(err: unknown, ctx: ApiKeyContext, onError?: (err: unknown) => void): TRPCError {
  const mapped = errorForDatabase(err);
  if (mapped.status >= 500) onError?.(err);
  if (mapped.retryAfterSeconds !== undefined && ctx.resHeaders && typeof ctx.resHeaders.set === "function") {
    ctx.resHeaders.set("Retry-After", String(mapped.retryAfterSeconds));
  }
  return toTRPCError(mapped);
}

/**
 * For an adapter's responseMeta: the Retry-After header of a refused key, when the adapter does
 * not pass resHeaders (`responseMeta: ({ errors }) => gatewayResponseMeta(errors)`).
 */
export function gatewayResponseMeta(errors: readonly TRPCError[]): { headers?: Record<string, string> } {
  for (const e of errors) {
    if (e.cause instanceof GatewayError && e.cause.retryAfterSeconds !== undefined) {
      return { headers: { "Retry-After": String(e.cause.retryAfterSeconds) } };
    }
  }
  return {};
}

export type { VerifiedKey };
