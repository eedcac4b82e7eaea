/* The quant layer's Check suites, run by quant_main.c. */
#ifndef MOEP_QUANT_SUITES_H
#define MOEP_QUANT_SUITES_H

#include "test_util.h"

/*
 * Element-wise checks in big loops: ck_assert costs a syscall per call in
 * fork mode, so loops record the first failing element and line, and the
 * test asserts once at the end. Declare `TEST_FIRST_BAD;` before the loop.
 */
#define TEST_FIRST_BAD \
    long long first_bad_ = -1;  \
    int bad_line_ = 0
#define TEST_EXPECT(cond, idx)                                                   \
    do {                                                                         \
        if (!(cond) && first_bad_ < 0) first_bad_ = (idx), bad_line_ = __LINE__; \
    } while (0)
#define TEST_EXPECT_DONE()                                                      \
    ck_assert_msg(first_bad_ < 0, "element %lld fails the check on line %d", first_bad_, \
                  bad_line_)

Suite *moep_check_fp8_suite(void);
Suite *moep_check_fp4_suite(void);
Suite *moep_check_weights_quant_suite(void);
Suite *moep_check_act_fp8_suite(void);

#endif
