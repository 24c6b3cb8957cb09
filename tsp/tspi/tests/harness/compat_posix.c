/* compat_posix.c: compat.h on Linux (dlopen, pthreads, BSD sockets). */
#include "compat.h"

#include <arpa/inet.h>
#include <dlfcn.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

void *lib_open(const char *path) {
    void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!lib) fprintf(stderr, "dlopen: %s\n", dlerror());
    return lib;
}

void *lib_sym(void *lib, const char *name) { return dlsym(lib, name); }
void lock_acquire(void) { pthread_mutex_lock(&lock); }
void lock_release(void) { pthread_mutex_unlock(&lock); }
void sleep_us(long us) { usleep((useconds_t)us); }

long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

int http_get_status(int port, const char *target) {
    if (port <= 0) return -1;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
        close(fd);
        return -1;
    }
    char request[512];
    int len = snprintf(request, sizeof request, "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n",
                       target);
    if (len <= 0 || (size_t)len >= sizeof request || send(fd, request, (size_t)len, 0) != len) {
        close(fd);
        return -1;
    }
    /* The status line is all that is needed: "HTTP/1.x NNN ...". */
    char reply[256];
    size_t got = 0;
    while (got < sizeof reply - 1) {
        ssize_t n = recv(fd, reply + got, sizeof reply - 1 - got, 0);
        if (n <= 0) break;
        got += (size_t)n;
        if (memchr(reply, '\n', got)) break;
    }
    close(fd);
    reply[got] = 0;
    int status = -1;
    if (strncmp(reply, "HTTP/1.", 7) != 0 || sscanf(reply + 8, " %d", &status) != 1) return -1;
    return status;
}
