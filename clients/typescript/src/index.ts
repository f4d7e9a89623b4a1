// pg_gateway for app servers over node-postgres: X-API-Key checks (core, Next.js/Fetch routes;
// tRPC under "./trpc") and requests as the signed-in Supabase user.
export {
  GatewayError,
  REASON_REFUSALS,
  errorForDatabase,
  errorForReason,
  statusForSqlstate,
  type Refusal,
  type RefusalOptions,
  type TrpcCode,
  type VerifyReason,
} from "./errors.js";
export {
  apiKeyFrom,
  callVerify,
  checkApiKey,
  type CheckOptions,
  type Queryable,
  type VerifiedKey,
  type VerifyOptions,
  type VerifyRow,
} from "./verify.js";
export { errorResponse, withApiKey, type KeyedHandler, type RouteOptions } from "./next.js";
export {
  ConnectionStateLeak,
  TransactionRolledBack,
  withSupabaseUser,
  type JwtClaims,
  type SupabaseRole,
  type SupabaseUserOptions,
} from "./supabase.js";
