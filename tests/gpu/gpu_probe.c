#include "gpu_probe.h"

#include <cuda_runtime.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

/* In a child: CUDA must not be initialised in a process that forks ranks. */
int gpu_count(void) {
    pid_t pid = fork();
    if (pid == 0) {
        int n = 0;
        if (cudaGetDeviceCount(&n) != cudaSuccess) n = 0;
        _exit(n > 100 ? 100 : n);
    }
    int status = 0;
    if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status)) return 0;
    return WEXITSTATUS(status);
}

int gpu_skip(int need, const char *what) {
    int n = gpu_count();
    if (n >= need) return 0;
    printf("SKIP %s: needs %d CUDA GPU(s), found %d\n", what, need, n);
    fflush(stdout);
    return 1;
}
