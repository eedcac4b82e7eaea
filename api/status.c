/* Status codes, their text, and the per-thread last-error message. */
#include <stdio.h>
#include <string.h>

#include "moep_internal.h"

static _Thread_local char last_error[1024];

const char *moep_status_string(moep_status_t s) {
    switch (s) {
#define MOEP_STATUS_TEXT_(name, value, text) \
    case MOEP_##name:                        \
        return text;
        MOEP_STATUS_MAP(MOEP_STATUS_TEXT_)
#undef MOEP_STATUS_TEXT_
    }
    return "unknown status";
}

const char *moep_status_name(moep_status_t s) {
    switch (s) {
#define MOEP_STATUS_NAME_(name, value, text) \
    case MOEP_##name:                        \
        return "MOEP_" #name;
        MOEP_STATUS_MAP(MOEP_STATUS_NAME_)
#undef MOEP_STATUS_NAME_
    }
    return "MOEP_UNKNOWN";
}

const char *moep_last_error(void) { return last_error; }

void moep__clear_error(void) { last_error[0] = '\0'; }

moep_status_t moep__vfail(char *buf, size_t buf_len, moep_status_t s, const char *fmt,
                          va_list ap) {
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    if (buf != NULL && buf_len > 0) snprintf(buf, buf_len, "%s", last_error);
    MOEP_LOG_AT(MOEP_LOG_DEBUG, "%s: %s", moep_status_name(s), last_error);
    return s;
}

moep_status_t moep__fail(moep_status_t s, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    moep__vfail(NULL, 0, s, fmt, ap);
    va_end(ap);
    return s;
}

int moep_version(void) {
    return MOEP_VERSION_MAJOR * 10000 + MOEP_VERSION_MINOR * 100 + MOEP_VERSION_PATCH;
}
