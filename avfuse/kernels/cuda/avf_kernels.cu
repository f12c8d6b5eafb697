// CUDA pre-processing kernels: batched log-mel for many streams and fused image
// pre-processing. All per-element math lives in avf_math.cuh (also compiled for the
// CPU by avf_host.cpp and tested there against the numpy reference).
//
// The entry points take device pointers and a stream, so a backend can feed their
// output to inference without a copy; the avf_cuda_* helpers let Python (ctypes) drive
// them without CuPy or torch.
#include <cuda_runtime.h>

#include "avf_math.cuh"

namespace {

// One block per (frame, stream); m/2 threads, one butterfly each per FFT stage.
__global__ void log_mel_kernel(const float* audio, int n_samples, int frames, int bits,
                               AvfAudioParams p, float* out) {
  extern __shared__ float smem[];
  int m = p.n_fft / 2;
  float* re = smem;
  float* im = re + m;
  float* power = im + m;
  int fr = blockIdx.x, b = blockIdx.y, t = threadIdx.x;
  const float* frame = audio + (size_t)b * n_samples + (size_t)fr * p.hop_length;
  for (int k = t; k < m; k += blockDim.x) avf_load_pair(frame, k, p, re, im);
  __syncthreads();
  for (int h = m / 2; h >= 1; h /= 2) {
    for (int u = t; u < m / 2; u += blockDim.x) avf_fft_dif_butterfly(re, im, h, u);
    __syncthreads();
  }
  for (int k = t; k <= m; k += blockDim.x) power[k] = avf_power_bin(re, im, m, bits, k);
  __syncthreads();
  for (int q = t; q < p.n_mels; q += blockDim.x) {
    float mel = avf_mel_band(power, q, p);
    out[((size_t)b * p.n_mels + q) * frames + fr] = avf_log_mel_value(mel, p);
  }
}

// One thread per output element (b, c, oy, ox).
__global__ void image_kernel(const uint8_t* frames, int batch, int fmt, int height, int width,
                             size_t frame_bytes, AvfVideoParams v, int chans, float* out) {
  size_t plane = (size_t)v.height * v.width;
  size_t total = (size_t)batch * chans * plane;
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total;
       i += (size_t)gridDim.x * blockDim.x) {
    size_t b = i / (chans * plane), rem = i % (chans * plane);
    int c = (int)(rem / plane), pix = (int)(rem % plane);
    out[i] = avf_image_value(frames + b * frame_bytes, fmt, height, width, v, c,
                             pix / v.width, pix % v.width);
  }
}

}  // namespace

extern "C" {

// d_audio (batch, n_samples) -> d_out (batch, n_mels, frames), on `stream`; 0 on success.
int avf_cuda_log_mel(const float* d_audio, int batch, int n_samples, const AvfAudioParams* p,
                     float* d_out, cudaStream_t stream) {
  int m = p->n_fft / 2, bits = 0;
  while ((1 << bits) < m) ++bits;
  if ((1 << bits) != m || m > 2048) return 1;
  int frames = avf_n_frames(n_samples, p->n_fft, p->hop_length);
  if (frames <= 0) return 2;
  int threads = m / 2 < 32 ? 32 : (m / 2 > 1024 ? 1024 : m / 2);
  size_t smem = sizeof(float) * (3 * m + 1);
  log_mel_kernel<<<dim3(frames, batch), threads, smem, stream>>>(d_audio, n_samples, frames,
                                                                 bits, *p, d_out);
  return (int)cudaGetLastError();
}

// d_frames (batch, frame_bytes) -> d_out (batch, C, H, W), on `stream`; 0 on success.
int avf_cuda_image(const uint8_t* d_frames, int batch, int fmt, int height, int width,
                   const AvfVideoParams* v, float* d_out, cudaStream_t stream) {
  int chans = v->colour == AVF_COLOUR_GRAY ? 1 : 3;
  size_t total = (size_t)batch * chans * v->height * v->width;
  int threads = 256;
  int blocks = (int)((total + threads - 1) / threads);
  if (blocks > 65535) blocks = 65535;
  image_kernel<<<blocks, threads, 0, stream>>>(d_frames, batch, fmt, height, width,
                                               avf_frame_bytes(fmt, height, width), *v, chans,
                                               d_out);
  return (int)cudaGetLastError();
}

// Minimal runtime helpers so Python can use the kernels through ctypes alone.
int avf_cuda_device_count(void) {
  int n = 0;
  return cudaGetDeviceCount(&n) == cudaSuccess ? n : 0;
}
const char* avf_cuda_error_string(int code) { return cudaGetErrorString((cudaError_t)code); }
int avf_cuda_malloc(void** ptr, size_t bytes) { return (int)cudaMalloc(ptr, bytes); }
int avf_cuda_free(void* ptr) { return (int)cudaFree(ptr); }
int avf_cuda_h2d(void* dst, const void* src, size_t bytes) {
  return (int)cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice);
}
int avf_cuda_d2h(void* dst, const void* src, size_t bytes) {
  return (int)cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost);
}
int avf_cuda_synchronize(void) { return (int)cudaDeviceSynchronize(); }

}  // extern "C"
