/*
 * Incremental, non-blocking receive of one frame, so that rank 0 can serve
 * many peers from one poll() loop without any of them blocking the others.
 */
#ifndef MOEP_TCP_FRAME_RX_H
#define MOEP_TCP_FRAME_RX_H

#include "transports/bootstrap/tcp_socket.h"
#include "transports/bootstrap/tcp_wire.h"

typedef enum moep__frame_stage {
    MOEP__FRAME_HEADER,       /* reading the header */
    MOEP__FRAME_HEADER_READY, /* header decoded: caller picks the payload destination */
    MOEP__FRAME_PAYLOAD,      /* reading the payload */
    MOEP__FRAME_DONE,
} moep__frame_stage_t;

typedef struct moep__frame_rx {
    moep__frame_stage_t stage;
    uint8_t hdr_bytes[MOEP__WIRE_HDR_BYTES];
    moep__wire_hdr_t hdr;
    /* span.buf is re-derived on every step when it points into this struct,
     * so that the struct may be moved (copied) between steps. */
    moep__rx_span_t span;
    bool into_small;
    uint8_t small[MOEP__WIRE_MAX_ERROR]; /* for HELLO and ERROR payloads */
} moep__frame_rx_t;

void moep__frame_rx_reset(moep__frame_rx_t *rx);

/*
 * Read what is available. Returns MOEP_INPROGRESS (would block), MOEP_OK when
 * the stage became HEADER_READY (call moep__frame_rx_accept, then step
 * again) or DONE, or MOEP_ERR_REMOTE / MOEP_ERR_SYSTEM / MOEP_ERR_PROTOCOL
 * (reason in `why`).
 */
moep_status_t moep__frame_rx_step(int fd, moep__frame_rx_t *rx, char *why, size_t why_len);

/* Receive the payload into dst (NULL: discard; MOEP__FRAME_SMALL: rx->small,
 * which needs hdr.length <= sizeof rx->small). */
#define MOEP__FRAME_SMALL ((uint8_t *)1)
void moep__frame_rx_accept(moep__frame_rx_t *rx, uint8_t *dst);

#endif /* MOEP_TCP_FRAME_RX_H */
