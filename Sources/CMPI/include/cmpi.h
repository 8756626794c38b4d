#ifndef CMPI_H
#define CMPI_H
// OpenMPI's predefined handles are macros over addresses of extern structs; Swift cannot import them,
// so they are handed out as plain functions. Everything else is called through MPI's ordinary API.
#include <mpi.h>
#include <stdint.h>

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

// Half-precision sums (cmpi_half.c): user-defined MPI_Ops over MPI_UINT16_T holding bf16 or f16 bits.
// Each returns MPI_SUCCESS or MPI's error code from MPI_Op_create; call only after MPI_Init.
int cmpi_op_bf16_sum(MPI_Op *op);
int cmpi_op_f16_sum(MPI_Op *op);
// The element work of those ops, exposed so tests can hold it to Tensors.HalfConversion bit for bit:
// inout[i] = round(f32(in[i]) + f32(inout[i])).
void cmpi_bf16_sum(const uint16_t *in, uint16_t *inout, int count);
void cmpi_f16_sum(const uint16_t *in, uint16_t *inout, int count);
float cmpi_half_add(float a, float b);
float cmpi_float_from_bf16(uint16_t h);
uint16_t cmpi_bf16_from_float(float x);
float cmpi_float_from_f16(uint16_t h);
uint16_t cmpi_f16_from_float(float x);

#endif
