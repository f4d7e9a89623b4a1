// Included first by every src/core file that might be compiled inside the extension: stops a
// PostgreSQL header from leaking into pure C++ code, where its macros (elog, PG_TRY, ...) would
// make longjmp cross C++ destructors.
#pragma once

#ifdef PG_VERSION_NUM
#error "src/core must not include PostgreSQL headers"
#endif
