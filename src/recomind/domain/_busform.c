/* The bus's own event form decoded into Arrow column buffers, in one pass over a poll's values.
 *
 * `event_columns.decode_columns` parses a poll with Arrow's JSON reader and then checks the
 * event rules as column operations. That takes 0.9-1.3 us an event here, and for a batch of
 * 8,500 events it was a fifth of the store group's drain. This module takes only the exact
 * bytes `VideoActionRecorded.to_json` writes (its keys in its order, no spaces, `watch_ms` an
 * integer or absent) and checks the same rules as it reads them, in about 0.13 us an event.
 * Anything else, valid or not, makes it answer None, and the caller goes on to the Arrow path,
 * which stays the reference: on every batch this module takes, the Arrow path makes the same
 * table (tests/unit/test_native_bus_decoder.py). So it may refuse more than it must, never accept
 * more. Every read is bounded by the end of the input; the parse runs without the GIL, on a
 * `bytes` (immutable).
 *
 * decode(blob: bytes, n: int) -> tuple | None: `blob` is n values joined by "\n". The tuple:
 * (offsets, data) for id, user_id, video_id and action_type (int32 offsets, n + 1 of them),
 * then the timestamps (int64 UTC microseconds), watch_ms (int64, 0 where absent), its validity
 * bitmap (LSB first) and the count of absent ones.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define MAX_ID 64                    /* validation.ID_PATTERN: [A-Za-z0-9._:-]{1,64} */
#define UUID_LENGTH 36               /* validation.CANONICAL_UUID */
#define MAX_WATCH_MS 2147483647LL    /* validation.MAX_WATCH_MS */
#define STRING_COLUMNS 4             /* id, user_id, video_id, action_type */

typedef struct {
    const char *p;   /* the next byte to read */
    const char *end; /* one past the last byte of the input */
} Reader;

typedef struct {
    int32_t *offsets;
    char *data;
    int32_t used;
} Column;

/* Consume `text` (a C string literal) if the input goes on with it. */
#define EXPECT(r, text) expect((r), (text), sizeof(text) - 1)
static int expect(Reader *r, const char *text, size_t n) {
    if ((size_t)(r->end - r->p) < n || memcmp(r->p, text, n) != 0) return 0;
    r->p += n;
    return 1;
}

static int is_lower_hex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }

static int is_id_char(char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '.' || c == '_' || c == ':' || c == '-';
}

/* `count` decimal digits at p (the caller has checked they are in the input). */
static int read_digits(const char *p, int count, int *value) {
    int v = 0;
    for (int i = 0; i < count; i++) {
        if (p[i] < '0' || p[i] > '9') return 0;
        v = v * 10 + (p[i] - '0');
    }
    *value = v;
    return 1;
}

/* Days from 1970-01-01 to a date of the proleptic Gregorian calendar, as Arrow counts them
 * (H. Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = (unsigned)(y - era * 400);
    const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static int days_in_month(int y, int m) {
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0)) return 29;
    return days[m - 1];
}

static void append(Column *c, Py_ssize_t row, const char *s, int32_t n) {
    memcpy(c->data + c->used, s, (size_t)n);
    c->used += n;
    c->offsets[row + 1] = c->used;
}

/* An id of [A-Za-z0-9._:-]{1,64}, then its closing quote. */
static int read_id(Reader *r, Column *c, Py_ssize_t row) {
    const char *start = r->p, *q = r->p;
    while (q < r->end && q - start <= MAX_ID && is_id_char(*q)) q++;
    if (q == start || q - start > MAX_ID || q >= r->end || *q != '"') return 0;
    append(c, row, start, (int32_t)(q - start));
    r->p = q + 1;
    return 1;
}

/* A canonical UUID (lower-case hex, dashes at 8, 13, 18 and 23), then its closing quote. */
static int read_uuid(Reader *r, Column *c, Py_ssize_t row) {
    const char *p = r->p;
    if (r->end - p < UUID_LENGTH + 1 || p[UUID_LENGTH] != '"') return 0;
    for (int k = 0; k < UUID_LENGTH; k++) {
        int dash = k == 8 || k == 13 || k == 18 || k == 23;
        if (dash ? p[k] != '-' : !is_lower_hex(p[k])) return 0;
    }
    append(c, row, p, UUID_LENGTH);
    r->p = p + UUID_LENGTH + 1;
    return 1;
}

/* What datetime.isoformat() writes for an aware UTC time of years 1000-9999,
 * YYYY-MM-DDTHH:MM:SS[.ffffff]+00:00, a real date, then its closing quote. */
static int read_utc_time(Reader *r, int64_t *micros) {
    const char *p = r->p;
    int y, mo, d, h, mi, s, us = 0;
    if (r->end - p < 19) return 0;
    if (!read_digits(p, 4, &y) || p[4] != '-' || !read_digits(p + 5, 2, &mo) || p[7] != '-' ||
        !read_digits(p + 8, 2, &d) || p[10] != 'T' || !read_digits(p + 11, 2, &h) ||
        p[13] != ':' || !read_digits(p + 14, 2, &mi) || p[16] != ':' ||
        !read_digits(p + 17, 2, &s))
        return 0;
    if (y < 1000 || mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 ||
        mi > 59 || s > 59)
        return 0;
    r->p = p + 19;
    if (r->p < r->end && *r->p == '.') {
        if (r->end - r->p < 7 || !read_digits(r->p + 1, 6, &us)) return 0;
        r->p += 7;
    }
    if (!EXPECT(r, "+00:00\"")) return 0;
    int64_t seconds = days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 + h * 3600 + mi * 60 + s;
    *micros = seconds * 1000000 + us;
    return 1;
}

/* A non-negative integer up to MAX_WATCH_MS, as JSON writes it (no leading zero). */
static int read_watch_ms(Reader *r, int64_t *value) {
    const char *start = r->p, *q = r->p;
    int64_t v = 0;
    while (q < r->end && *q >= '0' && *q <= '9' && q - start < 10) v = v * 10 + (*q++ - '0');
    if (q == start || (q - start > 1 && *start == '0') || v > MAX_WATCH_MS) return 0;
    if (q < r->end && *q >= '0' && *q <= '9') return 0; /* an 11th digit */
    *value = v;
    r->p = q;
    return 1;
}

typedef struct {
    Column strings[STRING_COLUMNS];
    int64_t *micros;
    int64_t *watch_ms;
    uint8_t *watched; /* validity bitmap of watch_ms */
    Py_ssize_t absent;
} Columns;

static int read_event(Reader *r, Columns *out, Py_ssize_t row) {
    if (!EXPECT(r, "{\"id\":\"") || !read_uuid(r, &out->strings[0], row)) return 0;
    if (!EXPECT(r, ",\"user_id\":\"") || !read_id(r, &out->strings[1], row)) return 0;
    if (!EXPECT(r, ",\"video_id\":\"") || !read_id(r, &out->strings[2], row)) return 0;
    if (!EXPECT(r, ",\"action_type\":\"")) return 0;
    if (!(EXPECT(r, "view\"") || EXPECT(r, "like\"") || EXPECT(r, "skip\""))) return 0;
    append(&out->strings[3], row, r->p - 5, 4);
    if (!EXPECT(r, ",\"timestamp\":\"") || !read_utc_time(r, &out->micros[row])) return 0;
    if (EXPECT(r, ",\"watch_ms\":")) {
        if (!read_watch_ms(r, &out->watch_ms[row])) return 0;
        out->watched[row >> 3] |= (uint8_t)(1u << (row & 7));
    } else {
        out->watch_ms[row] = 0;
        out->absent++;
    }
    return EXPECT(r, "}");
}

static int read_events(Reader *r, Columns *out, Py_ssize_t n) {
    for (Py_ssize_t row = 0; row < n; row++) {
        if (row > 0 && !EXPECT(r, "\n")) return 0;
        if (!read_event(r, out, row)) return 0;
    }
    return r->p == r->end;
}

#define BUFFERS (2 * STRING_COLUMNS + 3)

static PyObject *decode(PyObject *Py_UNUSED(module), PyObject *args) {
    PyObject *bytes; /* `bytes`, not any buffer: it cannot change while the GIL is released */
    Py_ssize_t n;
    if (!PyArg_ParseTuple(args, "Sn", &bytes, &n)) return NULL;
    Py_buffer blob;
    if (PyObject_GetBuffer(bytes, &blob, PyBUF_SIMPLE) < 0) return NULL;
    PyObject *buffers[BUFFERS] = {0};
    PyObject *result = NULL;
    /* n values take at least n - 1 separators; offsets are 32-bit. */
    if (n <= 0 || n > blob.len || blob.len > INT32_MAX) {
        result = Py_NewRef(Py_None);
        goto done;
    }
    static const Py_ssize_t widest[STRING_COLUMNS] = {UUID_LENGTH, MAX_ID, MAX_ID, 4};
    Columns out = {0};
    for (int c = 0; c < STRING_COLUMNS; c++) {
        Py_ssize_t room = widest[c] < blob.len / n ? widest[c] * n : blob.len;
        buffers[2 * c] = PyBytes_FromStringAndSize(NULL, (n + 1) * (Py_ssize_t)sizeof(int32_t));
        buffers[2 * c + 1] = PyBytes_FromStringAndSize(NULL, room);
        if (!buffers[2 * c] || !buffers[2 * c + 1]) goto done;
        out.strings[c].offsets = (int32_t *)PyBytes_AS_STRING(buffers[2 * c]);
        out.strings[c].data = PyBytes_AS_STRING(buffers[2 * c + 1]);
        out.strings[c].offsets[0] = 0;
    }
    buffers[8] = PyBytes_FromStringAndSize(NULL, n * (Py_ssize_t)sizeof(int64_t));
    buffers[9] = PyBytes_FromStringAndSize(NULL, n * (Py_ssize_t)sizeof(int64_t));
    buffers[10] = PyBytes_FromStringAndSize(NULL, (n + 7) / 8);
    if (!buffers[8] || !buffers[9] || !buffers[10]) goto done;
    out.micros = (int64_t *)PyBytes_AS_STRING(buffers[8]);
    out.watch_ms = (int64_t *)PyBytes_AS_STRING(buffers[9]);
    out.watched = (uint8_t *)PyBytes_AS_STRING(buffers[10]);
    memset(out.watched, 0, (size_t)((n + 7) / 8));
    Reader reader = {blob.buf, (const char *)blob.buf + blob.len};
    int taken;
    Py_BEGIN_ALLOW_THREADS
    taken = read_events(&reader, &out, n);
    Py_END_ALLOW_THREADS
    if (!taken) {
        result = Py_NewRef(Py_None);
        goto done;
    }
    for (int c = 0; c < STRING_COLUMNS; c++)
        if (_PyBytes_Resize(&buffers[2 * c + 1], out.strings[c].used) < 0) goto done;
    PyObject *absent = PyLong_FromSsize_t(out.absent);
    if (!absent) goto done;
    result = PyTuple_New(BUFFERS + 1);
    if (!result) {
        Py_DECREF(absent);
        goto done;
    }
    for (int k = 0; k < BUFFERS; k++) {
        PyTuple_SET_ITEM(result, k, buffers[k]);
        buffers[k] = NULL;
    }
    PyTuple_SET_ITEM(result, BUFFERS, absent);
done:
    for (int k = 0; k < BUFFERS; k++) Py_XDECREF(buffers[k]);
    PyBuffer_Release(&blob);
    return result;
}

static PyMethodDef methods[] = {
    {"decode", decode, METH_VARARGS,
     "decode(blob, n): the n events of blob as Arrow column buffers, or None"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef busform = {
    PyModuleDef_HEAD_INIT,
    .m_name = "_busform",
    .m_doc = "The bus's own event form decoded into Arrow column buffers.",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC PyInit__busform(void) { return PyModule_Create(&busform); }
