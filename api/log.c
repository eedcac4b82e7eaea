/* Logging: level from MOEP_LOG on first use, optional user handler. */
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>

#include "moep_internal.h"

/* -1 = not read yet. Reading MOEP_LOG twice from racing threads is harmless. */
static atomic_int log_level = -1;
static moep_log_fn log_handler;
static void *log_user;

static int level_from_env(void) {
    static const char *names[] = {"error", "warn", "info", "debug", "trace"};
    const char *v = getenv("MOEP_LOG");
    if (v == NULL || *v == '\0') return MOEP_LOG_WARN;
    for (int i = 0; i < 5; i++)
        if (strcasecmp(v, names[i]) == 0) return i;
    if (v[0] >= '0' && v[0] <= '4' && v[1] == '\0') return v[0] - '0';
    return MOEP_LOG_WARN;
}

moep_log_level_t moep_log_get_level(void) {
    int l = atomic_load(&log_level);
    if (l < 0) {
        l = level_from_env();
        atomic_store(&log_level, l);
    }
    return (moep_log_level_t)l;
}

void moep_log_set_level(moep_log_level_t level) { atomic_store(&log_level, (int)level); }

void moep_log_set_handler(moep_log_fn fn, void *user) {
    log_handler = fn;
    log_user = user;
}

void moep__log(moep_log_level_t level, const char *fmt, ...) {
    static const char *tags[] = {"ERROR", "WARN", "INFO", "DEBUG", "TRACE"};
    if (level > moep_log_get_level()) return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (log_handler != NULL)
        log_handler(log_user, level, msg);
    else
        fprintf(stderr, "moep %s: %s\n", tags[level], msg);
}
