#ifndef CMPI_H
#define CMPI_H
// OpenMPI's predefined handles are macros over addresses of extern structs; Swift cannot import them,
// so they are handed out as plain functions. Everything else is called through MPI's ordinary API.
#include <mpi.h>

MPI_Comm cmpi_comm_world(void);
MPI_Comm cmpi_comm_null(void);
MPI_Datatype cmpi_float(void);
MPI_Datatype cmpi_double(void);
MPI_Datatype cmpi_uint16(void);
MPI_Datatype cmpi_int32(void);
MPI_Datatype cmpi_int64(void);
MPI_Datatype cmpi_uint8(void);
MPI_Op cmpi_op_sum(void);
MPI_Op cmpi_op_max(void);
MPI_Op cmpi_op_min(void);
MPI_Status *cmpi_status_ignore(void);
MPI_Errhandler cmpi_errors_return(void);
void *cmpi_in_place(void);
int cmpi_success(void);
int cmpi_thread_funneled(void);
int cmpi_any_source(void);
int cmpi_max_error_string(void);

#endif
