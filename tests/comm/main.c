/* Runner for the communicator suites (dispatch / combine over every transport). */
#include "test_util.h"

Suite *comm_args_suite(void);
Suite *dispatch_suite(void);
Suite *faults_suite(void);

int main(void) {
    Suite *suites[] = {comm_args_suite(), dispatch_suite(), faults_suite()};
    return test_run_suites(suites, 3);
}
