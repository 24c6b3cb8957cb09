/*
 * tspi_harness.c: loads a TSP built as a Linux shared object and drives it the way the
 * Windows telephony service (TAPISRV) drives a .tsp: by export name, with TAPI's parameter
 * widths, its callbacks and its rules. Prints one "ok"/"FAIL" line per check and exits with
 * the number of failures (0 = every rule held).
 *
 * Usage: tspi_harness <path to libtapir_tspi.so>
 * The library reads its configuration from TAPIR_CONFIG; the test writes one with two
 * virtual-phone lines ("100" Reception, "101" Back office, an incoming call on "101") in a
 * driver instance named "office", and the library's phone-callback endpoint ([phones] listen)
 * on 127.0.0.1 at the port given in TSPI_HARNESS_PHONES_PORT. The harness sends the virtual
 * phone's HTTP test endpoints there to make a line appear, change service and go.
 */
#include "compat.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef uint32_t DWORD;
typedef int32_t LONG;
typedef uintptr_t DWORD_PTR;
typedef uint16_t WCHAR;

typedef void (*LINEEVENT)(DWORD_PTR htLine, DWORD_PTR htCall, DWORD dwMsg,
                          DWORD_PTR p1, DWORD_PTR p2, DWORD_PTR p3);
typedef void (*ASYNC_COMPLETION)(DWORD dwRequestID, LONG lResult);

/* TSPI prototypes (tspi.h), pointer-sized handles as DWORD_PTR. */
typedef LONG (*NegotiateTSPIVersion_t)(DWORD, DWORD, DWORD, DWORD *);
typedef LONG (*EnumDevices_t)(DWORD, DWORD *, DWORD *, DWORD_PTR, LINEEVENT, void *);
typedef LONG (*ProviderInit_t)(DWORD, DWORD, DWORD, DWORD, DWORD_PTR, DWORD_PTR,
                               ASYNC_COMPLETION, DWORD *);
typedef LONG (*ProviderShutdown_t)(DWORD, DWORD);
typedef LONG (*GetDevCaps_t)(DWORD, DWORD, DWORD, void *);
typedef LONG (*GetAddressCaps_t)(DWORD, DWORD, DWORD, DWORD, void *);
typedef LONG (*LineOpen_t)(DWORD, DWORD_PTR, DWORD_PTR *, DWORD, LINEEVENT);
typedef LONG (*LineClose_t)(DWORD_PTR);
typedef LONG (*SetStatusMessages_t)(DWORD_PTR, DWORD, DWORD);
typedef LONG (*MakeCall_t)(DWORD, DWORD_PTR, DWORD_PTR, DWORD_PTR *, const WCHAR *, DWORD,
                           void *);
typedef LONG (*CallUUI_t)(DWORD, DWORD_PTR, const char *, DWORD); /* Drop, Answer */
typedef LONG (*CallOnly_t)(DWORD, DWORD_PTR);                     /* Hold, Unhold */
typedef LONG (*CloseCall_t)(DWORD_PTR);
typedef LONG (*GetCallStruct_t)(DWORD_PTR, void *); /* GetCallInfo, GetCallStatus */
typedef LONG (*GetAddressStatus_t)(DWORD_PTR, DWORD, void *);
typedef LONG (*GetNumAddressIDs_t)(DWORD_PTR, DWORD *);
typedef LONG (*GetAddressID_t)(DWORD_PTR, DWORD *, DWORD, const WCHAR *, DWORD);
typedef LONG (*Forward_t)(DWORD, DWORD_PTR, DWORD, DWORD, const void *, DWORD, DWORD_PTR,
                          DWORD_PTR *, const void *);
typedef LONG (*GetCallIDs_t)(DWORD_PTR, DWORD *, DWORD *, DWORD *);
typedef LONG (*SetupTransfer_t)(DWORD, DWORD_PTR, DWORD_PTR, DWORD_PTR *, const void *);
typedef LONG (*Dial_t)(DWORD, DWORD_PTR, const WCHAR *, DWORD);
typedef LONG (*CompleteTransfer_t)(DWORD, DWORD_PTR, DWORD_PTR, DWORD_PTR, DWORD_PTR *, DWORD);
typedef LONG (*CreateLineDevice_t)(DWORD_PTR, DWORD);

#define INITIALIZE_NEGOTIATION 0xFFFFFFFFu
#define TAPI_2_0 0x00020000u
#define TAPI_2_2 0x00020002u
#define LINEERR_BADDEVICEID ((LONG)0x80000002u)
#define LINEERR_INCOMPATIBLEAPIVERSION ((LONG)0x8000000Cu)
#define LINEERR_INVALADDRESSID ((LONG)0x80000011u)
#define LINEERR_INVALCALLHANDLE ((LONG)0x80000018u)
#define LINEERR_INVALCALLSTATE ((LONG)0x8000001Cu)
#define LINEERR_INVALLINEHANDLE ((LONG)0x8000002Bu)
#define LINEERR_STRUCTURETOOSMALL ((LONG)0x8000004Du)
#define LINE_ADDRESSSTATE 0
#define LINE_CALLINFO 1
#define LINE_CALLSTATE 2
#define LINE_CLOSE 3
#define LINE_LINEDEVSTATE 8
#define LINE_CREATE 19
#define LINE_REMOVE 25
#define LINE_NEWCALL 500
#define LINECALLSTATE_IDLE 0x1
#define LINECALLSTATE_DISCONNECTED 0x4000
#define LINECALLSTATE_OFFERING 0x2
#define LINECALLSTATE_DIALING 0x10
#define LINECALLSTATE_RINGBACK 0x20
#define LINECALLSTATE_CONNECTED 0x100
#define LINECALLSTATE_DIALTONE 0x8
#define LINECALLSTATE_ONHOLD 0x400
#define LINECALLSTATE_ONHOLDPENDTRANSFER 0x2000
#define LINETRANSFERMODE_TRANSFER 1
#define LINETRANSFERMODE_CONFERENCE 2
#define LINECALLFEATURE_DROP 0x80
#define LINECALLFEATURE_HOLD 0x800
#define LINECALLFEATURE_UNHOLD 0x8000000
#define LINEDEVSTATE_INSERVICE 0x40
#define LINEDEVSTATE_OUTOFSERVICE 0x80
#define LINEADDRESSSTATE_FORWARD 0x40
#define LINEADDRESSMODE_DIALABLEADDR 2
#define LINEFORWARDMODE_UNCOND 1
#define LINECALLORIGIN_OUTBOUND 0x1
#define LINECALLORIGIN_UNKNOWN 0x10
#define STRINGFORMAT_UNICODE 3

/* Fixed parts (packed, tapi.h) and member offsets. */
#define LINEDEVCAPS_SIZE_2_2 268
#define LINEADDRESSCAPS_SIZE 228
#define LINECALLINFO_SIZE_2_0 324
#define LINECALLSTATUS_SIZE 56
#define LINEADDRESSSTATUS_SIZE 64
#define LINEDEVSTATUS_SIZE 88

static int failures;
static int checks;
#define CHECK(cond, ...)                                                                      \
    do {                                                                                      \
        checks++;                                                                             \
        if (cond) {                                                                           \
            printf("ok - ");                                                                  \
        } else {                                                                              \
            failures++;                                                                       \
            printf("FAIL (%s:%d) - ", __FILE__, __LINE__);                                    \
        }                                                                                     \
        printf(__VA_ARGS__);                                                                  \
        printf("\n");                                                                         \
        fflush(stdout);                                                                       \
    } while (0)

/* ---- Callback recording ------------------------------------------------------------------ */

typedef struct {
    int kind; /* 0 line event, 1 completion */
    DWORD_PTR ht_line, ht_call;
    DWORD msg;
    DWORD_PTR p1, p2, p3;
    DWORD request;
    LONG result;
} Event;

#define MAX_EVENTS 4096
static Event events[MAX_EVENTS];
static int n_events;
static volatile int in_callback;
static volatile int reentered;
static volatile int after_shutdown;
static volatile int shut_down;
static DWORD_PTR next_incoming_ht = 0x9000;

static void record(Event e) {
    lock_acquire();
    if (n_events < MAX_EVENTS) events[n_events++] = e;
    lock_release();
}

static void enter(void) {
    if (__sync_lock_test_and_set(&in_callback, 1)) reentered++;
    if (shut_down) after_shutdown++;
}

static void leave(void) {
    sleep_us(200); /* widen the window in which a second, concurrent callback would be seen */
    __sync_lock_release(&in_callback);
}

static void line_event(DWORD_PTR htLine, DWORD_PTR htCall, DWORD msg, DWORD_PTR p1,
                       DWORD_PTR p2, DWORD_PTR p3) {
    enter();
    if (msg == LINE_NEWCALL) {
        /* TAPI writes its handle for the new call through dwParam2. */
        lock_acquire();
        DWORD_PTR ht = next_incoming_ht++;
        lock_release();
        *(DWORD_PTR *)p2 = ht;
        p2 = ht; /* record what was written */
    }
    Event e = {0, htLine, htCall, msg, p1, p2, p3, 0, 0};
    record(e);
    leave();
}

static void line_create_event(DWORD_PTR htLine, DWORD_PTR htCall, DWORD msg, DWORD_PTR p1,
                              DWORD_PTR p2, DWORD_PTR p3) {
    line_event(htLine, htCall, msg, p1, p2, p3);
}

static void completion(DWORD request, LONG result) {
    enter();
    Event e = {1, 0, 0, 0, 0, 0, 0, request, result};
    record(e);
    leave();
}

/* Index of the first event at or after `from` matching, or -1. */
static int find_event(int from, int kind, DWORD_PTR ht_call, DWORD msg, DWORD_PTR p1,
                      DWORD request) {
    int found = -1;
    lock_acquire();
    for (int i = from; i < n_events; i++) {
        Event *e = &events[i];
        if (e->kind != kind) continue;
        if (kind == 1) {
            if (e->request == request) { found = i; break; }
        } else if (e->msg == msg && (ht_call == 0 || e->ht_call == ht_call) &&
                   (p1 == 0 || e->p1 == p1)) {
            found = i;
            break;
        }
    }
    lock_release();
    return found;
}

static int wait_state(DWORD_PTR ht_call, DWORD state, int timeout_ms) {
    long end = now_ms() + timeout_ms;
    int i;
    while ((i = find_event(0, 0, ht_call, LINE_CALLSTATE, state, 0)) < 0 && now_ms() < end)
        sleep_us(5000);
    return i;
}

static int wait_completion(DWORD request, int timeout_ms, LONG *result) {
    long end = now_ms() + timeout_ms;
    int i;
    while ((i = find_event(0, 1, 0, 0, 0, request)) < 0 && now_ms() < end) sleep_us(5000);
    if (i >= 0) *result = events[i].result;
    return i;
}

static int count_completions(DWORD request) {
    int n = 0;
    lock_acquire();
    for (int i = 0; i < n_events; i++)
        if (events[i].kind == 1 && events[i].request == request) n++;
    lock_release();
    return n;
}

/* ---- Structure helpers ----------------------------------------------------------------- */

static DWORD get32(const void *base, size_t off) {
    DWORD v;
    memcpy(&v, (const char *)base + off, 4);
    return v;
}

static void put32(void *base, size_t off, DWORD v) { memcpy((char *)base + off, &v, 4); }

/* A structure of `total` bytes inside a larger block whose tail is a canary. */
#define CANARY 0xCD
#define SLACK 64
static unsigned char *new_struct(DWORD total) {
    unsigned char *p = malloc(total + SLACK);
    memset(p, CANARY, total + SLACK);
    put32(p, 0, total);
    return p;
}

static int canary_intact(const unsigned char *p, DWORD total) {
    for (DWORD i = total; i < total + SLACK; i++)
        if (p[i] != CANARY) return 0;
    return 1;
}

/* The UTF-16 string at size/offset members `at`, `at+4`, as ASCII ('?' elsewhere). */
static void get_string(const unsigned char *p, size_t at, char *out, size_t cap) {
    DWORD size = get32(p, at), off = get32(p, at + 4);
    size_t n = 0;
    for (DWORD i = 0; i + 1 < size && n + 1 < cap; i += 2) {
        WCHAR c;
        memcpy(&c, p + off + i, 2);
        if (c == 0) break;
        out[n++] = c < 128 ? (char)c : '?';
    }
    out[n] = 0;
}

static void to_wide(const char *s, WCHAR *out) {
    size_t i = 0;
    for (; s[i]; i++) out[i] = (WCHAR)(unsigned char)s[i];
    out[i] = 0;
}

/* Every size from 0 up to the needed size: STRUCTURETOOSMALL below the fixed part, success
   above, and never a byte written at or past dwTotalSize. */
typedef LONG (*Fill_t)(void *ctx, void *buf);
static int sweep(Fill_t fill, void *ctx, DWORD fixed, DWORD needed) {
    for (DWORD total = 12; total <= needed; total++) {
        unsigned char *p = new_struct(total);
        LONG r = fill(ctx, p);
        int good = total < fixed ? r == LINEERR_STRUCTURETOOSMALL
                                 : r == 0 && get32(p, 4) == needed && get32(p, 8) <= total;
        good = good && canary_intact(p, total) && get32(p, 0) == total;
        free(p);
        if (!good) {
            printf("# sweep failed at dwTotalSize %u (result 0x%x)\n", total, (unsigned)r);
            return 0;
        }
    }
    return 1;
}

/* ---- The phone-callback endpoint -------------------------------------------------------- */

static int phones_port;

/* Sends "GET target HTTP/1.0" to the phone endpoint (see compat.h). */
static int http_get(const char *target) { return http_get_status(phones_port, target); }

/* Waits up to timeout_ms for a line event at or after `from`; returns its index or -1. */
static int wait_event(int from, DWORD_PTR ht_call, DWORD msg, DWORD_PTR p1, int timeout_ms) {
    long end = now_ms() + timeout_ms;
    int i;
    while ((i = find_event(from, 0, ht_call, msg, p1, 0)) < 0 && now_ms() < end) sleep_us(5000);
    return i;
}

/* LINEDEVSTATUS's dwDevStatusFlags has LINEDEVSTATUSFLAGS_INSERVICE set (-1: no status). */
typedef LONG (*GetLineDevStatus_t)(DWORD_PTR, void *);
static GetLineDevStatus_t GetLineDevStatus;
static int line_in_service(DWORD_PTR hd_line) {
    unsigned char buf[256];
    memset(buf, 0, sizeof buf);
    put32(buf, 0, sizeof buf);
    if (GetLineDevStatus(hd_line, buf) != 0) return -1;
    return (get32(buf, 56) & 0x4) != 0;
}

/* Waits up to 5 s until the line's service state is `wanted`. */
static int wait_service(DWORD_PTR hd_line, int wanted) {
    long end = now_ms() + 5000;
    while (line_in_service(hd_line) != wanted && now_ms() < end) sleep_us(5000);
    return line_in_service(hd_line) == wanted;
}

/* How many line events at or after `from` concern htLine `ht_line` or htCall `ht_call`. */
static int events_about(int from, DWORD_PTR ht_line, DWORD_PTR ht_call) {
    int n = 0;
    lock_acquire();
    for (int i = from; i < n_events; i++)
        if (events[i].kind == 0 &&
            ((ht_line && events[i].ht_line == ht_line) || (ht_call && events[i].ht_call == ht_call)))
            n++;
    lock_release();
    return n;
}

/* ---- The exports ----------------------------------------------------------------------- */

static void *lib;
static void *sym(const char *name) {
    void *p = lib_sym(lib, name);
    if (!p) {
        printf("FAIL - export %s missing\n", name);
        failures++;
    }
    return p;
}

static const char *section9[] = {
    "TSPI_lineMakeCall", "TSPI_lineDrop", "TSPI_lineAnswer", "TSPI_lineHold",
    "TSPI_lineUnhold", "TSPI_lineRedirect", "TSPI_lineBlindTransfer",
    "TSPI_lineSetupTransfer", "TSPI_lineSwapHold", "TSPI_lineCompleteTransfer",
    "TSPI_lineDial", "TSPI_lineForward", "TSPI_lineGetAddressStatus",
    "TSPI_lineSendUserUserInfo", "TSPI_lineClose", "TSPI_lineCloseCall",
    "TSPI_lineConditionalMediaDetection", "TSPI_lineDevSpecific",
    "TSPI_lineDevSpecificFeature", "TSPI_lineGetDevConfig", "TSPI_lineSetDevConfig",
    "TSPI_lineGetAddressCaps", "TSPI_lineGetAddressID", "TSPI_lineGetCallAddressID",
    "TSPI_lineGetCallInfo", "TSPI_lineGetCallStatus", "TSPI_lineGetDevCaps",
    "TSPI_lineGetExtensionID", "TSPI_lineGetIcon", "TSPI_lineGetID",
    "TSPI_lineGetNumAddressIDs", "TSPI_lineNegotiateExtVersion",
    "TSPI_lineNegotiateTSPIVersion", "TSPI_lineOpen", "TSPI_lineSelectExtVersion",
    "TSPI_lineSetDefaultMediaDetection", "TSPI_lineSetStatusMessages",
    "TSPI_lineSetAppSpecific", "TSPI_lineSetCallData", "TSPI_providerCreateLineDevice",
    "TSPI_providerEnumDevices", "TSPI_providerFreeDialogInstance",
    "TSPI_providerGenericDialogData", "TSPI_providerInit", "TSPI_providerShutdown",
    "TSPI_providerUIIdentify", "TSPI_lineGetCallIDs", "TUISPI_lineConfigDialog",
    "TUISPI_lineConfigDialogEdit", "TUISPI_providerConfig", "TUISPI_providerInstall",
    "TUISPI_providerRemove", "TUISPI_providerGenericDialog",
    "TUISPI_providerGenericDialogData", "TSPI_lineGetLineDevStatus", NULL};

static GetDevCaps_t GetDevCaps;
static GetCallStruct_t GetCallInfo, GetCallStatus;
static DWORD sweep_device;
static DWORD_PTR sweep_call;
static LONG fill_devcaps(void *ctx, void *buf) {
    (void)ctx;
    return GetDevCaps(sweep_device, TAPI_2_2, 0, buf);
}
static LONG fill_callinfo(void *ctx, void *buf) {
    (void)ctx;
    return GetCallInfo(sweep_call, buf);
}

typedef LONG (*ProviderInstall_t)(void *, void *, DWORD);

/* "install" mode: what TUISPI_providerInstall answers (TAPI's Add-provider step). */
static int install_check(void) {
    ProviderInstall_t Install = (ProviderInstall_t)lib_sym(lib, "TUISPI_providerInstall");
    if (!Install) {
        printf("FAIL - export TUISPI_providerInstall missing\n");
        return 1;
    }
    LONG r = Install(NULL, NULL, 1);
    printf("providerInstall r=0x%x\n", (unsigned)r);
    return 0;
}

/* Waits for the test's answer on standard input after a "HOST ..." request. */
static int host_request(const char *what) {
    printf("HOST %s\n", what);
    fflush(stdout);
    char answer[64];
    if (!fgets(answer, sizeof answer, stdin)) return 0;
    return strncmp(answer, "ok", 2) == 0;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s LIBRARY [install]\n", argv[0]);
        return 100;
    }
    lib = lib_open(argv[1]);
    if (!lib) return 100;
    if (argc > 2 && strcmp(argv[2], "install") == 0) return install_check();
    const char *mode = getenv("TSPI_HARNESS_MODE");
    int remote = mode && strcmp(mode, "remote") == 0;
    int missing = 0;
    for (int i = 0; section9[i]; i++)
        if (!lib_sym(lib, section9[i])) {
            printf("# missing export %s\n", section9[i]);
            missing++;
        }
    CHECK(missing == 0, "every exported function of the manual's section 9 resolves by name");

    NegotiateTSPIVersion_t Negotiate = sym("TSPI_lineNegotiateTSPIVersion");
    EnumDevices_t EnumDevices = sym("TSPI_providerEnumDevices");
    ProviderInit_t Init = sym("TSPI_providerInit");
    ProviderShutdown_t Shutdown = sym("TSPI_providerShutdown");
    GetDevCaps = sym("TSPI_lineGetDevCaps");
    GetAddressCaps_t GetAddressCaps = sym("TSPI_lineGetAddressCaps");
    LineOpen_t Open = sym("TSPI_lineOpen");
    LineClose_t Close = sym("TSPI_lineClose");
    SetStatusMessages_t SetStatusMessages = sym("TSPI_lineSetStatusMessages");
    MakeCall_t MakeCall = sym("TSPI_lineMakeCall");
    CallUUI_t Drop = sym("TSPI_lineDrop");
    CallUUI_t Answer = sym("TSPI_lineAnswer");
    CallOnly_t Hold = sym("TSPI_lineHold");
    CallOnly_t Unhold = sym("TSPI_lineUnhold");
    CloseCall_t CloseCall = sym("TSPI_lineCloseCall");
    GetCallInfo = sym("TSPI_lineGetCallInfo");
    GetCallStatus = sym("TSPI_lineGetCallStatus");
    GetAddressStatus_t GetAddressStatus = sym("TSPI_lineGetAddressStatus");
    GetLineDevStatus = sym("TSPI_lineGetLineDevStatus");
    GetNumAddressIDs_t GetNumAddressIDs = sym("TSPI_lineGetNumAddressIDs");
    GetAddressID_t GetAddressID = sym("TSPI_lineGetAddressID");
    Forward_t Forward = sym("TSPI_lineForward");
    GetCallIDs_t GetCallIDs = sym("TSPI_lineGetCallIDs");
    SetupTransfer_t SetupTransfer = sym("TSPI_lineSetupTransfer");
    Dial_t Dial = sym("TSPI_lineDial");
    CompleteTransfer_t CompleteTransfer = sym("TSPI_lineCompleteTransfer");
    CreateLineDevice_t CreateLineDevice = sym("TSPI_providerCreateLineDevice");
    if (failures) return failures;
    const char *port_text = getenv("TSPI_HARNESS_PHONES_PORT");
    phones_port = port_text ? atoi(port_text) : 0;

    /* 1. Provider-level negotiation, before anything else. */
    DWORD version = 0;
    LONG r = Negotiate(INITIALIZE_NEGOTIATION, 0x00010003, 0x00030001, &version);
    CHECK(r == 0 && version == TAPI_2_2,
          "INITIALIZE_NEGOTIATION before providerInit answers 2.2 (r=0x%x v=0x%x)",
          (unsigned)r, version);
    r = Negotiate(INITIALIZE_NEGOTIATION, 0x00010003, 0x00010004, &version);
    CHECK(r == LINEERR_INCOMPATIBLEAPIVERSION, "a 1.x-only range is INCOMPATIBLEAPIVERSION");

    /* 2. Enumerate before init. */
    DWORD lines = 0, phones = 99;
    r = EnumDevices(7, &lines, &phones, (DWORD_PTR)0xABC, line_create_event, NULL);
    CHECK(r == 0 && lines == 2 && phones == 0,
          "providerEnumDevices before providerInit counts 2 lines, 0 phones (r=0x%x, %u)",
          (unsigned)r, lines);

    /* 3. Init with a device id base of 10. */
    DWORD options = 0xFFFF;
    r = Init(TAPI_2_2, 7, 10, 0, lines, 0, completion, &options);
    CHECK(r == 0, "providerInit with base 10 (r=0x%x, options 0x%x)", (unsigned)r, options);
    if (failures) {
        printf("# the provider did not start; nothing else can be checked\n");
        return failures;
    }

    /* 4. Device ids from the base. */
    r = Negotiate(10, TAPI_2_0, TAPI_2_2, &version);
    CHECK(r == 0 && version == TAPI_2_2, "device 10 negotiates 2.2");
    r = Negotiate(11, TAPI_2_0, TAPI_2_2, &version);
    CHECK(r == 0, "device 11 negotiates");
    CHECK(Negotiate(9, TAPI_2_0, TAPI_2_2, &version) == LINEERR_BADDEVICEID &&
              Negotiate(12, TAPI_2_0, TAPI_2_2, &version) == LINEERR_BADDEVICEID,
          "devices 9 and 12 are BADDEVICEID");

    /* 5. GetDevCaps: too small, fixed part only, then the needed size. */
    unsigned char *caps = new_struct(100);
    r = GetDevCaps(10, TAPI_2_2, 0, caps);
    CHECK(r == LINEERR_STRUCTURETOOSMALL && canary_intact(caps, 100),
          "LINEDEVCAPS of 100 bytes is STRUCTURETOOSMALL, nothing written past it");
    free(caps);
    caps = new_struct(LINEDEVCAPS_SIZE_2_2);
    r = GetDevCaps(10, TAPI_2_2, 0, caps);
    DWORD needed = get32(caps, 4);
    CHECK(r == 0 && needed > LINEDEVCAPS_SIZE_2_2 && get32(caps, 8) == LINEDEVCAPS_SIZE_2_2 &&
              get32(caps, 32) == 0 && get32(caps, 36) == 0 &&
              canary_intact(caps, LINEDEVCAPS_SIZE_2_2),
          "fixed-size LINEDEVCAPS: dwNeededSize %u, dwUsedSize = fixed, line name left out",
          needed);
    free(caps);
    if (needed > 65536) return failures;
    caps = new_struct(needed);
    r = GetDevCaps(10, TAPI_2_2, 0, caps);
    char text[256];
    get_string(caps, 32, text, sizeof text);
    CHECK(r == 0 && get32(caps, 4) == needed && get32(caps, 8) == needed &&
              canary_intact(caps, needed) && strcmp(text, "Reception") == 0 &&
              get32(caps, 40) == STRINGFORMAT_UNICODE && get32(caps, 48) == 1 &&
              get32(caps, 116) >= 1,
          "full LINEDEVCAPS: used = needed = %u, line name \"%s\", UNICODE, 1 address",
          needed, text);
    free(caps);
    sweep_device = 10;
    CHECK(sweep(fill_devcaps, NULL, LINEDEVCAPS_SIZE_2_2, needed),
          "LINEDEVCAPS at every dwTotalSize 12..%u: no overrun, right error/needed", needed);
    caps = new_struct(1024);
    r = GetDevCaps(11, TAPI_2_2, 0, caps);
    get_string(caps, 32, text, sizeof text);
    CHECK(r == 0 && strcmp(text, "Back office") == 0, "device 11 is \"%s\"", text);
    free(caps);

    /* 6. GetAddressCaps. */
    unsigned char *acaps = new_struct(1024);
    r = GetAddressCaps(10, 0, TAPI_2_2, 0, acaps);
    get_string(acaps, 16, text, sizeof text);
    CHECK(r == 0 && get32(acaps, 12) == 10 && strcmp(text, "100") == 0 &&
              get32(acaps, 64) != 0 && canary_intact(acaps, 1024),
          "LINEADDRESSCAPS: device 10, address \"%s\", call states 0x%x", text,
          get32(acaps, 64));
    free(acaps);
    acaps = new_struct(1024);
    CHECK(GetAddressCaps(10, 5, TAPI_2_2, 0, acaps) == LINEERR_INVALADDRESSID,
          "address 5 is INVALADDRESSID");
    free(acaps);

    /* 7. Open both lines. */
    DWORD_PTR hd1 = 0, hd2 = 0;
    const DWORD_PTR ht1 = 0x1111, ht2 = 0x2222;
    r = Open(10, ht1, &hd1, TAPI_2_2, line_event);
    CHECK(r == 0 && hd1 != 0, "lineOpen(10)");
    r = Open(11, ht2, &hd2, TAPI_2_2, line_event);
    CHECK(r == 0 && hd2 != 0 && hd2 != hd1, "lineOpen(11)");
    CHECK(SetStatusMessages(hd1, LINEDEVSTATE_INSERVICE | LINEDEVSTATE_OUTOFSERVICE,
                            LINEADDRESSSTATE_FORWARD) == 0,
          "lineSetStatusMessages");
    DWORD num = 0, addr = 99;
    CHECK(GetNumAddressIDs(hd1, &num) == 0 && num == 1, "one address");
    WCHAR w100[8];
    to_wide("100", w100);
    CHECK(GetAddressID(hd1, &addr, LINEADDRESSMODE_DIALABLEADDR, w100, 8) == 0 && addr == 0,
          "lineGetAddressID(\"100\") = 0");

    /* 8. MakeCall: the handle is there when the function returns. */
    const DWORD_PTR htc = 0x7001;
    DWORD_PTR hdc = 0;
    WCHAR dest[8];
    to_wide("200", dest);
    r = MakeCall(101, hd1, htc, &hdc, dest, 0, NULL);
    CHECK(r == 101 && hdc != 0, "lineMakeCall returns its request id 101, hdCall set (0x%lx)",
          (unsigned long)hdc);
    int i_dial = wait_state(htc, LINECALLSTATE_DIALING, 5000);
    int i_ring = wait_state(htc, LINECALLSTATE_RINGBACK, 5000);
    int i_conn = wait_state(htc, LINECALLSTATE_CONNECTED, 5000);
    CHECK(i_dial >= 0 && i_ring > i_dial && i_conn > i_ring,
          "LINE_CALLSTATE DIALING -> RINGBACK -> CONNECTED with htCall (%d %d %d)", i_dial,
          i_ring, i_conn);
    CHECK(i_conn >= 0 && events[i_conn].ht_line == ht1, "events carry htLine");
    LONG result = -1;
    CHECK(wait_completion(101, 5000, &result) >= 0 && result == 0,
          "ASYNC_COMPLETION(101, 0)");

    /* 9. Call status and info. */
    unsigned char *status = new_struct(20);
    CHECK(GetCallStatus(hdc, status) == LINEERR_STRUCTURETOOSMALL && canary_intact(status, 20),
          "LINECALLSTATUS of 20 bytes is STRUCTURETOOSMALL");
    free(status);
    status = new_struct(LINECALLSTATUS_SIZE);
    r = GetCallStatus(hdc, status);
    DWORD features = get32(status, 24);
    CHECK(r == 0 && get32(status, 12) == LINECALLSTATE_CONNECTED &&
              (features & LINECALLFEATURE_DROP) && (features & LINECALLFEATURE_HOLD) &&
              !(features & LINECALLFEATURE_UNHOLD) && canary_intact(status, LINECALLSTATUS_SIZE),
          "LINECALLSTATUS: CONNECTED, features 0x%x allow drop and hold, not unhold", features);
    free(status);
    unsigned char *info = new_struct(LINECALLINFO_SIZE_2_0);
    put32(info, 12, 0x4242); /* hLine belongs to TAPI */
    r = GetCallInfo(hdc, info);
    needed = get32(info, 4);
    CHECK(r == 0 && needed > LINECALLINFO_SIZE_2_0 && get32(info, 12) == 0x4242 &&
              canary_intact(info, LINECALLINFO_SIZE_2_0),
          "fixed-size LINECALLINFO: needs %u, TAPI's hLine kept", needed);
    free(info);
    if (needed > 65536) return failures;
    info = new_struct(needed);
    r = GetCallInfo(hdc, info);
    get_string(info, 132, text, sizeof text);
    CHECK(r == 0 && get32(info, 16) == 10 && get32(info, 80) == LINECALLORIGIN_OUTBOUND &&
              strcmp(text, "200") == 0 && get32(info, 8) == needed && canary_intact(info, needed),
          "LINECALLINFO: device 10, OUTBOUND, called id \"%s\"", text);
    free(info);
    sweep_call = hdc;
    CHECK(sweep(fill_callinfo, NULL, LINECALLINFO_SIZE_2_0, needed),
          "LINECALLINFO at every dwTotalSize 12..%u: no overrun", needed);
    DWORD a_id = 9, c_id = 0, rel = 9;
    CHECK(GetCallIDs(hdc, &a_id, &c_id, &rel) == 0 && a_id == 0 && c_id != 0,
          "lineGetCallIDs");
    unsigned char *astatus = new_struct(LINEADDRESSSTATUS_SIZE);
    r = GetAddressStatus(hd1, 0, astatus);
    CHECK(r == 0 && get32(astatus, 16) == 1 && canary_intact(astatus, LINEADDRESSSTATUS_SIZE),
          "LINEADDRESSSTATUS: one active call");
    free(astatus);
    unsigned char *dstatus = new_struct(LINEDEVSTATUS_SIZE);
    r = GetLineDevStatus(hd1, dstatus);
    CHECK(r == 0 && get32(dstatus, 20) == 1 && (get32(dstatus, 56) & 0x4) &&
              canary_intact(dstatus, LINEDEVSTATUS_SIZE),
          "LINEDEVSTATUS: one active call, in service");
    free(dstatus);

    /* 10. Hold and unhold. */
    CHECK(Hold(102, hdc) == 102, "lineHold accepted as 102");
    CHECK(wait_state(htc, LINECALLSTATE_ONHOLD, 5000) >= 0, "LINE_CALLSTATE ONHOLD");
    CHECK(wait_completion(102, 5000, &result) >= 0 && result == 0, "ASYNC_COMPLETION(102, 0)");
    int before_unhold = n_events;
    CHECK(Unhold(103, hdc) == 103, "lineUnhold accepted as 103");
    long end = now_ms() + 5000;
    while (find_event(before_unhold, 0, htc, LINE_CALLSTATE, LINECALLSTATE_CONNECTED, 0) < 0 &&
           now_ms() < end)
        sleep_us(5000);
    CHECK(find_event(before_unhold, 0, htc, LINE_CALLSTATE, LINECALLSTATE_CONNECTED, 0) >= 0,
          "LINE_CALLSTATE CONNECTED again");
    CHECK(wait_completion(103, 5000, &result) >= 0 && result == 0, "ASYNC_COMPLETION(103, 0)");

    /* 11. Requests the call's state does not allow: refused at once, never completed. */
    r = Answer(104, hdc, NULL, 0);
    CHECK(r == LINEERR_INVALCALLSTATE, "lineAnswer on a connected call: INVALCALLSTATE (0x%x)",
          (unsigned)r);
    r = Unhold(105, hdc);
    CHECK(r < 0, "lineUnhold on a connected call: negative LINEERR (0x%x)", (unsigned)r);

    /* 12. Forwarding, seen in LINEADDRESSSTATUS and announced with LINE_ADDRESSSTATE. */
    unsigned char fwd[8 + 32 + 16];
    memset(fwd, 0, sizeof fwd);
    put32(fwd, 0, sizeof fwd);
    put32(fwd, 4, 1);
    put32(fwd, 8, LINEFORWARDMODE_UNCOND);
    put32(fwd, 8 + 16, 8);      /* dwDestAddressSize */
    put32(fwd, 8 + 20, 8 + 32); /* dwDestAddressOffset, from the list's start */
    WCHAR w300[4];
    to_wide("300", w300);
    memcpy(fwd + 40, w300, 8);
    DWORD_PTR consult = 0x55;
    int before_fwd = n_events;
    r = Forward(109, hd1, 0, 0, fwd, 0, 0, &consult, NULL);
    CHECK(r == 109 && consult == 0, "lineForward(UNCOND to 300) accepted as 109");
    CHECK(wait_completion(109, 5000, &result) >= 0 && result == 0, "ASYNC_COMPLETION(109, 0)");
    end = now_ms() + 2000;
    while (find_event(before_fwd, 0, 0, LINE_ADDRESSSTATE, 0, 0) < 0 && now_ms() < end)
        sleep_us(5000);
    int i_as = find_event(before_fwd, 0, 0, LINE_ADDRESSSTATE, 0, 0);
    CHECK(i_as >= 0 && events[i_as].p2 == LINEADDRESSSTATE_FORWARD,
          "LINE_ADDRESSSTATE(FORWARD)");
    astatus = new_struct(LINEADDRESSSTATUS_SIZE + 64);
    r = GetAddressStatus(hd1, 0, astatus);
    DWORD fwd_off = get32(astatus, 44);
    char fdest[32] = "";
    if (r == 0 && get32(astatus, 36) == 1) get_string(astatus, fwd_off + 16, fdest, sizeof fdest);
    CHECK(r == 0 && get32(astatus, 36) == 1 && get32(astatus, fwd_off) == LINEFORWARDMODE_UNCOND &&
              strcmp(fdest, "300") == 0 && canary_intact(astatus, LINEADDRESSSTATUS_SIZE + 64),
          "LINEADDRESSSTATUS lists the forwarding to \"%s\"", fdest);
    free(astatus);
    CHECK(Forward(110, hd1, 0, 0, NULL, 0, 0, &consult, NULL) == 110 &&
              wait_completion(110, 5000, &result) >= 0 && result == 0,
          "lineForward(NULL) cancels, completes 0");
    /* Line 11 never enabled status messages: its forwarding is not announced. */
    int before_quiet = n_events;
    CHECK(Forward(111, hd2, 0, 0, fwd, 0, 0, &consult, NULL) == 111 &&
              wait_completion(111, 5000, &result) >= 0 && result == 0,
          "lineForward on line 11 completes 0");
    sleep_us(300 * 1000);
    int quiet = 1;
    lock_acquire();
    for (int k = before_quiet; k < n_events; k++)
        if (events[k].kind == 0 && events[k].msg == LINE_ADDRESSSTATE) quiet = 0;
    lock_release();
    CHECK(quiet, "no LINE_ADDRESSSTATE for a line without lineSetStatusMessages");
    CHECK(Forward(112, hd2, 0, 0, NULL, 0, 0, &consult, NULL) == 112 &&
              wait_completion(112, 5000, &result) >= 0 && result == 0,
          "line 11 forwarding cancelled");

    /* 13. Drop: IDLE; the handle stays valid until lineCloseCall. */
    CHECK(Drop(106, hdc, NULL, 0) == 106, "lineDrop accepted as 106");
    CHECK(wait_state(htc, LINECALLSTATE_IDLE, 5000) >= 0, "LINE_CALLSTATE IDLE");
    CHECK(wait_completion(106, 5000, &result) >= 0 && result == 0, "ASYNC_COMPLETION(106, 0)");
    status = new_struct(LINECALLSTATUS_SIZE);
    r = GetCallStatus(hdc, status);
    CHECK(r == 0 && get32(status, 12) == LINECALLSTATE_IDLE,
          "an idle call's handle is still valid (state IDLE)");
    CHECK(CloseCall(hdc) == 0, "lineCloseCall");
    CHECK(GetCallStatus(hdc, status) == LINEERR_INVALCALLHANDLE,
          "after lineCloseCall the handle is INVALCALLHANDLE");
    free(status);

    /* 13b. Consultation transfer: setup (new call with dial tone), dial, complete. */
    const DWORD_PTR hta = 0x7101, htb = 0x7102;
    DWORD_PTR hda = 0, hdb = 0;
    to_wide("201", dest);
    CHECK(MakeCall(120, hd1, hta, &hda, dest, 0, NULL) == 120 &&
              wait_state(hta, LINECALLSTATE_CONNECTED, 5000) >= 0 &&
              wait_completion(120, 5000, &result) >= 0 && result == 0,
          "a second call connects");
    r = SetupTransfer(121, hda, htb, &hdb, NULL);
    CHECK(r == 121 && hdb != 0 && hdb != hda,
          "lineSetupTransfer accepted as 121, consultation handle set before return");
    CHECK(wait_state(hta, LINECALLSTATE_ONHOLDPENDTRANSFER, 5000) >= 0 &&
              wait_state(htb, LINECALLSTATE_DIALTONE, 5000) >= 0 &&
              wait_completion(121, 5000, &result) >= 0 && result == 0,
          "call ONHOLDPENDTRANSFER, consultation call (TAPI's htConsultCall) DIALTONE");
    to_wide("202", dest);
    CHECK(Dial(122, hdb, dest, 0) == 122 && wait_state(htb, LINECALLSTATE_RINGBACK, 5000) >= 0 &&
              wait_completion(122, 5000, &result) >= 0 && result == 0,
          "lineDial on the consultation call: RINGBACK, completes 0");
    r = CompleteTransfer(124, hda, hdb, 0, NULL, LINETRANSFERMODE_CONFERENCE);
    CHECK(r < 0, "lineCompleteTransfer as a conference is refused at once (0x%x)", (unsigned)r);
    CHECK(CompleteTransfer(123, hda, hdb, 0, NULL, LINETRANSFERMODE_TRANSFER) == 123 &&
              wait_state(hta, LINECALLSTATE_IDLE, 5000) >= 0 &&
              wait_state(htb, LINECALLSTATE_IDLE, 5000) >= 0 &&
              wait_completion(123, 5000, &result) >= 0 && result == 0,
          "lineCompleteTransfer: both calls IDLE, completes 0");
    CHECK(CloseCall(hda) == 0 && CloseCall(hdb) == 0, "lineCloseCall both transfer calls");

    /* 14. Incoming call on line 11 (the virtual phone rings on request): LINE_NEWCALL
       immediately followed by OFFERING. */
    int ring = http_get("/phones/office/ring?line=101&from=0301234567&name=Alice");
    CHECK(ring == 202, "GET /phones/office/ring?line=101 answers 202 (%d)", ring);
    end = now_ms() + 10000;
    while (find_event(0, 0, 0, LINE_NEWCALL, 0, 0) < 0 && now_ms() < end) sleep_us(5000);
    int i_new = find_event(0, 0, 0, LINE_NEWCALL, 0, 0);
    CHECK(i_new >= 0 && events[i_new].ht_line == ht2 && events[i_new].ht_call == 0,
          "LINE_NEWCALL on htLine 0x2222 with htCall NULL");
    if (i_new < 0) goto out;
    DWORD_PTR hd_in = events[i_new].p1, ht_in = events[i_new].p2;
    end = now_ms() + 2000;
    while (n_events <= i_new + 1 && now_ms() < end) sleep_us(5000);
    Event next = events[i_new + 1];
    CHECK(next.kind == 0 && next.msg == LINE_CALLSTATE && next.ht_call == ht_in &&
              next.p1 == LINECALLSTATE_OFFERING,
          "the very next callback is LINE_CALLSTATE OFFERING with TAPI's new htCall");
    info = new_struct(1024);
    r = GetCallInfo(hd_in, info);
    char caller[64], name[64];
    get_string(info, 112, caller, sizeof caller);
    get_string(info, 120, name, sizeof name);
    CHECK(r == 0 && get32(info, 16) == 11 && get32(info, 80) == LINECALLORIGIN_UNKNOWN &&
              strcmp(caller, "0301234567") == 0 && strcmp(name, "Alice") == 0,
          "incoming LINECALLINFO: device 11, caller \"%s\" \"%s\"", caller, name);
    free(info);
    CHECK(Answer(107, hd_in, NULL, 0) == 107, "lineAnswer accepted as 107");
    CHECK(wait_state(ht_in, LINECALLSTATE_CONNECTED, 5000) >= 0, "incoming call CONNECTED");
    CHECK(wait_completion(107, 5000, &result) >= 0 && result == 0, "ASYNC_COMPLETION(107, 0)");
    CHECK(Drop(108, hd_in, NULL, 0) == 108 && wait_state(ht_in, LINECALLSTATE_IDLE, 5000) >= 0 &&
              wait_completion(108, 5000, &result) >= 0 && result == 0,
          "incoming call dropped: IDLE, ASYNC_COMPLETION(108, 0)");
    CHECK(CloseCall(hd_in) == 0, "lineCloseCall(incoming)");

    /* 14a. Remote mode: the central host is killed in the middle of a call and started again.
       Both lines have lineSetStatusMessages(INSERVICE | OUTOFSERVICE) from here on. */
    if (remote) {
        CHECK(SetStatusMessages(hd2, LINEDEVSTATE_INSERVICE | LINEDEVSTATE_OUTOFSERVICE, 0) == 0,
              "lineSetStatusMessages on line 11 too");
        const DWORD_PTR htr = 0x7401, htp = 0x7402;
        DWORD_PTR hdr = 0, hdp = 0;
        to_wide("205", dest);
        CHECK(MakeCall(140, hd1, htr, &hdr, dest, 0, NULL) == 140 &&
                  wait_state(htr, LINECALLSTATE_CONNECTED, 8000) >= 0 &&
                  wait_completion(140, 8000, &result) >= 0 && result == 0,
              "remote: a call on line 10 is CONNECTED before the host goes");
        /* A request that is still pending on the host when it goes: lineDial on a call in
           dial tone (the host's phone takes dial_ms = 1500 to dial). A lineMakeCall with a
           number would not do: it completes as soon as dialling has begun. */
        r = MakeCall(146, hd2, htp, &hdp, NULL, 0, NULL);
        CHECK(r == 146 && hdp != 0 && wait_state(htp, LINECALLSTATE_DIALTONE, 5000) >= 0 &&
                  wait_completion(146, 5000, &result) >= 0 && result == 0,
              "remote: lineMakeCall 146 without a number on line 11: DIALTONE, completes 0");
        to_wide("206", dest);
        r = Dial(141, hdp, dest, 0);
        CHECK(r == 141, "remote: lineDial 141 on it accepted (still dialling)");
        int before_kill = n_events;
        CHECK(host_request("stop"), "remote: the test killed the host");
        int i_oos1 = wait_event(before_kill, 0, LINE_LINEDEVSTATE, LINEDEVSTATE_OUTOFSERVICE, 10000);
        CHECK(i_oos1 >= 0 && events[i_oos1].ht_line == ht1 &&
                  find_event(before_kill, 0, 0, LINE_LINEDEVSTATE, LINEDEVSTATE_OUTOFSERVICE, 0) >= 0,
              "remote: host lost -> LINE_LINEDEVSTATE(OUTOFSERVICE)");
        CHECK(wait_completion(141, 10000, &result) >= 0 && result < 0,
              "remote: the pending lineDial 141 completed with an error (0x%x)", (unsigned)result);
        CHECK(wait_service(hd1, 0) && wait_service(hd2, 0),
              "remote: LINEDEVSTATUS of both lines no longer INSERVICE");
        DWORD_PTR hdx = 0;
        r = MakeCall(144, hd1, 0x7404, &hdx, dest, 0, NULL);
        CHECK(r < 0, "remote: lineMakeCall while the host is away is refused at once (0x%x)",
              (unsigned)r);
        status = new_struct(LINECALLSTATUS_SIZE);
        r = GetCallStatus(hdr, status);
        CHECK(r == 0 && get32(status, 12) == LINECALLSTATE_CONNECTED,
              "remote: the call keeps its last state (CONNECTED) while the host is away");
        free(status);
        int before_start = n_events;
        CHECK(host_request("start"), "remote: the test started the host again");
        int i_ins1 = wait_event(before_start, 0, LINE_LINEDEVSTATE, LINEDEVSTATE_INSERVICE, 30000);
        int in1 = wait_service(hd1, 1), in2 = wait_service(hd2, 1);
        CHECK(i_ins1 >= 0 && in1 && in2,
              "remote: reconnected without restarting TAPISRV -> LINE_LINEDEVSTATE(INSERVICE) (%d %d %d)",
              i_ins1, in1, in2);
        if (i_ins1 < 0)
            for (int k = before_kill; k < n_events; k++)
                printf("# event %d: kind %d msg %u htLine 0x%lx htCall 0x%lx p1 0x%lx p2 0x%lx\n", k,
                       events[k].kind, (unsigned)events[k].msg, (unsigned long)events[k].ht_line,
                       (unsigned long)events[k].ht_call, (unsigned long)events[k].p1,
                       (unsigned long)events[k].p2);
        int i_lost = wait_event(before_start, htr, LINE_CALLSTATE, LINECALLSTATE_DISCONNECTED, 10000);
        CHECK(i_lost >= 0, "remote: the restarted host forgot the call: DISCONNECTED");
        CHECK(Drop(142, hdr, NULL, 0) == 142 && wait_state(htr, LINECALLSTATE_IDLE, 5000) >= 0 &&
                  wait_completion(142, 5000, &result) >= 0 && result == 0,
              "remote: lineDrop of the lost call: IDLE, completes 0");
        CHECK(CloseCall(hdr) == 0 && CloseCall(hdp) == 0, "remote: lineCloseCall both");
        const DWORD_PTR hta2 = 0x7403;
        DWORD_PTR hda2 = 0;
        to_wide("207", dest);
        CHECK(MakeCall(143, hd1, hta2, &hda2, dest, 0, NULL) == 143 &&
                  wait_state(hta2, LINECALLSTATE_CONNECTED, 8000) >= 0 &&
                  wait_completion(143, 8000, &result) >= 0 && result == 0,
              "remote: a new call after the restart reaches CONNECTED");
        CHECK(Drop(145, hda2, NULL, 0) == 145 && wait_state(hta2, LINECALLSTATE_IDLE, 5000) >= 0 &&
                  wait_completion(145, 5000, &result) >= 0 && result == 0 && CloseCall(hda2) == 0,
              "remote: and drops");
        sleep_us(300 * 1000);
        CHECK(count_completions(141) == 1 && count_completions(144) == 0,
              "remote: the request pending at the loss completed exactly once; the refused one never");
    }

out:
    /* 14b. A line that appears, changes service and goes at run time, driven over HTTP. */
    CHECK(phones_port > 0, "the phone endpoint's port is given (TSPI_HARNESS_PHONES_PORT=%d)",
          phones_port);
    const DWORD_PTR ht3 = 0x3333, htc3 = 0x7301;
    DWORD_PTR hd3 = 0, hdc3 = 0;
    int before_add = n_events;
    int http = http_get("/phones/office/lines/add?key=300&name=Late");
    CHECK(http == 202, "GET /phones/office/lines/add?key=300&name=Late answers 202 (%d)", http);
    int i_create = wait_event(before_add, 0, LINE_CREATE, 0, 5000);
    DWORD_PTR temp = i_create >= 0 ? events[i_create].p2 : 0;
    CHECK(i_create >= 0 && events[i_create].ht_line == 0 && events[i_create].ht_call == 0 &&
              events[i_create].p1 == 0xABC && temp != 0,
          "LINE_CREATE through the providerEnumDevices callback: p1 = hProvider, p2 = temp id %lu",
          (unsigned long)temp);
    CHECK(Negotiate(12, TAPI_2_0, TAPI_2_2, &version) == LINEERR_BADDEVICEID,
          "before providerCreateLineDevice device 12 is BADDEVICEID");
    r = CreateLineDevice(temp, 12);
    CHECK(r == 0, "providerCreateLineDevice(temp id, 12) (r=0x%x)", (unsigned)r);
    CHECK(CreateLineDevice(temp, 13) == LINEERR_BADDEVICEID,
          "a temp id binds once: a second providerCreateLineDevice is BADDEVICEID");
    CHECK(Negotiate(12, TAPI_2_0, TAPI_2_2, &version) == 0 && version == TAPI_2_2,
          "device 12 negotiates 2.2");
    caps = new_struct(1024);
    r = GetDevCaps(12, TAPI_2_2, 0, caps);
    get_string(caps, 32, text, sizeof text);
    CHECK(r == 0 && strcmp(text, "Late") == 0 && get32(caps, 48) == 1 && canary_intact(caps, 1024),
          "lineGetDevCaps(12): line name \"%s\", one address", text);
    free(caps);
    acaps = new_struct(1024);
    r = GetAddressCaps(12, 0, TAPI_2_2, 0, acaps);
    get_string(acaps, 16, text, sizeof text);
    CHECK(r == 0 && get32(acaps, 12) == 12 && strcmp(text, "300") == 0,
          "lineGetAddressCaps(12): address \"%s\"", text);
    free(acaps);
    r = Open(12, ht3, &hd3, TAPI_2_2, line_event);
    CHECK(r == 0 && hd3 != 0 && hd3 != hd1 && hd3 != hd2, "lineOpen(12) on the new line");
    to_wide("203", dest);
    r = MakeCall(130, hd3, htc3, &hdc3, dest, 0, NULL);
    CHECK(r == 130 && hdc3 != 0 && wait_state(htc3, LINECALLSTATE_CONNECTED, 5000) >= 0 &&
              wait_completion(130, 5000, &result) >= 0 && result == 0,
          "lineMakeCall on the new line: CONNECTED, ASYNC_COMPLETION(130, 0)");

    /* Service changes: filtered until lineSetStatusMessages asks for them. */
    int before_service = n_events;
    http = http_get("/phones/office/lines/out-of-service?key=300&reason=maintenance");
    CHECK(http == 202 && wait_service(hd3, 0),
          "/lines/out-of-service: LINEDEVSTATUS no longer INSERVICE (%d)", http);
    const DWORD_PTR htc4 = 0x7302;
    DWORD_PTR hdc4 = 0;
    r = MakeCall(133, hd3, htc4, &hdc4, dest, 0, NULL);
    CHECK(r < 0, "lineMakeCall on a line out of service is refused at once (0x%x)", (unsigned)r);
    http = http_get("/phones/office/lines/in-service?key=300");
    CHECK(http == 202 && wait_service(hd3, 1), "/lines/in-service: LINEDEVSTATUS INSERVICE (%d)",
          http);
    CHECK(find_event(before_service, 0, 0, LINE_LINEDEVSTATE, 0, 0) < 0,
          "no LINE_LINEDEVSTATE while lineSetStatusMessages has not enabled it");
    CHECK(SetStatusMessages(hd3, LINEDEVSTATE_INSERVICE | LINEDEVSTATE_OUTOFSERVICE, 0) == 0,
          "lineSetStatusMessages(INSERVICE | OUTOFSERVICE) on the new line");
    before_service = n_events;
    http = http_get("/phones/office/lines/out-of-service?key=300&reason=maintenance");
    int i_oos = wait_event(before_service, 0, LINE_LINEDEVSTATE, LINEDEVSTATE_OUTOFSERVICE, 5000);
    CHECK(http == 202 && i_oos >= 0 && events[i_oos].ht_line == ht3,
          "LINE_LINEDEVSTATE(OUTOFSERVICE) on htLine 0x3333");
    http = http_get("/phones/office/lines/in-service?key=300");
    int i_ins = wait_event(before_service, 0, LINE_LINEDEVSTATE, LINEDEVSTATE_INSERVICE, 5000);
    CHECK(http == 202 && i_ins > i_oos && events[i_ins].ht_line == ht3,
          "LINE_LINEDEVSTATE(INSERVICE) on htLine 0x3333, after OUTOFSERVICE (%d: %d %d)", http,
          i_oos, i_ins);

    /* Removal of an open line with a connected call. */
    int before_remove = n_events;
    http = http_get("/phones/office/lines/remove?key=300");
    int i_remove = wait_event(before_remove, 0, LINE_REMOVE, 0, 5000);
    int i_close = find_event(before_remove, 0, 0, LINE_CLOSE, 0, 0);
    int i_idle3 = find_event(before_remove, 0, htc3, LINE_CALLSTATE, LINECALLSTATE_IDLE, 0);
    CHECK(http == 202 && i_close >= 0 && events[i_close].ht_line == ht3 && i_remove > i_close &&
              events[i_remove].p1 == 12 && events[i_remove].ht_line == 0,
          "/lines/remove: LINE_CLOSE on htLine 0x3333, then LINE_REMOVE(12) (%d %d)", i_close,
          i_remove);
    CHECK(i_idle3 >= 0 && i_idle3 < i_close,
          "the line's call ended first: LINE_CALLSTATE IDLE before LINE_CLOSE");
    sleep_us(300 * 1000);
    CHECK(i_remove >= 0 && events_about(i_remove + 1, ht3, htc3) == 0,
          "after LINE_REMOVE nothing more about the removed line or its call");
    r = Drop(131, hdc3, NULL, 0);
    CHECK(r < 0, "lineDrop on the removed line's call is refused at once (0x%x)", (unsigned)r);
    status = new_struct(LINECALLSTATUS_SIZE);
    r = GetCallStatus(hdc3, status);
    CHECK(r == 0 && get32(status, 12) == LINECALLSTATE_IDLE,
          "the removed line's call handle stays valid until lineCloseCall (IDLE)");
    free(status);
    CHECK(CloseCall(hdc3) == 0, "lineCloseCall on the removed line's call");
    to_wide("204", dest);
    DWORD_PTR hdc5 = 0;
    r = MakeCall(132, hd3, 0x7303, &hdc5, dest, 0, NULL);
    CHECK(r == LINEERR_INVALLINEHANDLE, "lineMakeCall on the closed line: INVALLINEHANDLE (0x%x)",
          (unsigned)r);
    caps = new_struct(1024);
    DWORD_PTR hd_again = 0;
    CHECK(Negotiate(12, TAPI_2_0, TAPI_2_2, &version) == LINEERR_BADDEVICEID &&
              GetDevCaps(12, TAPI_2_2, 0, caps) == LINEERR_BADDEVICEID &&
              Open(12, 0x3334, &hd_again, TAPI_2_2, line_event) == LINEERR_BADDEVICEID,
          "the removed device 12: negotiate, lineGetDevCaps and lineOpen are BADDEVICEID");
    free(caps);
    CHECK(Close(hd3) == 0 && Close(hd3) == LINEERR_INVALLINEHANDLE,
          "lineClose of the handle TAPI got LINE_CLOSE for succeeds once");

    /* The same key again is a new device; removing it unopened sends LINE_REMOVE only. */
    int before_again = n_events;
    http = http_get("/phones/office/lines/add?key=300&name=Again");
    int i_create2 = wait_event(before_again, 0, LINE_CREATE, 0, 5000);
    DWORD_PTR temp2 = i_create2 >= 0 ? events[i_create2].p2 : 0;
    CHECK(http == 202 && i_create2 >= 0 && temp2 != 0 && temp2 != temp &&
              CreateLineDevice(temp2, 13) == 0,
          "the line added again: a new LINE_CREATE (temp id %lu), bound to device 13",
          (unsigned long)temp2);
    caps = new_struct(1024);
    r = GetDevCaps(13, TAPI_2_2, 0, caps);
    get_string(caps, 32, text, sizeof text);
    CHECK(r == 0 && strcmp(text, "Again") == 0 &&
              Negotiate(12, TAPI_2_0, TAPI_2_2, &version) == LINEERR_BADDEVICEID,
          "device 13 is \"%s\"; device 12 stays gone", text);
    free(caps);
    before_remove = n_events;
    http = http_get("/phones/office/lines/remove?key=300");
    i_remove = wait_event(before_remove, 0, LINE_REMOVE, 13, 5000);
    CHECK(http == 202 && i_remove >= 0 && find_event(before_remove, 0, 0, LINE_CLOSE, 0, 0) < 0,
          "removing the unopened line: LINE_REMOVE(13), no LINE_CLOSE");
    http = http_get("/phones/office/lines/remove?key=300");
    CHECK(http == 404, "removing it twice: 404 (%d)", http);
    /* 15. Close the lines. */
    CHECK(Close(hd1) == 0 && Close(hd2) == 0, "lineClose both lines");
    CHECK(Close(hd1) == LINEERR_INVALLINEHANDLE, "a closed line's handle is INVALLINEHANDLE");

    /* 16. Exactly one completion per accepted request, none for refused ones. */
    DWORD accepted_ids[] = {101, 102, 103, 106, 107, 108, 109, 110, 111, 112, 120,
                            121, 122, 123, 130, 140, 141, 142, 143, 145};
    size_t n_accepted = sizeof accepted_ids / sizeof *accepted_ids;
    if (!remote) n_accepted -= 5; /* 140..145 are the remote phase's */
    int once = 1;
    for (size_t k = 0; k < n_accepted; k++)
        if (count_completions(accepted_ids[k]) != 1) {
            printf("# request %u completed %d times\n", accepted_ids[k],
                   count_completions(accepted_ids[k]));
            once = 0;
        }
    CHECK(once, "every accepted request completed exactly once");
    CHECK(count_completions(104) == 0 && count_completions(105) == 0 &&
              count_completions(124) == 0 && count_completions(131) == 0 &&
              count_completions(132) == 0 && count_completions(133) == 0,
          "refused requests never complete");

    /* 16b. IDLE is final: no LINE_CALLSTATE or LINE_CALLINFO about a call after its IDLE. */
    int after_idle = 0;
    lock_acquire();
    for (int k = 0; k < n_events; k++) {
        if (events[k].kind != 0 || events[k].msg != LINE_CALLSTATE ||
            events[k].p1 != LINECALLSTATE_IDLE)
            continue;
        for (int m = k + 1; m < n_events; m++)
            if (events[m].kind == 0 && events[m].ht_call == events[k].ht_call &&
                (events[m].msg == LINE_CALLSTATE || events[m].msg == LINE_CALLINFO))
                after_idle++;
    }
    lock_release();
    CHECK(after_idle == 0, "no call message follows a call's IDLE");

    /* 17. Shutdown: nothing afterwards, nothing ever re-entered. */
    r = Shutdown(TAPI_2_2, 7);
    shut_down = 1;
    CHECK(r == 0, "providerShutdown");
    int count_at_shutdown = n_events;
    sleep_us(700 * 1000);
    CHECK(after_shutdown == 0 && n_events == count_at_shutdown,
          "no callback after providerShutdown returned (waited 700 ms)");
    CHECK(reentered == 0, "no callback was entered while another ran");
    caps = new_struct(1024);
    CHECK(GetDevCaps(10, TAPI_2_2, 0, caps) < 0, "after shutdown functions refuse");
    free(caps);

    /* 18. Shutdown released everything: the provider starts again in the same process. */
    shut_down = 0;
    r = EnumDevices(7, &lines, &phones, (DWORD_PTR)0xABC, line_create_event, NULL);
    CHECK(r == 0 && lines == 2, "providerEnumDevices again after shutdown: 2 lines");
    CHECK(Init(TAPI_2_2, 7, 20, 0, lines, 0, completion, &options) == 0 &&
              Negotiate(20, TAPI_2_0, TAPI_2_2, &version) == 0 &&
              Negotiate(10, TAPI_2_0, TAPI_2_2, &version) == LINEERR_BADDEVICEID,
          "providerInit again with base 20: the new ids hold, the old ones are gone");
    CHECK(Shutdown(TAPI_2_2, 7) == 0, "providerShutdown again");
    shut_down = 1;
    int count_at_second = n_events;
    sleep_us(200 * 1000);
    CHECK(n_events == count_at_second && reentered == 0 && after_shutdown == 0,
          "no callback after the second shutdown either");

    printf("%d checks, %d failures, %d callbacks\n", checks, failures, n_events);
    if (failures == 0) printf("HARNESS PASS\n");
    return failures;
}
