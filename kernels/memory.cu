// Memory-bound kernels for ai-ready, compiled at run time with NVRTC through cupy.RawModule.
//
// Grid-stride loops: a grid sized to the device (a few blocks per SM) walks any array length.
// The *_vec4 variants move 16 bytes per thread per step (float4); the host uses them only when
// every pointer is 16-byte aligned and the length is a multiple of 4, else the scalar kernels.
// Bytes counted by the host: each input read once, each output written once (STREAM).
//
// Kept to what NVRTC compiles without headers; tests compile every file with nvcc for sm_80
// and sm_90 with warnings as errors.

#define GRID_STRIDE_LOOP(i, n) \
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < (n); \
         i += (long long)gridDim.x * blockDim.x)

extern "C" __global__ void stream_copy(const float* __restrict__ in, float* __restrict__ out, long long n) {
    GRID_STRIDE_LOOP(i, n) { out[i] = in[i]; }
}

extern "C" __global__ void stream_copy_vec4(const float4* __restrict__ in, float4* __restrict__ out, long long n4) {
    GRID_STRIDE_LOOP(i, n4) { out[i] = in[i]; }
}

extern "C" __global__ void stream_scale(const float* __restrict__ in, float* __restrict__ out, float s, long long n) {
    GRID_STRIDE_LOOP(i, n) { out[i] = s * in[i]; }
}

extern "C" __global__ void stream_scale_vec4(const float4* __restrict__ in, float4* __restrict__ out, float s,
                                             long long n4) {
    GRID_STRIDE_LOOP(i, n4) {
        const float4 v = in[i];
        out[i] = make_float4(s * v.x, s * v.y, s * v.z, s * v.w);
    }
}

extern "C" __global__ void stream_add(const float* __restrict__ a, const float* __restrict__ b,
                                      float* __restrict__ out, long long n) {
    GRID_STRIDE_LOOP(i, n) { out[i] = a[i] + b[i]; }
}

extern "C" __global__ void stream_add_vec4(const float4* __restrict__ a, const float4* __restrict__ b,
                                           float4* __restrict__ out, long long n4) {
    GRID_STRIDE_LOOP(i, n4) {
        const float4 x = a[i];
        const float4 y = b[i];
        out[i] = make_float4(x.x + y.x, x.y + y.y, x.z + y.z, x.w + y.w);
    }
}

// STREAM triad: out = a + s * b
extern "C" __global__ void stream_triad(const float* __restrict__ a, const float* __restrict__ b,
                                        float* __restrict__ out, float s, long long n) {
    GRID_STRIDE_LOOP(i, n) { out[i] = a[i] + s * b[i]; }
}

extern "C" __global__ void stream_triad_vec4(const float4* __restrict__ a, const float4* __restrict__ b,
                                             float4* __restrict__ out, float s, long long n4) {
    GRID_STRIDE_LOOP(i, n4) {
        const float4 x = a[i];
        const float4 y = b[i];
        out[i] = make_float4(x.x + s * y.x, x.y + s * y.y, x.z + s * y.z, x.w + s * y.w);
    }
}

// Sum of a float array: each thread accumulates its grid-stride share in double, the block
// reduces through warp shuffles and shared memory, and writes one partial sum per block
// (the host adds the few partials). Reads n floats; writes gridDim.x doubles.
#define WARP_SIZE 32
#define MAX_WARPS 32

__device__ double warp_sum(double v) {
    for (int offset = WARP_SIZE / 2; offset > 0; offset /= 2) {
        v += __shfl_down_sync(0xffffffffu, v, offset);
    }
    return v;
}

__device__ void block_store_sum(double acc, double* __restrict__ partial) {
    __shared__ double warp_sums[MAX_WARPS];
    const int lane = threadIdx.x % WARP_SIZE;
    const int warp = threadIdx.x / WARP_SIZE;
    acc = warp_sum(acc);
    if (lane == 0) warp_sums[warp] = acc;
    __syncthreads();
    if (warp == 0) {
        const int warps = (blockDim.x + WARP_SIZE - 1) / WARP_SIZE;
        double v = lane < warps ? warp_sums[lane] : 0.0;
        v = warp_sum(v);
        if (lane == 0) partial[blockIdx.x] = v;
    }
}

extern "C" __global__ void reduce_sum(const float* __restrict__ in, double* __restrict__ partial, long long n) {
    double acc = 0.0;
    GRID_STRIDE_LOOP(i, n) { acc += in[i]; }
    block_store_sum(acc, partial);
}

extern "C" __global__ void reduce_sum_vec4(const float4* __restrict__ in, double* __restrict__ partial, long long n4) {
    double acc = 0.0;
    GRID_STRIDE_LOOP(i, n4) {
        const float4 v = in[i];
        acc += (double)v.x + (double)v.y + (double)v.z + (double)v.w;
    }
    block_store_sum(acc, partial);
}

// Fused bias + GELU (tanh approximation, as GPT-2 and Megatron-LM use it) over a row-major
// rows x cols activation: out = gelu(x + bias[col]). Reads x and bias, writes out, in one pass.
#define GELU_SQRT_2_OVER_PI 0.7978845608028654f
#define GELU_CUBIC 0.044715f

extern "C" __global__ void bias_gelu(const float* __restrict__ x, const float* __restrict__ bias,
                                     float* __restrict__ out, long long rows, long long cols) {
    const long long n = rows * cols;
    GRID_STRIDE_LOOP(i, n) {
        const float v = x[i] + bias[i % cols];
        out[i] = 0.5f * v * (1.0f + tanhf(GELU_SQRT_2_OVER_PI * (v + GELU_CUBIC * v * v * v)));
    }
}

// Nothing at all: its launch-to-launch time is the launch latency.
extern "C" __global__ void empty_kernel() {}
