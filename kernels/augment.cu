// Batch assembly from a uint8 image set on the device: pad, random crop, random horizontal flip,
// per-channel normalisation, with the same Philox draws as the CPU twin.
// CPU twin: CpuAugment.Batch, and CpuAugment.Reflect for reflect_index (src/CudaSwa/Cpu/CpuAugment.cs).
// Tests: EmulatedKernelTests (this source run on the CPU), StandInDriverTests, LargeCountTests, CpuVsCudaTests.
#include "common.cuh"

__device__ __forceinline__ int reflect_index(int i, int n) { return i < 0 ? -i : (i >= n ? 2 * n - 2 - i : i); }

// One thread per output value (b, c, r, col). The sample's draw is recomputed per thread (ten
// Philox rounds are cheaper than a second pass). scale/shift per channel come from the host,
// computed exactly as on the CPU; the multiply and add are kept separate (no FMA contraction)
// so both backends produce bit-identical batches.
extern "C" __global__ void augment_batch(const unsigned char* __restrict__ images, const int* __restrict__ source_labels,
                                         const int* __restrict__ indices, float* __restrict__ x, int* __restrict__ labels,
                                         int batch, int channels, int h, int w, int pad, int crop, int flip, int reflect,
                                         int epoch, u32 seed_lo, u32 seed_hi,
                                         float scale0, float scale1, float scale2, float scale3,
                                         float shift0, float shift1, float shift2, float shift3)
{
    i64 total = (i64)batch * channels * h * w;
    GRID_STRIDE(o, total)
    {
        int col = (int)(o % w);
        int r = (int)((o / w) % h);
        int c = (int)((o / ((i64)w * h)) % channels);
        int b = (int)(o / ((i64)w * h * channels));
        int sample = indices[b];
        Philox4 d = philox4x32_10((u32)sample, (u32)epoch, 0xA5A5A5A5u, 0u, seed_lo, seed_hi);
        u32 span = (u32)(2 * pad + 1);
        int dx = crop ? (int)(d.x0 % span) : pad;
        int dy = crop ? (int)(d.x1 % span) : pad;
        bool flipped = flip && (d.x2 & 1u);
        int sr = r + dy - pad;
        int sc = (flipped ? w - 1 - col : col) + dx - pad;
        float raw = 0.0f;
        if (reflect) { sr = reflect_index(sr, h); sc = reflect_index(sc, w); }
        if (sr >= 0 && sr < h && sc >= 0 && sc < w)
            raw = (float)images[(((i64)sample * channels + c) * h + sr) * w + sc];
        float scale = c == 0 ? scale0 : c == 1 ? scale1 : c == 2 ? scale2 : scale3;
        float shift = c == 0 ? shift0 : c == 1 ? shift1 : c == 2 ? shift2 : shift3;
        x[o] = __fadd_rn(__fmul_rn(raw, scale), shift);
        if (c == 0 && r == 0 && col == 0) labels[b] = source_labels[sample];
    }
}
