// Per-element math of the avfuse pre-processing kernels, shared by the GPU and CPU builds.
//
// Every function here is __host__ __device__: nvcc compiles it into the CUDA kernels
// (avf_kernels.cu) and g++ compiles the very same source into a small host library
// (avf_host.cpp) that the tests check against the numpy reference
// (avfuse/kernels/reference.py). So what runs on a GPU is the code the tests ran,
// even on machines without one.
//
// Definitions follow reference.py exactly: frames without centring, periodic Hann of
// win_length centred in n_fft, |rfft|^2, HTK mel triangles without area normalisation,
// 10 log10(max(mel, floor)), (x - mean) / std; BT.601 limited-range YUV with nearest
// 2x2 chroma and a clip to [0, 1]; area (box) resampling with fractional edge weights.
#pragma once

#include <math.h>
#include <stdint.h>

#if defined(__CUDACC__)
#define AVF_HD __host__ __device__ __forceinline__
#else
#define AVF_HD inline
#endif

#define AVF_PI 3.14159265358979323846

enum AvfPixelFormat { AVF_BGR24 = 0, AVF_RGB24 = 1, AVF_GRAY = 2, AVF_NV12 = 3, AVF_I420 = 4 };
enum AvfColour { AVF_COLOUR_GRAY = 0, AVF_COLOUR_RGB = 1, AVF_COLOUR_BGR = 2 };

// The manifest's preprocess.audio block (reference.AudioParams).
struct AvfAudioParams {
  int sample_rate;
  int n_fft;  // power of two
  int win_length;
  int hop_length;
  int n_mels;
  float fmin;
  float fmax;
  float log_floor;
  float mean;
  float std;
};

// The manifest's preprocess.video block (reference.VideoParams), up to 3 channels.
struct AvfVideoParams {
  int height;
  int width;
  int colour;  // AvfColour
  float mean[3];
  float std[3];
};

// ------------------------------------------------------------------------------ audio

AVF_HD int avf_n_frames(int n_samples, int n_fft, int hop) {
  return n_samples < n_fft ? 0 : 1 + (n_samples - n_fft) / hop;
}

// Periodic Hann of win_length taps, zero-padded and centred in n_fft.
AVF_HD float avf_hann(int n, int win_length, int n_fft) {
  int left = (n_fft - win_length) / 2;
  int i = n - left;
  if (i < 0 || i >= win_length) return 0.0f;
  return (float)(0.5 - 0.5 * cos(2.0 * AVF_PI * (double)i / (double)win_length));
}

AVF_HD double avf_hz_to_mel(double hz) { return 2595.0 * log10(1.0 + hz / 700.0); }

AVF_HD double avf_mel_to_hz(double mel) { return 700.0 * (pow(10.0, mel / 2595.0) - 1.0); }

// Edge i (0..n_mels+1) of the mel filters in Hz.
AVF_HD double avf_mel_edge_hz(int i, const AvfAudioParams& p) {
  double lo = avf_hz_to_mel(p.fmin), hi = avf_hz_to_mel(p.fmax);
  return avf_mel_to_hz(lo + (hi - lo) * (double)i / (double)(p.n_mels + 1));
}

// Weight of FFT bin k in mel filter q (triangle between edges q, q+1, q+2).
AVF_HD float avf_mel_weight(int q, int k, const AvfAudioParams& p) {
  double f = (double)k * ((double)p.sample_rate / 2.0) / (double)(p.n_fft / 2);
  double e0 = avf_mel_edge_hz(q, p), e1 = avf_mel_edge_hz(q + 1, p), e2 = avf_mel_edge_hz(q + 2, p);
  double lower = (f - e0) / (e1 - e0), upper = (e2 - f) / (e2 - e1);
  double w = lower < upper ? lower : upper;
  return w > 0.0 ? (float)w : 0.0f;
}

// Normalised log-mel value of one mel energy.
AVF_HD float avf_log_mel_value(float mel, const AvfAudioParams& p) {
  float v = mel > p.log_floor ? mel : p.log_floor;
  return (10.0f * log10f(v) - p.mean) / p.std;
}

// Frame + window of z[k] = x[2k] + i x[2k+1] (the half-size complex FFT input), k < n_fft/2.
AVF_HD void avf_load_pair(const float* frame, int k, const AvfAudioParams& p, float* re, float* im) {
  re[k] = frame[2 * k] * avf_hann(2 * k, p.win_length, p.n_fft);
  im[k] = frame[2 * k + 1] * avf_hann(2 * k + 1, p.win_length, p.n_fft);
}

// Butterfly t (0 <= t < m/2) of the radix-2 decimation-in-frequency stage with half-span h
// of an m-point complex FFT in place; after the stages h = m/2, m/4, .., 1 the output is
// in bit-reversed order. Every butterfly of a stage is independent (one GPU thread each).
AVF_HD void avf_fft_dif_butterfly(float* re, float* im, int h, int t) {
  int j = t % h;
  int a = (t / h) * 2 * h + j, b = a + h;
  double ang = -AVF_PI * (double)j / (double)h;
  float wr = (float)cos(ang), wi = (float)sin(ang);
  float ar = re[a], ai = im[a], br = re[b], bi = im[b];
  re[a] = ar + br;
  im[a] = ai + bi;
  float dr = ar - br, di = ai - bi;
  re[b] = dr * wr - di * wi;
  im[b] = dr * wi + di * wr;
}

AVF_HD int avf_bit_reverse(int i, int bits) {
  int r = 0;
  for (int b = 0; b < bits; ++b) r |= ((i >> b) & 1) << (bits - 1 - b);
  return r;
}

// |X[k]|^2 of the n_fft-point real FFT from the bit-reversed half-size complex FFT Z.
AVF_HD float avf_power_bin(const float* re, const float* im, int m, int bits, int k) {
  int k1 = avf_bit_reverse(k % m, bits), k2 = avf_bit_reverse((m - k) % m, bits);
  float zr = re[k1], zi = im[k1], yr = re[k2], yi = -im[k2];
  float er = 0.5f * (zr + yr), ei = 0.5f * (zi + yi);
  float dr = 0.5f * (zr - yr), di = 0.5f * (zi - yi);
  double ang = -AVF_PI * (double)k / (double)m;
  float cr = (float)cos(ang), ci = (float)sin(ang);
  float pr = dr * cr - di * ci, pi = dr * ci + di * cr;  // X = E - i c D
  float xr = er + pi, xi = ei - pr;
  return xr * xr + xi * xi;
}

// Mel energy of filter q from the power spectrum (only the bins inside its triangle).
AVF_HD float avf_mel_band(const float* power, int q, const AvfAudioParams& p) {
  double bin_hz = ((double)p.sample_rate / 2.0) / (double)(p.n_fft / 2);
  int k0 = (int)floor(avf_mel_edge_hz(q, p) / bin_hz);
  int k1 = (int)ceil(avf_mel_edge_hz(q + 2, p) / bin_hz);
  if (k0 < 0) k0 = 0;
  if (k1 > p.n_fft / 2) k1 = p.n_fft / 2;
  float acc = 0.0f;
  for (int k = k0; k <= k1; ++k) acc += avf_mel_weight(q, k, p) * power[k];
  return acc;
}

// ------------------------------------------------------------------------------ video

AVF_HD float avf_clip01(float v) { return v < 0.0f ? 0.0f : (v > 1.0f ? 1.0f : v); }

// RGB in [0, 1] of pixel (y, x) of a frame buffer (rows of `width * bytes-per-pixel`).
AVF_HD void avf_pixel_rgb(const uint8_t* f, int fmt, int height, int width, int y, int x,
                          float* r, float* g, float* b) {
  if (fmt == AVF_BGR24 || fmt == AVF_RGB24) {
    const uint8_t* px = f + ((size_t)y * width + x) * 3;
    float c0 = px[0] / 255.0f, c1 = px[1] / 255.0f, c2 = px[2] / 255.0f;
    *r = fmt == AVF_BGR24 ? c2 : c0;
    *g = c1;
    *b = fmt == AVF_BGR24 ? c0 : c2;
    return;
  }
  if (fmt == AVF_GRAY) {
    *r = *g = *b = f[(size_t)y * width + x] / 255.0f;
    return;
  }
  size_t luma = (size_t)height * width;
  uint8_t u8, v8;
  if (fmt == AVF_NV12) {
    const uint8_t* uv = f + luma + (size_t)(y / 2) * width + 2 * (x / 2);
    u8 = uv[0];
    v8 = uv[1];
  } else {
    size_t i = (size_t)(y / 2) * (width / 2) + x / 2;
    u8 = f[luma + i];
    v8 = f[luma + luma / 4 + i];
  }
  float yf = (f[(size_t)y * width + x] - 16.0f) * (255.0f / 219.0f);
  float uf = (u8 - 128.0f) * (255.0f / 224.0f), vf = (v8 - 128.0f) * (255.0f / 224.0f);
  *r = avf_clip01((yf + 1.402f * vf) / 255.0f);
  *g = avf_clip01((yf - 0.344136f * uf - 0.714136f * vf) / 255.0f);
  *b = avf_clip01((yf + 1.772f * uf) / 255.0f);
}

// Channel c of the model's colour from RGB.
AVF_HD float avf_colour_value(int colour, int c, float r, float g, float b) {
  if (colour == AVF_COLOUR_GRAY) return 0.299f * r + 0.587f * g + 0.114f * b;
  if (colour == AVF_COLOUR_RGB) return c == 0 ? r : (c == 1 ? g : b);
  return c == 0 ? b : (c == 1 ? g : r);
}

// Input span [*i0, *i1) that output index j of an area resize n_in -> n_out covers.
AVF_HD void avf_area_span(int n_in, int n_out, int j, int* i0, int* i1) {
  double s = (double)n_in / (double)n_out;
  *i0 = (int)floor(j * s);
  int hi = (int)ceil((j + 1) * s);
  *i1 = hi < n_in ? hi : n_in;
}

// Unnormalised overlap of input cell i with output cell j (the caller divides by the sum).
AVF_HD float avf_area_overlap(int n_in, int n_out, int j, int i) {
  double s = (double)n_in / (double)n_out;
  double lo = j * s, hi = (j + 1) * s;
  double a = lo > i ? lo : (double)i, b = hi < i + 1 ? hi : (double)(i + 1);
  return b > a ? (float)(b - a) : 0.0f;
}

// One element (c, oy, ox) of the model's CHW tensor: colour conversion, area resize and
// normalisation fused. A GPU thread computes one element; the host build loops.
AVF_HD float avf_image_value(const uint8_t* f, int fmt, int height, int width,
                             const AvfVideoParams& v, int c, int oy, int ox) {
  int y0, y1, x0, x1;
  avf_area_span(height, v.height, oy, &y0, &y1);
  avf_area_span(width, v.width, ox, &x0, &x1);
  float acc = 0.0f, wsum_y = 0.0f, wsum_x = 0.0f;
  for (int x = x0; x < x1; ++x) wsum_x += avf_area_overlap(width, v.width, ox, x);
  for (int y = y0; y < y1; ++y) {
    float wy = avf_area_overlap(height, v.height, oy, y);
    wsum_y += wy;
    float row = 0.0f;
    for (int x = x0; x < x1; ++x) {
      float r, g, b;
      avf_pixel_rgb(f, fmt, height, width, y, x, &r, &g, &b);
      row += avf_area_overlap(width, v.width, ox, x) * avf_colour_value(v.colour, c, r, g, b);
    }
    acc += wy * row;
  }
  float value = acc / (wsum_y * wsum_x);
  return (value - v.mean[c]) / v.std[c];
}

// Bytes of one frame buffer of a pixel format.
AVF_HD size_t avf_frame_bytes(int fmt, int height, int width) {
  size_t px = (size_t)height * width;
  if (fmt == AVF_BGR24 || fmt == AVF_RGB24) return px * 3;
  if (fmt == AVF_GRAY) return px;
  return px * 3 / 2;
}
