/* Framed protocol of the TCP bootstrap (see tcp_wire.h). */
#include "transports/bootstrap/tcp_wire.h"

#include <stdio.h>
#include <string.h>

#include "transports/bootstrap/tcp_socket.h"

static const uint8_t wire_magic[4] = {'M', 'O', 'E', 'P'};

uint64_t moep__wire_job_hash(const char *key) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (const unsigned char *p = (const unsigned char *)(key ? key : ""); *p; p++) {
        h ^= *p;
        h *= 0x100000001b3ull;
    }
    return h;
}

static void put_be(uint8_t *p, uint64_t v, int bytes) {
    for (int i = bytes - 1; i >= 0; i--, v >>= 8) p[i] = (uint8_t)v;
}

static uint64_t get_be(const uint8_t *p, int bytes) {
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++) v = v << 8 | p[i];
    return v;
}

void moep__wire_put_u32(uint8_t *p, uint32_t v) { put_be(p, v, 4); }
uint32_t moep__wire_get_u32(const uint8_t *p) { return (uint32_t)get_be(p, 4); }

void moep__wire_encode(const moep__wire_hdr_t *h, uint8_t out[MOEP__WIRE_HDR_BYTES]) {
    memcpy(out, wire_magic, 4);
    put_be(out + 4, h->version, 2);
    put_be(out + 6, h->op, 2);
    put_be(out + 8, h->seq, 4);
    put_be(out + 12, (uint32_t)h->sender, 4);
    put_be(out + 16, h->length, 8);
    put_be(out + 24, h->job_hash, 8);
}

moep_status_t moep__wire_decode(const uint8_t in[MOEP__WIRE_HDR_BYTES], moep__wire_hdr_t *h,
                                char *why, size_t why_len) {
    if (memcmp(in, wire_magic, 4) != 0) {
        snprintf(why, why_len, "bad magic %02x%02x%02x%02x", in[0], in[1], in[2], in[3]);
        return MOEP_ERR_PROTOCOL;
    }
    h->version = (uint16_t)get_be(in + 4, 2);
    h->op = (uint16_t)get_be(in + 6, 2);
    h->seq = (uint32_t)get_be(in + 8, 4);
    h->sender = (int32_t)(uint32_t)get_be(in + 12, 4);
    h->length = get_be(in + 16, 8);
    h->job_hash = get_be(in + 24, 8);
    if (h->version != MOEP__WIRE_VERSION) {
        snprintf(why, why_len, "protocol version %u, expected %u", h->version,
                 MOEP__WIRE_VERSION);
        return MOEP_ERR_PROTOCOL;
    }
    if (h->op < MOEP__OP_HELLO || h->op > MOEP__OP_ERROR) {
        snprintf(why, why_len, "unknown op %u", h->op);
        return MOEP_ERR_PROTOCOL;
    }
    if (h->length > MOEP__WIRE_MAX_PAYLOAD ||
        (h->op == MOEP__OP_ERROR && h->length > MOEP__WIRE_MAX_ERROR)) {
        snprintf(why, why_len, "length %llu beyond the bound", (unsigned long long)h->length);
        return MOEP_ERR_PROTOCOL;
    }
    return MOEP_OK;
}

moep_status_t moep__wire_send(int fd, const moep__wire_hdr_t *h, const void *payload,
                              double deadline_ms) {
    uint8_t hdr[MOEP__WIRE_HDR_BYTES];
    moep__wire_encode(h, hdr);
    MOEP_TRY(moep__sock_send_all(fd, hdr, sizeof hdr, deadline_ms));
    if (h->length == 0) return MOEP_OK;
    return moep__sock_send_all(fd, payload, (size_t)h->length, deadline_ms);
}

size_t moep__wire_error_payload(moep_status_t st, const char *msg,
                                uint8_t out[MOEP__WIRE_MAX_ERROR]) {
    moep__wire_put_u32(out, (uint32_t)(int32_t)st);
    size_t n = strlen(msg);
    if (n > MOEP__WIRE_MAX_ERROR - 4) n = MOEP__WIRE_MAX_ERROR - 4;
    memcpy(out + 4, msg, n);
    return 4 + n;
}

moep_status_t moep__wire_parse_error(const uint8_t *payload, size_t len, char *msg,
                                     size_t msg_len) {
    if (len < 4) {
        snprintf(msg, msg_len, "(truncated error frame)");
        return MOEP_ERR_PROTOCOL;
    }
    moep_status_t st = (moep_status_t)(int32_t)moep__wire_get_u32(payload);
    int n = (int)(len - 4);
    snprintf(msg, msg_len, "%.*s", n, (const char *)payload + 4);
    /* Keep only printable text from an untrusted peer. */
    for (char *c = msg; *c; c++)
        if (*c < 0x20 || *c > 0x7e) *c = '?';
    if ((int)st >= 0 || strcmp(moep_status_name(st), "MOEP_UNKNOWN") == 0)
        return MOEP_ERR_PROTOCOL;
    return st;
}
