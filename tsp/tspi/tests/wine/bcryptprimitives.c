/*
 * TEST FIXTURE ONLY, never shipped: a stand-in for Windows' bcryptprimitives.dll, which
 * Wine 8 does not have. Rust's standard library on Windows imports ProcessPrng from it (the
 * random seed of its hash maps), so without this file neither tapir.tsp nor the unit tests
 * load under Wine 8. Windows 10 and later have the real DLL; this is why tapir.tsp needs
 * Windows 10 or later.
 *
 * Build: x86_64-w64-mingw32-gcc -shared -o bcryptprimitives.dll bcryptprimitives.c \
 *            bcryptprimitives.def -lbcrypt
 */
#include <windows.h>
#include <bcrypt.h>

/* BOOL ProcessPrng(PBYTE pbData, SIZE_T cbData): fills the buffer with random bytes. */
BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T size) {
    while (size > 0) {
        ULONG chunk = size > 0x10000000 ? 0x10000000 : (ULONG)size;
        if (BCryptGenRandom(NULL, data, chunk, BCRYPT_USE_SYSTEM_PREFERRED_RNG) != 0) return FALSE;
        data += chunk;
        size -= chunk;
    }
    return TRUE;
}
