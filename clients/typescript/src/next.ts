// Next.js App Router route handlers (and any Fetch-API server): a wrapper that checks X-API-Key
// before the handler runs and turns every refusal into the right Response.
import { GatewayError, errorForDatabase } from "./errors.js";
import { apiKeyFrom, checkApiKey, resolvedCheck, type CheckOptions, type Queryable, type VerifiedKey } from "./verify.js";

export interface RouteOptions extends CheckOptions {
  /** Which interface/scope/cost this request needs, when it depends on the request (overrides the fixed ones). */
  resolve?: (req: Request) => CheckOptions | Promise<CheckOptions>;
  /** Called with every error that becomes a 5xx (the response itself never carries its text). */
  onError?: (err: unknown, req: Request) => void;
}

/** A route handler that gets the verified key: `(req, key, context) => Response`. */
export type KeyedHandler<C> = (req: Request, key: VerifiedKey, context: C) => Response | Promise<Response>;

/** The JSON Response for a GatewayError (status, Retry-After, WWW-Authenticate, no caching). */
export function errorResponse(err: GatewayError): Response {
  return new Response(JSON.stringify(err.toJSON()), {
    status: err.status,
    headers: { "Content-Type": "application/json", "Cache-Control": "no-store", ...err.headers() },
  });
}

/**
 * withApiKey(db, handler, options) -> (req, context) => Promise<Response>, the shape of an App
 * Router route handler (`export const GET = withApiKey(pool, async (req, key) => ...)`).
 * Refusals answer 401/403/429 (+Retry-After); database errors thrown by the handler are mapped by
 * SQLSTATE too (42501 -> 403, 22xxx -> 400, ...), and 5xx answers never carry the database's text.
 */
export function withApiKey<C = unknown>(
  db: Queryable,
  handler: KeyedHandler<C>,
  options: RouteOptions = {},
): (req: Request, context: C) => Promise<Response> {
  const { resolve, onError, ...fixed } = options;
  return async (req: Request, context: C): Promise<Response> => {
    try {
      const check = resolve ? resolvedCheck(fixed, await resolve(req)) : fixed;
      const key = await checkApiKey(db, apiKeyFrom(req.headers.get("x-api-key")), check);
      return await handler(req, key, context);
    } catch (err) {
      const mapped = errorForDatabase(err);
      if (mapped.status >= 500) onError?.(err, req);
      return errorResponse(mapped);
    }
  };
}
