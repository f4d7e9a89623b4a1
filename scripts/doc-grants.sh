#!/usr/bin/env bash
# Prints the SQL of every ```sql block in docs/*.md that opens with the line
# "-- grants for Supabase": the grants the docs tell users to run. The pgTAP role suites apply
# exactly this (see scripts/test.sh), so docs and tests cannot drift apart.
set -euo pipefail
cd "$(dirname "$0")/.."
awk '
  /^```sql[[:space:]]*$/ { inblock = 1; first = 1; keep = 0; next }
  /^```[[:space:]]*$/    { inblock = 0; next }
  inblock && first       { first = 0; if ($0 ~ /^-- grants for Supabase/) keep = 1 }
  inblock && keep        { print }
' docs/*.md
