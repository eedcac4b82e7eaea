/*
 * Framed protocol of the TCP bootstrap. Every message is a 32-byte header
 * (big-endian) followed by `length` payload bytes:
 *   0  magic "MOEP"     4  u16 version     6  u16 op       8  u32 seq
 *   12 i32 sender rank  16 u64 length      24 u64 job-key hash
 * The job key itself is never sent, only its FNV-1a hash.
 */
#ifndef MOEP_TCP_WIRE_H
#define MOEP_TCP_WIRE_H

#include <stdint.h>

#include "moep_internal.h"

#define MOEP__WIRE_HDR_BYTES 32
#define MOEP__WIRE_VERSION 1
/* Largest payload accepted from a peer: bootstrap data is small. */
#define MOEP__WIRE_MAX_PAYLOAD (1ull << 30)
/* Largest error message carried by an ERROR frame. */
#define MOEP__WIRE_MAX_ERROR 1024
#define MOEP__WIRE_HELLO_BYTES 8

typedef enum moep__wire_op {
    MOEP__OP_HELLO = 1,   /* rank -> 0: {u32 rank, u32 world_size} */
    MOEP__OP_WELCOME = 2, /* 0 -> rank: everyone has joined */
    MOEP__OP_DATA = 3,    /* allgather contribution, or its result */
    MOEP__OP_ERROR = 4,   /* {i32 status, message text} */
} moep__wire_op_t;

typedef struct moep__wire_hdr {
    uint16_t version;
    uint16_t op;
    uint32_t seq;
    int32_t sender;
    uint64_t length;
    uint64_t job_hash;
} moep__wire_hdr_t;

/* FNV-1a 64 of the job key; NULL hashes like "" (no key). */
uint64_t moep__wire_job_hash(const char *key);

void moep__wire_encode(const moep__wire_hdr_t *h, uint8_t out[MOEP__WIRE_HDR_BYTES]);

/*
 * Decode and check magic, version, op and the length bound. On failure
 * returns MOEP_ERR_PROTOCOL with a short reason in `why` (no message
 * recorded: the caller names the peer).
 */
moep_status_t moep__wire_decode(const uint8_t in[MOEP__WIRE_HDR_BYTES], moep__wire_hdr_t *h,
                                char *why, size_t why_len);

/* Header and payload, before the deadline (see moep__sock_send_all). */
moep_status_t moep__wire_send(int fd, const moep__wire_hdr_t *h, const void *payload,
                              double deadline_ms);

void moep__wire_put_u32(uint8_t *p, uint32_t v);
uint32_t moep__wire_get_u32(const uint8_t *p);

/* ERROR frame payload: i32 status, then the message (truncated to
 * MOEP__WIRE_MAX_ERROR - 4 bytes). Returns the payload length. */
size_t moep__wire_error_payload(moep_status_t st, const char *msg,
                                uint8_t out[MOEP__WIRE_MAX_ERROR]);
/* Parse an ERROR payload; unknown or non-error statuses become MOEP_ERR_PROTOCOL. */
moep_status_t moep__wire_parse_error(const uint8_t *payload, size_t len, char *msg,
                                     size_t msg_len);

#endif /* MOEP_TCP_WIRE_H */
