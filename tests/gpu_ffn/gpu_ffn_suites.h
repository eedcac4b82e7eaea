/* Suites of the GPU expert FFN tests. */
#ifndef MOEP_GPU_FFN_SUITES_H
#define MOEP_GPU_FFN_SUITES_H

#include <check.h>

Suite *gpu_ffn_device_suite(void);
Suite *gpu_ffn_args_suite(void);

#endif
