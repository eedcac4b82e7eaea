/* The `moep` command: bench (the MoE layer end to end) and info (what this
 * build and machine offer). */
#include <stdio.h>
#include <string.h>

int bench_main(int argc, char **argv);
int info_main(int argc, char **argv);

static void usage(void) {
    fprintf(stderr,
            "usage: moep <command> [options]\n"
            "  bench   run an MoE layer over local ranks, verify it, print timings\n"
            "  info    list transports (compiled in, usable here) and the CPU features\n"
            "  moep bench --help for options\n");
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage();
        return 2;
    }
    if (strcmp(argv[1], "bench") == 0) {
        if (argc > 2 && (strcmp(argv[2], "--help") == 0 || strcmp(argv[2], "-h") == 0)) {
            extern void bench_usage(void);
            bench_usage();
            return 0;
        }
        return bench_main(argc - 2, argv + 2);
    }
    if (strcmp(argv[1], "info") == 0) return info_main(argc - 2, argv + 2);
    usage();
    return 2;
}
