/*
 * bench/verify's floor: a C function that returns api_key_verify's row (valid, 'ok', three uuids,
 * three NULLs) without looking at its argument. Called the same way as verify, it is the cost of
 * any SQL function that answers with that row: verify cannot be faster than this, so
 * verify_hot / floor_row says how much of a hot verify is verify's own work.
 * Built by bench/verify.sh into the throwaway cluster's directory; never installed.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/typcache.h"
#include "utils/uuid.h"

PG_MODULE_MAGIC;
PG_FUNCTION_INFO_V1(floor_row);

Datum
floor_row(PG_FUNCTION_ARGS)
{
	static pg_uuid_t id;
	TupleDesc	desc = lookup_rowtype_tupdesc(get_fn_expr_rettype(fcinfo->flinfo), -1);
	Datum		values[8];
	bool		nulls[8] = {false, false, false, false, false, true, true, true};
	HeapTuple	tuple;

	values[0] = BoolGetDatum(true);
	values[1] = PointerGetDatum(cstring_to_text_with_len("ok", 2));
	values[2] = values[3] = values[4] = UUIDPGetDatum(&id);
	tuple = heap_form_tuple(desc, values, nulls);
	ReleaseTupleDesc(desc);
	PG_RETURN_DATUM(HeapTupleGetDatum(tuple));
}
