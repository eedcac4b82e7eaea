#include "bench_options.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void bench_options_default(bench_options_t *o) {
    /* A small DeepSeek-like shape (sigmoid grouped top-8 of 64, 8 groups keep
     * 4, one shared expert) that runs in seconds on 2 cores. */
    memset(o, 0, sizeof *o);
    o->experts = 64;
    o->top_k = 8;
    o->n_group = 8;
    o->topk_group = 4;
    o->hidden = 512;
    o->intermediate = 256;
    o->shared_intermediate = 256;
    o->tokens = 256;
    o->route = MOEP_ROUTE_SIGMOID_GROUPED;
    o->dtype = MOEP_DTYPE_F32;
    o->weights = MOEP_WEIGHTS_F32;
    o->ranks = 1;
    o->iters = 10;
    o->warmup = 2;
    o->seed = 42;
}

void bench_usage(void) {
    fprintf(stderr,
            "usage: moep bench [options]\n"
            "  --experts N        routed experts (64)\n"
            "  --topk K           experts per token (8)\n"
            "  --groups G/KEEP    DeepSeek-V3 groups and groups kept (8/4)\n"
            "  --hidden H         hidden size (512)\n"
            "  --inter I          routed expert intermediate size (256)\n"
            "  --shared-inter I   shared expert intermediate size, 0 = none (256)\n"
            "  --tokens T         tokens per rank (256)\n"
            "  --route KIND       softmax_topk | topk_softmax | sigmoid_grouped | hash\n"
            "  --max-ranks M      device-limited routing: experts from at most M ranks\n"
            "  --dtype f32|bf16   activations and weights (f32)\n"
            "  --weights FMT      routed expert weights: f32 | bf16 | fp8 | mxfp4 | nvfp4\n"
            "  --wire f32|bf16|fp8  dispatch wire format (as dtype)\n"
            "  --threads N        OpenMP threads per rank (cores / ranks)\n"
            "  --ranks N          ranks, as processes (threads for --transport local)\n"
            "  --transport NAME   local | ucx | libfabric | nccl (MOEP_TRANSPORT, else probe)\n"
            "  --device cpu|cuda  where the layer runs (cpu); cuda: one process and GPU per\n"
            "                     rank over nccl, bf16 activations, --weights fp8 (default),\n"
            "                     mxfp4 or nvfp4, FP8 shared expert (CUDA build only)\n"
            "  --iters N, --warmup N, --seed S\n");
}

static int parse_int(const char *name, const char *v, int32_t lo, int32_t hi, int32_t *out) {
    char *end;
    long x = v ? strtol(v, &end, 10) : 0;
    if (v == NULL || *end != '\0' || x < lo || x > hi) {
        fprintf(stderr, "moep bench: %s needs an integer in [%d, %d]\n", name, lo, hi);
        return 2;
    }
    *out = (int32_t)x;
    return 0;
}

static int parse_dtype(const char *name, const char *v, moep_dtype_t *out) {
    if (v && strcmp(v, "f32") == 0) *out = MOEP_DTYPE_F32;
    else if (v && strcmp(v, "bf16") == 0) *out = MOEP_DTYPE_BF16;
    else if (v && strcmp(v, "fp8") == 0 && strcmp(name, "--wire") == 0) *out = MOEP_DTYPE_FP8_E4M3;
    else {
        fprintf(stderr, "moep bench: bad %s '%s'\n", name, v ? v : "");
        return 2;
    }
    return 0;
}

static int parse_weights(const char *v, moep_weight_format_t *out) {
    static const char *names[] = {"f32", "bf16", "fp8", "mxfp4", "nvfp4"};
    for (int i = 0; i < 5; i++)
        if (v && strcmp(v, names[i]) == 0) {
            *out = (moep_weight_format_t)i;
            return 0;
        }
    fprintf(stderr, "moep bench: bad --weights '%s'\n", v ? v : "");
    return 2;
}

static int parse_device(const char *v, moep_device_t *out) {
    if (v && strcmp(v, "cpu") == 0) {
        *out = MOEP_DEVICE_CPU;
        return 0;
    }
    if (v && strcmp(v, "cuda") == 0) {
#ifdef MOEP_HAVE_CUDA
        *out = MOEP_DEVICE_CUDA;
        return 0;
#else
        fprintf(stderr, "moep bench: --device cuda: CUDA support is not compiled in (build with "
                        "--config=cuda, e.g. tools/gpu_bundle.sh)\n");
        return 2;
#endif
    }
    fprintf(stderr, "moep bench: bad --device '%s' (cpu | cuda)\n", v ? v : "");
    return 2;
}

/* --device cuda: the GPU layer's formats (api/moep_cuda.h); 0 or 2. */
static int settle_cuda(bench_options_t *o, int dtype_set, int weights_set) {
    if (dtype_set && o->dtype != MOEP_DTYPE_BF16) {
        fprintf(stderr, "moep bench: --device cuda runs bf16 activations (--dtype bf16)\n");
        return 2;
    }
    o->dtype = MOEP_DTYPE_BF16;
    if (!weights_set) o->weights = MOEP_WEIGHTS_FP8_E4M3;
    if (o->weights != MOEP_WEIGHTS_FP8_E4M3 && o->weights != MOEP_WEIGHTS_MXFP4 &&
        o->weights != MOEP_WEIGHTS_NVFP4) {
        fprintf(stderr, "moep bench: --device cuda needs --weights fp8, mxfp4 or nvfp4 (the GPU "
                        "expert FFN has no f32/bf16-weight path)\n");
        return 2;
    }
    if (o->wire != 0 && o->wire != MOEP_DTYPE_BF16) {
        fprintf(stderr, "moep bench: --device cuda sends bf16 rows (no --wire %s on the GPU path)\n",
                moep_dtype_name(o->wire));
        return 2;
    }
    if (o->transport == NULL) o->transport = "nccl";
    if (strcmp(o->transport, "nccl") != 0) {
        fprintf(stderr, "moep bench: --device cuda needs --transport nccl\n");
        return 2;
    }
    return 0;
}

int bench_options_parse(bench_options_t *o, int argc, char **argv) {
    int dtype_set = 0, weights_set = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int rc = 0, used = 1;
        if (strcmp(a, "--experts") == 0) rc = parse_int(a, v, 1, 4096, &o->experts);
        else if (strcmp(a, "--topk") == 0) rc = parse_int(a, v, 1, 64, &o->top_k);
        else if (strcmp(a, "--groups") == 0) {
            if (v == NULL || sscanf(v, "%d/%d", &o->n_group, &o->topk_group) != 2) {
                fprintf(stderr, "moep bench: --groups needs G/KEEP\n");
                rc = 2;
            }
        } else if (strcmp(a, "--hidden") == 0) rc = parse_int(a, v, 1, 1 << 16, &o->hidden);
        else if (strcmp(a, "--inter") == 0) rc = parse_int(a, v, 1, 1 << 16, &o->intermediate);
        else if (strcmp(a, "--shared-inter") == 0) rc = parse_int(a, v, 0, 1 << 16, &o->shared_intermediate);
        else if (strcmp(a, "--tokens") == 0) rc = parse_int(a, v, 0, 1 << 20, &o->tokens);
        else if (strcmp(a, "--max-ranks") == 0) rc = parse_int(a, v, 0, 1024, &o->max_ranks_per_token);
        else if (strcmp(a, "--route") == 0) {
            if (v == NULL || moep_route_kind_parse(v, &o->route) != MOEP_OK) {
                fprintf(stderr, "moep bench: bad --route '%s'\n", v ? v : "");
                rc = 2;
            }
        } else if (strcmp(a, "--dtype") == 0) rc = parse_dtype(a, v, &o->dtype), dtype_set = 1;
        else if (strcmp(a, "--wire") == 0) rc = parse_dtype(a, v, &o->wire);
        else if (strcmp(a, "--weights") == 0) rc = parse_weights(v, &o->weights), weights_set = 1;
        else if (strcmp(a, "--device") == 0) rc = parse_device(v, &o->device);
        else if (strcmp(a, "--threads") == 0) rc = parse_int(a, v, 0, 1024, &o->threads);
        else if (strcmp(a, "--ranks") == 0) rc = parse_int(a, v, 1, 256, &o->ranks);
        else if (strcmp(a, "--transport") == 0) {
            o->transport = v;
            if (v == NULL) rc = 2;
        } else if (strcmp(a, "--iters") == 0) rc = parse_int(a, v, 1, 100000, &o->iters);
        else if (strcmp(a, "--warmup") == 0) rc = parse_int(a, v, 0, 100000, &o->warmup);
        else if (strcmp(a, "--seed") == 0) {
            if (v == NULL) rc = 2;
            else o->seed = strtoull(v, NULL, 0);
        } else {
            fprintf(stderr, "moep bench: unknown option '%s'\n", a);
            bench_usage();
            return 2;
        }
        if (rc != 0) return rc;
        i += used;
    }
    if (o->device == MOEP_DEVICE_CUDA) return settle_cuda(o, dtype_set, weights_set);
    if (o->weights == MOEP_WEIGHTS_F32 && o->dtype == MOEP_DTYPE_BF16) o->weights = MOEP_WEIGHTS_BF16;
    return 0;
}
