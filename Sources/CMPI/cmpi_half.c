// Sums of bf16 and f16 storage as user-defined MPI_Ops over MPI_UINT16_T. Each step decodes both
// operands to f32, adds them (NaN rule below), and rounds back to nearest, ties to even: the same bits
// as `Tensors.HalfConversion` (PyTorch's x86 conversions), which `HalfCollectivesTests` checks.
//
// Reduction order is MPI's: with more than 2 ranks MPI chooses which partial sums meet (and rounds each
// one back to 16 bits), so a sum over 3+ ranks may differ from "f32 sum in rank order, rounded once".
// For 2 ranks every algorithm computes round(f32(a) + f32(b)) on both ranks. The op is declared
// commutative, which is true bit for bit: IEEE addition is commutative, and NaN payloads, which the
// hardware would pick by operand position, are chosen here by a symmetric rule.
#include "cmpi.h"
#include <string.h>

static inline uint32_t bits_of(float x) { uint32_t u; memcpy(&u, &x, 4); return u; }
static inline float float_of(uint32_t u) { float x; memcpy(&x, &u, 4); return x; }
static inline int is_nan_bits(uint32_t u) { return (u & 0x7FFFFFFFu) > 0x7F800000u; }

float cmpi_float_from_bf16(uint16_t h) { return float_of((uint32_t)h << 16); }

uint16_t cmpi_bf16_from_float(float x) {
    uint32_t u = bits_of(x);
    if (is_nan_bits(u)) return 0xFFFF;  // ATen's vectorised conversion writes this constant for every NaN
    return (uint16_t)((u + ((u >> 16) & 1u) + 0x7FFFu) >> 16);
}

float cmpi_float_from_f16(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = ((uint32_t)h >> 10) & 0x1Fu;
    uint32_t mant = (uint32_t)h & 0x3FFu;
    if (exp == 0) {  // subnormal or zero: mant × 2^-24, exact in f32
        float f = (float)mant * float_of(0x33800000u);
        return float_of(bits_of(f) | sign);
    }
    if (exp == 0x1F) return float_of(sign | 0x7F800000u | (mant << 13));
    return float_of(sign | ((exp + 112u) << 23) | (mant << 13));
}

uint16_t cmpi_f16_from_float(float x) {
    uint32_t u = bits_of(x);
    uint32_t sign = u & 0x80000000u;
    uint32_t o;
    u ^= sign;
    if (u >= 0x47800000u) {  // ≥ 65536, inf, NaN (values in [65520, 65536) overflow in the last branch)
        o = u > 0x7F800000u ? (0x7E00u | ((u >> 13) & 0x3FFu)) : 0x7C00u;
    } else if (u < 0x38800000u) {
        // Below the smallest normal f16: adding 0.5 puts the f16 subnormal grid on the last bits of
        // the f32 mantissa, so the FPU's round-to-nearest-even rounds it.
        float f = float_of(u) + 0.5f;
        o = bits_of(f) - 0x3F000000u;
    } else {
        uint32_t mant_odd = (u >> 13) & 1u;
        u += 0xC8000FFFu;  // rebias the exponent by (15 - 127) << 23, plus the rounding bias 0xFFF
        u += mant_odd;
        o = u >> 13;
    }
    return (uint16_t)(o | (sign >> 16));
}

float cmpi_half_add(float a, float b) {
    float s = a + b;
    if (s == s) return s;
    // A NaN operand propagates, quieted; of two NaNs the larger bit pattern wins (either order gives
    // the same bits); inf + -inf gives x86's default NaN, the value PyTorch's f32 add produces there.
    uint32_t ua = bits_of(a), ub = bits_of(b);
    int na = is_nan_bits(ua), nb = is_nan_bits(ub);
    if (!na && !nb) return float_of(0xFFC00000u);
    ua |= 0x00400000u;
    ub |= 0x00400000u;
    if (na && nb) return float_of(ua > ub ? ua : ub);
    return float_of(na ? ua : ub);
}

void cmpi_bf16_sum(const uint16_t *in, uint16_t *inout, int count) {
    for (int i = 0; i < count; i++) {
        inout[i] = cmpi_bf16_from_float(cmpi_half_add(cmpi_float_from_bf16(in[i]), cmpi_float_from_bf16(inout[i])));
    }
}

void cmpi_f16_sum(const uint16_t *in, uint16_t *inout, int count) {
    for (int i = 0; i < count; i++) {
        inout[i] = cmpi_f16_from_float(cmpi_half_add(cmpi_float_from_f16(in[i]), cmpi_float_from_f16(inout[i])));
    }
}

static void bf16_sum_op(void *in, void *inout, int *len, MPI_Datatype *type) {
    (void)type;
    cmpi_bf16_sum((const uint16_t *)in, (uint16_t *)inout, *len);
}

static void f16_sum_op(void *in, void *inout, int *len, MPI_Datatype *type) {
    (void)type;
    cmpi_f16_sum((const uint16_t *)in, (uint16_t *)inout, *len);
}

// Created on first use (after MPI_Init; only the main thread calls MPI) and kept until MPI_Finalize,
// which releases user ops itself.
static MPI_Op bf16_sum = MPI_OP_NULL, f16_sum = MPI_OP_NULL;

int cmpi_op_bf16_sum(MPI_Op *op) {
    if (bf16_sum == MPI_OP_NULL) {
        int rc = MPI_Op_create(bf16_sum_op, 1, &bf16_sum);
        if (rc != MPI_SUCCESS) return rc;
    }
    *op = bf16_sum;
    return MPI_SUCCESS;
}

int cmpi_op_f16_sum(MPI_Op *op) {
    if (f16_sum == MPI_OP_NULL) {
        int rc = MPI_Op_create(f16_sum_op, 1, &f16_sum);
        if (rc != MPI_SUCCESS) return rc;
    }
    *op = f16_sum;
    return MPI_SUCCESS;
}
