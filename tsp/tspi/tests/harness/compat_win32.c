/* compat_win32.c: compat.h on Windows and Wine (LoadLibrary as TAPISRV loads a .tsp, a
   critical section, Winsock). Built with MinGW: x86_64-w64-mingw32-gcc ... -lws2_32 */
#include "compat.h"

#include <winsock2.h>
#include <windows.h>
#include <stdio.h>
#include <string.h>

static CRITICAL_SECTION lock;
static INIT_ONCE lock_once = INIT_ONCE_STATIC_INIT;

static BOOL CALLBACK init_lock(PINIT_ONCE once, PVOID param, PVOID *context) {
    (void)once;
    (void)param;
    (void)context;
    InitializeCriticalSection(&lock);
    WSADATA wsa;
    WSAStartup(MAKEWORD(2, 2), &wsa);
    return TRUE;
}

static void ensure_init(void) { InitOnceExecuteOnce(&lock_once, init_lock, NULL, NULL); }

void *lib_open(const char *path) {
    ensure_init();
    HMODULE lib = LoadLibraryA(path);
    if (!lib) fprintf(stderr, "LoadLibrary(%s) failed: error %lu\n", path, GetLastError());
    return (void *)lib;
}

void *lib_sym(void *lib, const char *name) {
    return (void *)GetProcAddress((HMODULE)lib, name);
}

void lock_acquire(void) {
    ensure_init();
    EnterCriticalSection(&lock);
}

void lock_release(void) { LeaveCriticalSection(&lock); }
void sleep_us(long us) { Sleep((DWORD)((us + 999) / 1000)); }
long now_ms(void) { return (long)GetTickCount64(); }

int http_get_status(int port, const char *target) {
    ensure_init();
    if (port <= 0) return -1;
    SOCKET fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd == INVALID_SOCKET) return -1;
    DWORD timeout = 5000;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, (const char *)&timeout, sizeof timeout);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, (const char *)&timeout, sizeof timeout);
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((u_short)port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
        closesocket(fd);
        return -1;
    }
    char request[512];
    int len = snprintf(request, sizeof request, "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n",
                       target);
    if (len <= 0 || (size_t)len >= sizeof request || send(fd, request, len, 0) != len) {
        closesocket(fd);
        return -1;
    }
    char reply[256];
    int got = 0;
    while (got < (int)sizeof reply - 1) {
        int n = recv(fd, reply + got, (int)sizeof reply - 1 - got, 0);
        if (n <= 0) break;
        got += n;
        if (memchr(reply, '\n', (size_t)got)) break;
    }
    closesocket(fd);
    reply[got] = 0;
    int status = -1;
    if (strncmp(reply, "HTTP/1.", 7) != 0 || sscanf(reply + 8, " %d", &status) != 1) return -1;
    return status;
}
