/* The quant layer's Check suites, run by quant_main.c. */
#ifndef MOEP_QUANT_SUITES_H
#define MOEP_QUANT_SUITES_H

#include "test_util.h"

Suite *moep_check_fp8_suite(void);
Suite *moep_check_fp4_suite(void);
Suite *moep_check_weights_quant_suite(void);
Suite *moep_check_act_fp8_suite(void);

#endif
