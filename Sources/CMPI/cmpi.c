#include "cmpi.h"

MPI_Comm cmpi_comm_world(void) { return MPI_COMM_WORLD; }
MPI_Comm cmpi_comm_null(void) { return MPI_COMM_NULL; }
MPI_Datatype cmpi_float(void) { return MPI_FLOAT; }
MPI_Datatype cmpi_double(void) { return MPI_DOUBLE; }
MPI_Datatype cmpi_uint16(void) { return MPI_UINT16_T; }
MPI_Datatype cmpi_int32(void) { return MPI_INT32_T; }
MPI_Datatype cmpi_int64(void) { return MPI_INT64_T; }
MPI_Datatype cmpi_uint8(void) { return MPI_UINT8_T; }
MPI_Op cmpi_op_sum(void) { return MPI_SUM; }
MPI_Op cmpi_op_max(void) { return MPI_MAX; }
MPI_Op cmpi_op_min(void) { return MPI_MIN; }
MPI_Status *cmpi_status_ignore(void) { return MPI_STATUS_IGNORE; }
MPI_Errhandler cmpi_errors_return(void) { return MPI_ERRORS_RETURN; }
void *cmpi_in_place(void) { return MPI_IN_PLACE; }
int cmpi_success(void) { return MPI_SUCCESS; }
int cmpi_thread_funneled(void) { return MPI_THREAD_FUNNELED; }
int cmpi_any_source(void) { return MPI_ANY_SOURCE; }
int cmpi_max_error_string(void) { return MPI_MAX_ERROR_STRING; }
