#include <cblas.h>
#include <openblas_config.h>
// openblas_set_num_threads and friends are OpenBLAS extensions declared in cblas.h.
