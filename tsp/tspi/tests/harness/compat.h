/*
 * compat.h: the few things the TSPI harness needs from the operating system, so that the same
 * harness runs on Linux (loading libtapir_tspi.so with dlopen) and on Windows or Wine (loading
 * tapir.tsp with LoadLibrary, as TAPISRV does). compat_posix.c and compat_win32.c implement it.
 */
#ifndef TSPI_HARNESS_COMPAT_H
#define TSPI_HARNESS_COMPAT_H

/* Loads the provider; NULL (with the reason on stderr) when it cannot. */
void *lib_open(const char *path);
/* An export by name, or NULL. */
void *lib_sym(void *lib, const char *name);
/* One lock for the harness's event log. */
void lock_acquire(void);
void lock_release(void);
void sleep_us(long us);
/* A monotonic clock in milliseconds. */
long now_ms(void);
/* "GET target HTTP/1.0" to 127.0.0.1:port; the reply's status code, or -1 (no connection, no
   reply within 5 s, not HTTP). */
int http_get_status(int port, const char *target);

#endif
