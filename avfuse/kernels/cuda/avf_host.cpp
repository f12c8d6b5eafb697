// CPU build of the CUDA kernels' math (avf_math.cuh), compiled by g++.
//
// The loops mirror the CUDA grid of avf_kernels.cu one to one: where a kernel gives
// each thread one butterfly, bin, band or pixel, this file loops over them in the same
// order of stages. Tests load this library with ctypes and compare it with the numpy
// reference, so the GPU build is checked on machines without a GPU.
#include <stdlib.h>
#include <string.h>

#include "avf_math.cuh"

extern "C" {

// audio (batch, n_samples) float32 -> out (batch, n_mels, frames) float32; 0 on success.
int avf_host_log_mel(const float* audio, int batch, int n_samples, const AvfAudioParams* p,
                     float* out) {
  int m = p->n_fft / 2, bits = 0;
  while ((1 << bits) < m) ++bits;
  if ((1 << bits) != m) return 1;
  int frames = avf_n_frames(n_samples, p->n_fft, p->hop_length);
  if (frames <= 0) return 2;
  float* re = (float*)malloc(sizeof(float) * (3 * m + 1));
  if (!re) return 3;
  float* im = re + m;
  float* power = im + m;
  for (int b = 0; b < batch; ++b) {
    for (int fr = 0; fr < frames; ++fr) {
      const float* frame = audio + (size_t)b * n_samples + (size_t)fr * p->hop_length;
      for (int k = 0; k < m; ++k) avf_load_pair(frame, k, *p, re, im);
      for (int h = m / 2; h >= 1; h /= 2)
        for (int t = 0; t < m / 2; ++t) avf_fft_dif_butterfly(re, im, h, t);
      for (int k = 0; k <= m; ++k) power[k] = avf_power_bin(re, im, m, bits, k);
      for (int q = 0; q < p->n_mels; ++q) {
        float mel = avf_mel_band(power, q, *p);
        out[((size_t)b * p->n_mels + q) * frames + fr] = avf_log_mel_value(mel, *p);
      }
    }
  }
  free(re);
  return 0;
}

// frames (batch, frame_bytes) uint8 of one pixel format -> out (batch, C, H, W) float32.
int avf_host_image(const uint8_t* frames, int batch, int fmt, int height, int width,
                   const AvfVideoParams* v, float* out) {
  int chans = v->colour == AVF_COLOUR_GRAY ? 1 : 3;
  size_t bytes = avf_frame_bytes(fmt, height, width);
  size_t plane = (size_t)v->height * v->width;
  for (int b = 0; b < batch; ++b)
    for (int c = 0; c < chans; ++c)
      for (int oy = 0; oy < v->height; ++oy)
        for (int ox = 0; ox < v->width; ++ox)
          out[((size_t)b * chans + c) * plane + (size_t)oy * v->width + ox] =
              avf_image_value(frames + b * bytes, fmt, height, width, *v, c, oy, ox);
  return 0;
}

}  // extern "C"
