"""PyTorch's f32 → bf16 / f16 conversions on the cases that go wrong in hand-written code: NaN with
payloads, ±inf, ±0, subnormals of both formats, ties at every rounding boundary, the f16 overflow edge
(65504, 65519.99, 65520), and a spread of random bit patterns. Writes ../../Tests/Fixtures/dtypes/
conversions.safetensors with f32 (as U32 bits), bf16 and f16 (as U16 bits) columns.

Run from Scripts/reference: python3 gen_dtypes.py
"""
import os

import numpy as np
import torch
from safetensors.torch import save_file

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "Tests", "Fixtures", "dtypes")


def cases():
    bits = [0x00000000, 0x80000000, 0x7F800000, 0xFF800000, 0x7FC00000, 0xFFC00000, 0x7F800001, 0x7FBFFFFF,
            0xFF812345, 0x00000001, 0x807FFFFF, 0x00400000, 0x3F800000, 0xBF800000]
    # bf16 ties: low 16 bits exactly 0x8000 with even and odd kept bit, and one ulp either side.
    for hi in (0x3F80, 0x3F81, 0x7F7F, 0x0001, 0x4049):
        for lo in (0x7FFF, 0x8000, 0x8001):
            bits.append((hi << 16) | lo)
    # f16 ties and subnormals: values on and around the f16 grid.
    for v in (65504.0, 65519.0, 65519.996, 65520.0, 65536.0, 1e5, 6.1035156e-05, 6.0975552e-05, 5.9604645e-08,
              2.9802322e-08, 2.9802326e-08, 8.9406967e-08, 1.0 + 2 ** -11, 1.0 + 3 * 2 ** -11, 2049.0, 2051.0,
              0.1, 0.2, 1 / 3, 3.14159265, -2.5e-6, 1e-9, -1e-20):
        f = np.float32(v)
        bits.append(int(f.view(np.uint32)))
        bits.append(int(np.float32(-v).view(np.uint32)))
    rng = np.random.default_rng(0)
    bits += [int(b) for b in rng.integers(0, 2 ** 32, size=4000, dtype=np.uint64)]
    # Dense sweep over the f16 range.
    bits += [int(b) for b in np.linspace(-70000, 70000, 2001, dtype=np.float32).view(np.uint32)]
    return np.array(bits, dtype=np.uint32)


def main():
    os.makedirs(OUT, exist_ok=True)
    u = cases()
    f = torch.from_numpy(u.view(np.float32).copy())
    bf = f.to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
    hf = f.to(torch.float16).view(torch.int16).numpy().view(np.uint16)
    # Back conversions are exact; record them too so both directions are checked.
    bf_back = torch.from_numpy(bf.view(np.int16).copy()).view(torch.bfloat16).float().numpy().view(np.uint32)
    hf_back = torch.from_numpy(hf.view(np.int16).copy()).view(torch.float16).float().numpy().view(np.uint32)
    tensors = {"f32_bits": u, "bf16_bits": bf, "f16_bits": hf, "bf16_to_f32_bits": bf_back, "f16_to_f32_bits": hf_back}
    save_file({k: torch.from_numpy(v.astype(np.int32 if v.dtype == np.uint32 else np.int16).copy()) for k, v in tensors.items()},
              os.path.join(OUT, "conversions.safetensors"), metadata={"format": "pt"})
    print(f"{len(u)} cases")


if __name__ == "__main__":
    main()
