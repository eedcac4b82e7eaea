/* Incremental, non-blocking frame receive (see tcp_frame_rx.h). */
#include "transports/bootstrap/tcp_frame_rx.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

void moep__frame_rx_reset(moep__frame_rx_t *rx) {
    rx->stage = MOEP__FRAME_HEADER;
    rx->span = (moep__rx_span_t){.buf = rx->hdr_bytes, .len = sizeof rx->hdr_bytes, .got = 0};
}

void moep__frame_rx_accept(moep__frame_rx_t *rx, uint8_t *dst) {
    rx->into_small = dst == MOEP__FRAME_SMALL;
    if (rx->into_small) dst = rx->small;
    rx->span = (moep__rx_span_t){.buf = dst, .len = rx->hdr.length, .got = 0};
    rx->stage = MOEP__FRAME_PAYLOAD;
}

static void io_reason(moep_status_t st, char *why, size_t why_len) {
    if (st == MOEP_ERR_REMOTE)
        snprintf(why, why_len, "connection closed");
    else
        snprintf(why, why_len, "%s", strerror(errno));
}

moep_status_t moep__frame_rx_step(int fd, moep__frame_rx_t *rx, char *why, size_t why_len) {
    if (rx->stage == MOEP__FRAME_HEADER) {
        rx->span.buf = rx->hdr_bytes;
        moep_status_t st = moep__sock_recv_span(fd, &rx->span);
        if (st == MOEP_INPROGRESS) return st;
        if (st != MOEP_OK) {
            io_reason(st, why, why_len);
            return st;
        }
        MOEP_TRY(moep__wire_decode(rx->hdr_bytes, &rx->hdr, why, why_len));
        rx->stage = MOEP__FRAME_HEADER_READY;
        return MOEP_OK;
    }
    if (rx->stage == MOEP__FRAME_PAYLOAD) {
        if (rx->into_small) rx->span.buf = rx->small;
        moep_status_t st = moep__sock_recv_span(fd, &rx->span);
        if (st == MOEP_INPROGRESS) return st;
        if (st != MOEP_OK) {
            io_reason(st, why, why_len);
            return st;
        }
        rx->stage = MOEP__FRAME_DONE;
    }
    return MOEP_OK;
}
