/* Hash routing (DeepSeek-V4 style): experts from a hash of the token, not
 * from a router GEMM. */
#include "routing_internal.h"

/* splitmix64's finaliser: a bijective 64-bit mix with good avalanche. */
static inline uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

#define GOLDEN_GAMMA 0x9e3779b97f4a7c15ull

void moep__hash_experts(int64_t token_id, int32_t layer_id, uint64_t seed, int32_t num_experts,
                        int32_t k, int32_t *perm, int32_t *idx) {
    /* Chain the three keys through the mix so that no two of them cancel. */
    uint64_t state = mix64((uint64_t)(uint32_t)layer_id + GOLDEN_GAMMA);
    state = mix64(state ^ (uint64_t)token_id);
    state = mix64(state ^ seed);
    /* Partial Fisher-Yates: k draws without replacement, O(E) per token
     * whatever k is (rejection sampling degrades as k approaches E). */
    for (int32_t e = 0; e < num_experts; e++) perm[e] = e;
    for (int32_t i = 0; i < k; i++) {
        state += GOLDEN_GAMMA;
        uint64_t left = (uint64_t)(num_experts - i);
        int32_t j = i + (int32_t)(mix64(state) % left); /* modulo bias < 2^-32 */
        int32_t tmp = perm[i];
        perm[i] = perm[j];
        perm[j] = tmp;
        idx[i] = perm[i];
    }
}
