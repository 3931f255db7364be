// The GPU engine's CUDA kernels: gpu_kernels.py compiles them through CuPy and holds them to their numpy twins.
// One thread per (stream b, unit j) of a step. REAL is float or double. sigmoid is written through tanh, as
// layers.sigmoid is, so that it never overflows.
#define SIGMOID(x) ((REAL)0.5 * ((REAL)1 + tanh((REAL)0.5 * (x))))

// A step's elementwise work for unit j of one stream, whose row of G is zb: layers.lstm_step_forward from z of
// the four gates (the activated gates go back into zb; c and h out), and layers.lstm_step_backward from the
// gradient dh of h (zb becomes dL/dz; dc_next, dL/dc from the next step, becomes dL/dc_prev).
__device__ inline void cell_forward(REAL* zb, int H, int j, REAL zi, REAL zf, REAL zo, REAL zg, REAL c_prev,
                                    REAL* c, REAL* h) {
    REAL i = SIGMOID(zi), f = SIGMOID(zf), o = SIGMOID(zo), g = tanh(zg);
    REAL cc = f * c_prev + i * g;
    *c = cc;
    *h = o * tanh(cc);
    zb[j] = i; zb[H + j] = f; zb[2 * H + j] = o; zb[3 * H + j] = g;
}

__device__ inline void cell_backward(REAL* zb, int H, int j, REAL dh, REAL c_prev, REAL c, REAL* dc_next) {
    REAL i = zb[j], f = zb[H + j], o = zb[2 * H + j], g = zb[3 * H + j];
    REAL tc = tanh(c);
    REAL dc = *dc_next + dh * o * ((REAL)1 - tc * tc);
    zb[j] = dc * g * i * ((REAL)1 - i);
    zb[H + j] = dc * c_prev * f * ((REAL)1 - f);
    zb[2 * H + j] = dh * tc * o * ((REAL)1 - o);
    zb[3 * H + j] = dc * i * ((REAL)1 - g * g);
    *dc_next = dc * f;
}

extern "C" __global__ void step_forward(REAL* G, const REAL* c_prev, REAL* c, REAL* h, int B, int H) {
    // G: (B, 4H) z of the step, [i, f, o, g] blocks; becomes the activated gates
    int k = blockIdx.x * blockDim.x + threadIdx.x;
    if (k >= B * H) return;
    int b = k / H, j = k - b * H;
    REAL* zb = G + (size_t)b * 4 * H;
    cell_forward(zb, H, j, zb[j], zb[H + j], zb[2 * H + j], zb[3 * H + j], c_prev[k], c + k, h + k);
}

extern "C" __global__ void step_backward(const REAL* dh_out, const REAL* dh_next, REAL* dc_next, REAL* G,
                                         const REAL* c_prev, const REAL* c, int B, int H) {
    // G: (B, 4H) the step's activated gates; becomes dL/dz. dc_next: dL/dc from the next step; becomes dL/dc_prev
    int k = blockIdx.x * blockDim.x + threadIdx.x;
    if (k >= B * H) return;
    int b = k / H, j = k - b * H;
    cell_backward(G + (size_t)b * 4 * H, H, j, dh_out[k] + dh_next[k], c_prev[k], c[k], dc_next + k);
}

// The fused steps, for small batches: the step's product and its elementwise work in one launch. A block
// computes UNITS units (forward) or WARPS units (backward) of TB rows; the partial sums are added in a fixed
// order, so the result is the same at every run.
#define UNITS 8
#define WARPS 8
#define MC 64
constexpr int TB = sizeof(REAL) == 8 ? 16 : 32;
constexpr int BLOCK = WARPS * 32;  // the threads of a block: gpu_kernels.THREADS

extern "C" __global__ void step_forward_fused(REAL* G, const REAL* h_prev, const REAL* Wh, const REAL* c_prev,
                                              REAL* c, REAL* h, int B, int H) {
    // z = G + h_prev Wh for the 4 gates of UNITS units (32 columns, one a lane), each warp a slice of the sum
    __shared__ REAL part[WARPS][TB][32];
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    int j0 = blockIdx.x * UNITS, b0 = blockIdx.y * TB;
    int nb = min(TB, B - b0);
    int q = lane / UNITS, j = j0 + lane % UNITS;
    REAL acc[TB];
    #pragma unroll
    for (int r = 0; r < TB; r++) acc[r] = 0;
    int span = (H + WARPS - 1) / WARPS, k0 = warp * span, k1 = min(H, k0 + span);
    if (j < H) {
        const REAL* w = Wh + (size_t)q * H + j;
        const REAL* hp = h_prev + (size_t)b0 * H;
        #pragma unroll 4
        for (int k = k0; k < k1; k++) {
            REAL wk = w[(size_t)k * 4 * H];
            #pragma unroll
            for (int r = 0; r < TB; r++)
                if (r < nb) acc[r] += hp[(size_t)r * H + k] * wk;
        }
    }
    #pragma unroll
    for (int r = 0; r < TB; r++) part[warp][r][lane] = acc[r];
    __syncthreads();
    int r = threadIdx.x / UNITS, u = threadIdx.x % UNITS;     // now one thread per (row, unit)
    j = j0 + u;
    if (r >= nb || j >= H) return;
    int b = b0 + r;
    size_t k = (size_t)b * H + j;
    REAL* zb = G + (size_t)b * 4 * H;
    REAL zq[4];
    for (int g = 0; g < 4; g++) {
        REAL s = 0;
        for (int w = 0; w < WARPS; w++) s += part[w][r][g * UNITS + u];
        zq[g] = zb[g * H + j] + s;
    }
    cell_forward(zb, H, j, zq[0], zq[1], zq[2], zq[3], c_prev[k], c + k, h + k);
}

extern "C" __global__ void step_backward_fused(const REAL* dz_next, const REAL* Wh, const REAL* dh_out,
                                               REAL* dh_next, REAL* dc_next, REAL* G, const REAL* c_prev,
                                               const REAL* c, int B, int H, int last) {
    // dh_next = dz_next Wh^T (or, at the window's last step, the given dh_next) for WARPS units (one a warp)
    // of TB rows (one a lane), then step_backward on them; dz_next is staged in shared memory MC columns at a time
    __shared__ REAL s[MC][TB + 1];
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    int j = blockIdx.x * WARPS + warp, b0 = blockIdx.y * TB;
    int nb = min(TB, B - b0);
    // Four partial sums (column mm goes to a[mm % 4]), so that four products are in flight at a time
    REAL a[4] = {0, 0, 0, 0};
    if (!last) {
        for (int m0 = 0; m0 < 4 * H; m0 += MC) {
            __syncthreads();
            #pragma unroll
            for (int i = 0; i < MC * TB / BLOCK; i++) {  // each thread's loads at once
                int e = threadIdx.x + i * BLOCK, rr = e / MC, mm = e % MC;
                s[mm][rr] = (rr < nb && m0 + mm < 4 * H) ? dz_next[(size_t)(b0 + rr) * 4 * H + m0 + mm] : 0;
            }
            __syncthreads();
            if (j < H && lane < nb) {
                const REAL* w = Wh + (size_t)j * 4 * H + m0;
                if (m0 + MC <= 4 * H) {
                    #pragma unroll
                    for (int mm = 0; mm < MC; mm++) a[mm % 4] += w[mm] * s[mm][lane];
                } else {
                    for (int mm = 0; mm < 4 * H - m0; mm++) a[mm % 4] += w[mm] * s[mm][lane];
                }
            }
        }
    }
    REAL acc = (a[0] + a[1]) + (a[2] + a[3]);
    if (j >= H || lane >= nb) return;
    int b = b0 + lane;
    size_t k = (size_t)b * H + j;
    if (last) acc = dh_next[k];
    cell_backward(G + (size_t)b * 4 * H, H, j, dh_out[k] + acc, c_prev[k], c[k], dc_next + k);
}

extern "C" __global__ void softmax_xent(REAL* z, const int* y, double* logp_y, int N, int V) {
    // z: (N, V) logits, replaced by dL/dlogits = (softmax - onehot(y)) / N; logp_y[r] = ln softmax(z_r)[y_r]
    int r = blockIdx.x * blockDim.x + threadIdx.x;
    if (r >= N) return;
    REAL* zr = z + (size_t)r * V;
    REAL m = zr[0];
    for (int v = 1; v < V; v++) m = max(m, zr[v]);
    REAL s = 0;
    for (int v = 0; v < V; v++) s += exp(zr[v] - m);
    logp_y[r] = (double)(zr[y[r]] - m - log(s));
    for (int v = 0; v < V; v++) zr[v] = exp(zr[v] - m) / s;
    zr[y[r]] -= (REAL)1;
    for (int v = 0; v < V; v++) zr[v] /= (REAL)N;
}

extern "C" __global__ void rmsprop(REAL* p, const REAL* g, REAL* cache, const double* norm2, double clip,
                                   REAL lr, REAL rho, REAL one_minus_rho, REAL eps, REAL lr_decay,
                                   long long n, long long n_decay) {
    // Every parameter p[k] with gradient g[k]; the first n_decay (the weight matrices) also decay
    long long k = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (k >= n) return;
    REAL gk = g[k];
    if (clip > 0) {
        double norm = sqrt(*norm2);
        if (norm > clip) gk = gk * (REAL)(clip / norm);
    }
    REAL ck = cache[k] * rho + one_minus_rho * (gk * gk);
    cache[k] = ck;
    REAL u = gk / (sqrt(ck) + eps) * lr;
    if (k < n_decay) u += lr_decay * p[k];
    p[k] -= u;
}
