/* GPU presence for the GPU tests: they skip with a message without one. */
#ifndef MOEP_GPU_PROBE_H
#define MOEP_GPU_PROBE_H
int gpu_count(void);
/* 1 (and a SKIP line) when fewer than `need` GPUs are present. */
int gpu_skip(int need, const char *what);
#endif
