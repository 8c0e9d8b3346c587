/* The FeatureReader's native item decoder: item records (recsys.features.layout) -> rows of the feature matrix.
 *
 * It computes what FeatureReader's numpy path computes (totals, window sums, catalog, affinities, profile
 * match), in one pass over the records with no temporary arrays: the numpy path spends most of a 1,000-item
 * read in small array operations. Everything it needs to know about the layout comes from a plan built in
 * Python from the spec (recsys.features.native.decoder_plan), so the spec stays the one declaration.
 * tests/unit/features/test_native_decoder.py checks both paths give the same matrix on arbitrary records.
 * It also packs the reader's requests, parses the replies, and keeps item records across reads (ItemCache).
 * Build: python recsys/features/build_native.py (make install does it).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#define MAX_TOTALS 32
#define MAX_RINGS 8
#define MAX_KINDS 8
#define MAX_TOPICS 16

typedef struct {
    Py_ssize_t word;
    Py_ssize_t column;
} Total;

typedef struct {
    Py_ssize_t head;  /* word of the ring's head; its slots follow */
    int64_t bucket_seconds;  /* below 2^32: a head (uint32) is divided in 32 bits */
    int64_t buckets;
    Py_ssize_t slot_words;
    Py_ssize_t columns[MAX_KINDS];  /* column of each kind's window sum, -1: none */
} Ring;

typedef struct {
    PyObject_HEAD
    Py_ssize_t record_size, counter_offset, columns;
    int catalog;  /* item records have a catalog section; creator records are counters only */
    Py_ssize_t n_totals, n_rings;
    Total totals[MAX_TOTALS];
    Ring rings[MAX_RINGS];
    Py_ssize_t creator_offset, franchise_offset, topics_offset, max_topics, price_offset, created_offset,
        flags_offset;
    uint32_t flag_known, flag_paid, flag_animated;
    Py_ssize_t price_column, paid_column, animated_column, age_column;
    Py_ssize_t affinity_topic_column, affinity_creator_column, affinity_franchise_column, profile_match_column;
    int64_t creator_salt, franchise_salt;
    double day_seconds;
    Py_ssize_t n_creator_columns;
    Py_ssize_t creator_columns[MAX_KINDS];  /* where the creator cache's feature values go, in their order */
} ItemDecoder;

static inline uint32_t be32(const unsigned char *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return __builtin_bswap32(v);
}

static inline int64_t be_i64(const unsigned char *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    v = __builtin_bswap64(v);
    int64_t s;
    memcpy(&s, &v, 8);
    return s;
}

static inline double be_f64(const unsigned char *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    v = __builtin_bswap64(v);
    double d;
    memcpy(&d, &v, 8);
    return d;
}

static inline float be_f32(const unsigned char *p) {
    uint32_t v = be32(p);
    float f;
    memcpy(&f, &v, 4);
    return f;
}

static inline int64_t floor_div(int64_t a, int64_t b) {
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

static inline int64_t floor_mod(int64_t a, int64_t b) {
    int64_t r = a % b;
    return (r != 0 && (r < 0) != (b < 0)) ? r + b : r;
}

/* ---- plan parsing: every field comes from a dict built by recsys.features.native.decoder_plan ---- */

static int plan_ssize(PyObject *plan, const char *name, Py_ssize_t *out) {
    PyObject *value = PyDict_GetItemString(plan, name);
    if (value == NULL) {
        PyErr_Format(PyExc_KeyError, "decoder plan has no '%s'", name);
        return -1;
    }
    *out = PyLong_AsSsize_t(value);
    return (*out == -1 && PyErr_Occurred()) ? -1 : 0;
}

static int plan_i64(PyObject *plan, const char *name, int64_t *out) {
    PyObject *value = PyDict_GetItemString(plan, name);
    if (value == NULL) {
        PyErr_Format(PyExc_KeyError, "decoder plan has no '%s'", name);
        return -1;
    }
    *out = PyLong_AsLongLong(value);
    return (*out == -1 && PyErr_Occurred()) ? -1 : 0;
}

static PyObject *plan_sequence(PyObject *plan, const char *name, Py_ssize_t limit) {
    PyObject *value = PyDict_GetItemString(plan, name);
    if (value == NULL) {
        PyErr_Format(PyExc_KeyError, "decoder plan has no '%s'", name);
        return NULL;
    }
    PyObject *items = PySequence_Fast(value, "decoder plan: expected a sequence");
    if (items != NULL && PySequence_Fast_GET_SIZE(items) > limit) {
        PyErr_Format(PyExc_ValueError, "decoder plan: '%s' has more than %zd entries", name, limit);
        Py_DECREF(items);
        return NULL;
    }
    return items;
}

static int check_column(ItemDecoder *self, Py_ssize_t column, int allow_none) {
    if ((allow_none && column == -1) || (column >= 0 && column < self->columns))
        return 0;
    PyErr_Format(PyExc_ValueError, "decoder plan: column %zd is outside 0..%zd", column, self->columns - 1);
    return -1;
}

static int check_span(ItemDecoder *self, Py_ssize_t offset, Py_ssize_t bytes, const char *what) {
    if (offset >= 0 && offset + bytes <= self->record_size)
        return 0;
    PyErr_Format(PyExc_ValueError, "decoder plan: %s (bytes %zd..%zd) is outside the %zd-byte record", what, offset,
                 offset + bytes, self->record_size);
    return -1;
}

static int plan_catalog(ItemDecoder *self, PyObject *plan) {
    int64_t flags[3];
    if (plan_ssize(plan, "creator_offset", &self->creator_offset)
        || plan_ssize(plan, "franchise_offset", &self->franchise_offset)
        || plan_ssize(plan, "topics_offset", &self->topics_offset) || plan_ssize(plan, "max_topics", &self->max_topics)
        || plan_ssize(plan, "price_offset", &self->price_offset)
        || plan_ssize(plan, "created_offset", &self->created_offset)
        || plan_ssize(plan, "flags_offset", &self->flags_offset) || plan_i64(plan, "flag_known", &flags[0])
        || plan_i64(plan, "flag_paid", &flags[1]) || plan_i64(plan, "flag_animated", &flags[2])
        || plan_ssize(plan, "price_column", &self->price_column) || plan_ssize(plan, "paid_column", &self->paid_column)
        || plan_ssize(plan, "animated_column", &self->animated_column)
        || plan_ssize(plan, "age_column", &self->age_column)
        || plan_ssize(plan, "affinity_topic_column", &self->affinity_topic_column)
        || plan_ssize(plan, "affinity_creator_column", &self->affinity_creator_column)
        || plan_ssize(plan, "affinity_franchise_column", &self->affinity_franchise_column)
        || plan_ssize(plan, "profile_match_column", &self->profile_match_column)
        || plan_i64(plan, "creator_salt", &self->creator_salt)
        || plan_i64(plan, "franchise_salt", &self->franchise_salt))
        return -1;
    int64_t day_seconds;
    if (plan_i64(plan, "day_seconds", &day_seconds))
        return -1;
    self->day_seconds = (double)day_seconds;
    self->flag_known = (uint32_t)flags[0];
    self->flag_paid = (uint32_t)flags[1];
    self->flag_animated = (uint32_t)flags[2];
    if (self->max_topics < 0 || self->max_topics > MAX_TOPICS) {
        PyErr_SetString(PyExc_ValueError, "decoder plan: max_topics must be 0..16");
        return -1;
    }
    if (check_span(self, self->creator_offset, 8, "creator") || check_span(self, self->franchise_offset, 8, "franchise")
        || check_span(self, self->topics_offset, 8 * self->max_topics, "topics")
        || check_span(self, self->price_offset, 4, "price") || check_span(self, self->created_offset, 8, "created")
        || check_span(self, self->flags_offset, 4, "flags"))
        return -1;
    Py_ssize_t catalog_columns[] = {self->price_column, self->paid_column, self->animated_column, self->age_column,
                                    self->affinity_topic_column, self->affinity_creator_column,
                                    self->affinity_franchise_column, self->profile_match_column};
    for (size_t c = 0; c < sizeof catalog_columns / sizeof catalog_columns[0]; c++)
        if (check_column(self, catalog_columns[c], 0))
            return -1;
    return 0;
}

static int ItemDecoder_init(ItemDecoder *self, PyObject *args, PyObject *kwargs) {
    PyObject *plan;
    static char *keywords[] = {"plan", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O!", keywords, &PyDict_Type, &plan))
        return -1;
    Py_ssize_t catalog;
    if (plan_ssize(plan, "record_size", &self->record_size) || plan_ssize(plan, "counter_offset", &self->counter_offset)
        || plan_ssize(plan, "columns", &self->columns) || plan_ssize(plan, "catalog", &catalog))
        return -1;
    self->catalog = catalog != 0;
    if (self->record_size <= 0 || self->columns <= 0 || self->counter_offset < 0
        || self->counter_offset > self->record_size) {
        PyErr_SetString(PyExc_ValueError, "decoder plan: record_size and columns must be > 0, counters in the record");
        return -1;
    }
    if (self->catalog && plan_catalog(self, plan))
        return -1;
    Py_ssize_t counter_words = (self->record_size - self->counter_offset) / 4;

    PyObject *totals = plan_sequence(plan, "totals", MAX_TOTALS);
    if (totals == NULL)
        return -1;
    self->n_totals = PySequence_Fast_GET_SIZE(totals);
    for (Py_ssize_t t = 0; t < self->n_totals; t++) {
        Total *total = &self->totals[t];
        if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(totals, t), "nn", &total->word, &total->column)
            || check_column(self, total->column, 0)) {
            Py_DECREF(totals);
            return -1;
        }
        if (total->word < 0 || total->word >= counter_words) {
            PyErr_Format(PyExc_ValueError, "decoder plan: total word %zd is outside the counters", total->word);
            Py_DECREF(totals);
            return -1;
        }
    }
    Py_DECREF(totals);

    PyObject *rings = plan_sequence(plan, "rings", MAX_RINGS);
    if (rings == NULL)
        return -1;
    self->n_rings = PySequence_Fast_GET_SIZE(rings);
    for (Py_ssize_t r = 0; r < self->n_rings; r++) {
        Ring *ring = &self->rings[r];
        PyObject *columns;
        long long bucket_seconds, buckets;
        if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(rings, r), "nLLnO", &ring->head, &bucket_seconds, &buckets,
                              &ring->slot_words, &columns)) {
            Py_DECREF(rings);
            return -1;
        }
        ring->bucket_seconds = bucket_seconds;
        ring->buckets = buckets;
        if (bucket_seconds <= 0 || bucket_seconds > UINT32_MAX || buckets <= 0 || ring->slot_words <= 0
            || ring->slot_words > MAX_KINDS
            || ring->head < 0 || ring->head + 1 + buckets * ring->slot_words > counter_words) {
            PyErr_Format(PyExc_ValueError, "decoder plan: ring %zd does not fit the counters", r);
            Py_DECREF(rings);
            return -1;
        }
        PyObject *kinds = PySequence_Fast(columns, "decoder plan: a ring's columns must be a sequence");
        if (kinds == NULL || PySequence_Fast_GET_SIZE(kinds) != ring->slot_words) {
            if (kinds != NULL)
                PyErr_Format(PyExc_ValueError, "decoder plan: ring %zd needs one column per kind", r);
            Py_XDECREF(kinds);
            Py_DECREF(rings);
            return -1;
        }
        for (Py_ssize_t k = 0; k < ring->slot_words; k++) {
            ring->columns[k] = PyLong_AsSsize_t(PySequence_Fast_GET_ITEM(kinds, k));
            if ((ring->columns[k] == -1 && PyErr_Occurred()) || check_column(self, ring->columns[k], 1)) {
                Py_DECREF(kinds);
                Py_DECREF(rings);
                return -1;
            }
        }
        Py_DECREF(kinds);
    }
    Py_DECREF(rings);

    PyObject *creator_columns = plan_sequence(plan, "creator_columns", MAX_KINDS);
    if (creator_columns == NULL)
        return -1;
    self->n_creator_columns = PySequence_Fast_GET_SIZE(creator_columns);
    for (Py_ssize_t c = 0; c < self->n_creator_columns; c++) {
        self->creator_columns[c] = PyLong_AsSsize_t(PySequence_Fast_GET_ITEM(creator_columns, c));
        if ((self->creator_columns[c] == -1 && PyErr_Occurred()) || check_column(self, self->creator_columns[c], 0)) {
            Py_DECREF(creator_columns);
            return -1;
        }
    }
    Py_DECREF(creator_columns);
    return 0;
}

/* ---- decoding ---- */

typedef struct {
    const int64_t *keys;  /* sorted */
    const double *values;
    Py_ssize_t n;
    uint64_t prefilter[1 << 10];  /* bit (key & 0xFFFF): most items' hashes are not the user's */
} Affinities;

/* The index of the first of `n` sorted keys >= `key` (numpy's searchsorted, side="left"), without branches on the
 * comparisons: the searches of a read are too random for the branch predictor. */
static Py_ssize_t lower_bound(const int64_t *keys, Py_ssize_t n, int64_t key) {
    if (n == 0)
        return 0;
    const int64_t *base = keys;
    while (n > 1) {
        Py_ssize_t half = n / 2;
        base += (base[half - 1] < key) * half;  /* arithmetic, not a branch: gcc makes a conditional move */
        n -= half;
    }
    return (base - keys) + (*base < key);
}

static double affinity(const Affinities *table, int64_t key) {
    uint64_t low = (uint64_t)key & 0xFFFF;
    if (!(table->prefilter[low >> 6] >> (low & 63) & 1))
        return 0.0;
    Py_ssize_t at = lower_bound(table->keys, table->n, key);
    return (at < table->n && table->keys[at] == key) ? table->values[at] : 0.0;
}

/* What a ring's window needs of the read's second: the same for every record of a read. */
typedef struct {
    int64_t read_bucket;  /* the bucket holding the read's second */
    int64_t last_second;  /* of that bucket */
} ReadBucket;

static void read_buckets(const ItemDecoder *self, int64_t second, ReadBucket *out) {
    for (Py_ssize_t r = 0; r < self->n_rings; r++) {
        out[r].read_bucket = floor_div(second, self->rings[r].bucket_seconds);
        out[r].last_second = (out[r].read_bucket + 1) * self->rings[r].bucket_seconds - 1;
    }
}

/* The sum of the uint32 at `words` in slots first..last (none if last < first), `stride` words apart. */
static inline uint64_t strided_sum(const unsigned char *words, Py_ssize_t stride, int64_t first, int64_t last) {
    uint64_t sum = 0;
    for (int64_t slot = first; slot <= last; slot++)
        sum += be32(words + 4 * slot * stride);
    return sum;
}

static void decode_counters(const ItemDecoder *self, const unsigned char *counters, int64_t second,
                            const ReadBucket *reads, double *row) {
    for (Py_ssize_t t = 0; t < self->n_totals; t++)
        row[self->totals[t].column] = (double)be32(counters + 4 * self->totals[t].word);
    for (Py_ssize_t r = 0; r < self->n_rings; r++) {
        const Ring *ring = &self->rings[r];
        uint32_t head = be32(counters + 4 * ring->head);
        if (head == 0)  /* an empty ring */
            continue;
        /* the run of bucket ages a read at `second` counts, as reader._counted_run (a head is positive: its bucket
         * and slot are unsigned 32-bit divisions, much cheaper than signed 64-bit ones) */
        int64_t n = ring->buckets;
        uint32_t head_bucket = head / (uint32_t)ring->bucket_seconds;
        int64_t lead = (int64_t)head_bucket - reads[r].read_bucket;
        int64_t last_second = reads[r].last_second;
        int64_t first = (lead > 0 ? lead : 0) + (((int64_t)head < last_second ? (int64_t)head : last_second) > second);
        int64_t end = (lead < 0 ? lead : 0) + n;
        if (first > n)
            first = n;
        /* ages first..end-1 are the slots from (head slot - first) down to (head slot - end + 1), mod n: one
         * run of slots, or two when it wraps; each kind's sum is a strided sum over them, in a register */
        const unsigned char *slots = counters + 4 * (ring->head + 1);
        int64_t newest = (int64_t)(head_bucket % (uint64_t)n) - first, count = end - first;
        if (newest < 0)
            newest += n;
        int64_t oldest = newest - count + 1, wrapped = oldest < 0 ? -oldest : 0;
        for (Py_ssize_t k = 0; k < ring->slot_words; k++) {
            if (ring->columns[k] < 0)
                continue;
            uint64_t sum = 0;
            if (count > 0) {
                sum = strided_sum(slots + 4 * k, ring->slot_words, oldest + wrapped, newest);
                sum += strided_sum(slots + 4 * k, ring->slot_words, n - wrapped, n - 1);
            }
            row[ring->columns[k]] = (double)sum;
        }
    }
}

static void decode_catalog(const ItemDecoder *self, const unsigned char *record, double now, const Affinities *table,
                           const int64_t *profile, Py_ssize_t n_profile, double *row) {
    uint32_t flags = be32(record + self->flags_offset);
    int known = (flags & self->flag_known) != 0;
    row[self->price_column] = known ? (double)be_f32(record + self->price_offset) : 0.0;
    row[self->paid_column] = (flags & self->flag_paid) ? 1.0 : 0.0;
    row[self->animated_column] = (flags & self->flag_animated) ? 1.0 : 0.0;
    double created = be_f64(record + self->created_offset);
    row[self->age_column] = (known && isfinite(created) && created <= now) ? (now - created) / self->day_seconds : -1.0;

    if (table->n > 0) {
        double topics = 0.0;
        for (Py_ssize_t t = 0; t < self->max_topics; t++)
            topics += affinity(table, be_i64(record + self->topics_offset + 8 * t));
        row[self->affinity_topic_column] = topics;
        row[self->affinity_creator_column] =
            affinity(table, be_i64(record + self->creator_offset) ^ self->creator_salt);
        row[self->affinity_franchise_column] =
            affinity(table, be_i64(record + self->franchise_offset) ^ self->franchise_salt);
    }
    if (n_profile > 0) {
        int matches = 0;
        for (Py_ssize_t t = 0; t < self->max_topics; t++) {
            int64_t topic = be_i64(record + self->topics_offset + 8 * t);
            for (Py_ssize_t p = 0; p < n_profile; p++)
                if (profile[p] == topic) {
                    matches++;
                    break;
                }
        }
        row[self->profile_match_column] = matches;
    }
}

static PyObject *ItemDecoder_decode(ItemDecoder *self, PyObject *args, PyObject *kwargs) {
    static char *keywords[] = {"records", "second", "now", "affinity_keys", "affinity_values", "profile", "out", NULL};
    Py_buffer records, keys, values, profile, out;
    long long second;
    double now;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "y*Ldy*y*y*w*", keywords, &records, &second, &now, &keys, &values,
                                     &profile, &out))
        return NULL;
    PyObject *result = NULL;
    Py_ssize_t n = records.len / self->record_size;
    Affinities *table = NULL;
    if (records.len % self->record_size != 0) {
        PyErr_Format(PyExc_ValueError, "records: %zd bytes is not a whole number of %zd-byte records", records.len,
                     self->record_size);
        goto done;
    }
    if (out.len != n * self->columns * (Py_ssize_t)sizeof(double)) {
        PyErr_Format(PyExc_ValueError, "out: %zd bytes, expected %zd records x %zd float64 columns", out.len, n,
                     self->columns);
        goto done;
    }
    if (keys.len % 8 != 0 || keys.len != values.len || profile.len % 8 != 0) {
        PyErr_SetString(PyExc_ValueError,
                        "affinity_keys (int64), affinity_values (float64) must match; profile is int64 hashes");
        goto done;
    }
    table = PyMem_Calloc(1, sizeof(Affinities));
    if (table == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    table->keys = keys.buf;
    table->values = values.buf;
    table->n = keys.len / 8;
    for (Py_ssize_t k = 0; k < table->n; k++) {
        uint64_t low = (uint64_t)table->keys[k] & 0xFFFF;
        table->prefilter[low >> 6] |= (uint64_t)1 << (low & 63);
    }
    ReadBucket reads[MAX_RINGS];
    read_buckets(self, second, reads);
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < n; i++) {
        const unsigned char *record = (const unsigned char *)records.buf + i * self->record_size;
        double *row = (double *)out.buf + i * self->columns;
        decode_counters(self, record + self->counter_offset, second, reads, row);
        if (self->catalog)
            decode_catalog(self, record, now, table, profile.buf, profile.len / 8, row);
    }
    Py_END_ALLOW_THREADS
    result = Py_NewRef(Py_None);
done:
    PyMem_Free(table);
    PyBuffer_Release(&records);
    PyBuffer_Release(&keys);
    PyBuffer_Release(&values);
    PyBuffer_Release(&profile);
    PyBuffer_Release(&out);
    return result;
}

/* ---- Replies (RESP2 and RESP3): the reader's single-node round trip, without one Python object per record ---- */

/* The offset of the "\r\n" ending the line that starts at `at`, or -1 if the line is not all in the buffer. */
static Py_ssize_t line_end(const char *data, Py_ssize_t length, Py_ssize_t at) {
    /* a loop, not memchr: the lines are mostly a few bytes long ("$420", "*1000"), shorter than a call */
    while (at < length && data[at] != '\r')
        at++;
    return at + 1 < length ? at : -1;
}

/* The integer of a length or integer line data[at..end), or sets ValueError. */
static int line_integer(const char *data, Py_ssize_t at, Py_ssize_t end, long long *value) {
    int negative = at < end && data[at] == '-';
    Py_ssize_t digits = at + negative;
    if (digits == end || end - digits > 18) {
        PyErr_SetString(PyExc_ValueError, "RESP: bad integer");
        return -1;
    }
    long long v = 0;
    for (Py_ssize_t i = digits; i < end; i++) {
        if (data[i] < '0' || data[i] > '9') {
            PyErr_SetString(PyExc_ValueError, "RESP: bad integer");
            return -1;
        }
        v = v * 10 + (data[i] - '0');
    }
    *value = negative ? -v : v;
    return 0;
}

/* Elements per count of an aggregate type (maps and attributes hold pairs), 0 for other types. */
static int elements_per_count(char type) {
    switch (type) {
    case '*': case '~': case '>': return 1;
    case '%': case '|': return 2;
    default: return 0;
    }
}

static int is_line_type(char type) {
    switch (type) {
    case '+': case '-': case ':': case '_': case '#': case ',': case '(':
        return 1;
    default:
        return 0;
    }
}

static int is_blob_type(char type) { return type == '$' || type == '!' || type == '='; }

/* Finds where replies end in a buffer that grows as bytes arrive, resuming where the last look stopped (a 400 KB
 * reply arrives in several reads; scanning it again from its start each time cost more than parsing it). The one
 * reading of the grammar: ReplyScanner, parse_replies' check that every reply is in, and skip_aggregate use it. */
#define SCAN_DEPTH 16

typedef struct {
    Py_ssize_t count, done, at;
    int pushes_are_replies;      /* 0 at the top of a stream: an out-of-band push ('>') there is not a reply */
    int depth;
    long long left[SCAN_DEPTH];  /* elements still to come in each open aggregate */
    char counts[SCAN_DEPTH];     /* whether the aggregate is an element of its parent (not a push or attribute) */
} ScanState;

/* An element ended: it closes every aggregate it was the last element of. */
static void element_done(ScanState *state) {
    while (state->depth > 0) {
        if (--state->left[state->depth - 1] > 0)
            return;
        state->depth--;
        if (!state->counts[state->depth])
            return;
    }
    state->done++;
}

/* Scans data[state->at..length): 1 once `count` elements are complete (state->at just past them), 0 if they are not
 * all in yet (call again with more bytes), -1 on a protocol error (ValueError set). */
static int scan(ScanState *state, const char *data, Py_ssize_t length) {
    while (state->done < state->count) {
        Py_ssize_t end = line_end(data, length, state->at);
        if (end < 0)
            return 0;
        char type = data[state->at];
        long long n = 0;
        if (!is_line_type(type)) {
            if (!is_blob_type(type) && !elements_per_count(type)) {
                PyErr_Format(PyExc_ValueError, "RESP: unknown reply type byte %d", (int)(unsigned char)type);
                return -1;
            }
            if (line_integer(data, state->at + 1, end, &n))
                return -1;
        }
        int push = type == '>' && state->depth == 0 && !state->pushes_are_replies;
        if (is_blob_type(type) && n >= 0) {
            if (end + 2 + n + 2 > length)
                return 0;
            state->at = end + 2 + n + 2;
            element_done(state);
        } else if (elements_per_count(type) && n > 0) {
            if (state->depth == SCAN_DEPTH) {
                PyErr_SetString(PyExc_ValueError, "RESP: replies nested too deep");
                return -1;
            }
            state->left[state->depth] = n * elements_per_count(type);
            state->counts[state->depth] = type != '|' && !push;
            state->depth++;
            state->at = end + 2;
        } else {  /* a line, a null, an empty aggregate */
            state->at = end + 2;
            if (!push && type != '|')
                element_done(state);
        }
    }
    return 1;
}

/* Skips the whole aggregate at *at (a push or an attribute), which the buffer holds (scan has checked it). */
static void skip_aggregate(const char *data, Py_ssize_t length, Py_ssize_t *at) {
    Py_ssize_t end = line_end(data, length, *at);
    long long n = 0;
    line_integer(data, *at + 1, end, &n);
    ScanState state = {.count = n > 0 ? n * elements_per_count(data[*at]) : 0, .at = end + 2, .pushes_are_replies = 1};
    scan(&state, data, length);
    *at = state.at;
}

typedef struct {
    PyObject_HEAD
    ScanState state;
} ReplyScanner;

static int ReplyScanner_init(ReplyScanner *self, PyObject *args, PyObject *kwargs) {
    static char *keywords[] = {"count", NULL};
    Py_ssize_t count;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "n", keywords, &count))
        return -1;
    self->state = (ScanState){.count = count};
    return 0;
}

static PyObject *ReplyScanner_feed(ReplyScanner *self, PyObject *args) {
    Py_buffer buffer;
    Py_ssize_t length;
    if (!PyArg_ParseTuple(args, "y*n", &buffer, &length))
        return NULL;
    if (length < 0 || length > buffer.len || length < self->state.at) {
        PyBuffer_Release(&buffer);
        return PyErr_Format(PyExc_ValueError, "length %zd is outside the %zd-byte buffer or before the scan", length,
                            buffer.len);
    }
    int complete = scan(&self->state, buffer.buf, length);
    PyBuffer_Release(&buffer);
    return complete < 0 ? NULL : PyLong_FromSsize_t(complete ? self->state.at : -1);
}

static PyMethodDef ReplyScanner_methods[] = {
    {"feed", (PyCFunction)ReplyScanner_feed, METH_VARARGS,
     "feed(buffer, length) -> int\n"
     "The offset just past the `count` replies (RESP2 or RESP3; push messages are not replies) at the start of "
     "buffer[:length], or -1 while they are not all in. Each call resumes where the last stopped: pass the same "
     "bytes again, with more after them. ValueError on a protocol error."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject ReplyScannerType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "recsys.features._decode.ReplyScanner",
    .tp_doc = PyDoc_STR("ReplyScanner(count): finds where `count` replies end, as their bytes arrive"),
    .tp_basicsize = sizeof(ReplyScanner),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)ReplyScanner_init,
    .tp_methods = ReplyScanner_methods,
};

/* One complete element as Python: bulk, status and verbatim strings -> bytes, null -> None, integers -> int, double
 * -> float, boolean -> bool, array and set -> list, map -> dict; an error -> error_class(message), returned, not
 * raised, so that the caller reads every reply first. */
static PyObject *parse_element(const char *data, Py_ssize_t length, Py_ssize_t *at, PyObject *error_class) {
    if (data[*at] == '|')
        skip_aggregate(data, length, at);
    Py_ssize_t end = line_end(data, length, *at);
    char type = data[*at];
    Py_ssize_t start = *at + 1;
    long long n;
    *at = end + 2;
    switch (type) {
    case '+':
        return PyBytes_FromStringAndSize(data + start, end - start);
    case '-':
        return PyObject_CallFunction(error_class, "s#", data + start, end - start);
    case ':':
        return line_integer(data, start, end, &n) ? NULL : PyLong_FromLongLong(n);
    case '_':
        Py_RETURN_NONE;
    case '#':
        return PyBool_FromLong(data[start] == 't');
    case ',':
    case '(': {
        PyObject *text = PyUnicode_FromStringAndSize(data + start, end - start);
        PyObject *value = text == NULL  ? NULL
                          : type == ',' ? PyFloat_FromString(text)
                                        : PyLong_FromUnicodeObject(text, 10);
        Py_XDECREF(text);
        return value;
    }
    default:
        break;
    }
    if (line_integer(data, start, end, &n))
        return NULL;
    if (n < 0)
        Py_RETURN_NONE;
    if (is_blob_type(type)) {
        const char *blob = data + end + 2;
        *at = end + 2 + n + 2;
        if (type == '!')
            return PyObject_CallFunction(error_class, "s#", blob, (Py_ssize_t)n);
        Py_ssize_t skip = type == '=' && n >= 4 ? 4 : 0;  /* a verbatim string's "txt:" */
        return PyBytes_FromStringAndSize(blob + skip, (Py_ssize_t)n - skip);
    }
    if (type == '%') {
        PyObject *map = PyDict_New();
        for (long long i = 0; map != NULL && i < n; i++) {
            PyObject *key = parse_element(data, length, at, error_class);
            PyObject *value = key == NULL ? NULL : parse_element(data, length, at, error_class);
            if (value == NULL || PyDict_SetItem(map, key, value) < 0)
                Py_CLEAR(map);
            Py_XDECREF(key);
            Py_XDECREF(value);
        }
        return map;
    }
    PyObject *list = PyList_New((Py_ssize_t)n);
    for (long long i = 0; list != NULL && i < n; i++) {
        PyObject *item = parse_element(data, length, at, error_class);
        if (item == NULL)
            Py_CLEAR(list);
        else
            PyList_SET_ITEM(list, i, item);
    }
    return list;
}

/* A records reply (an array of strings or nulls) into `out`, record after record: a null reads as zeros, a string
 * of another size is cut or zero-padded (as reader._join). At most `room` records; *records is set to their count.
 * Returns None, or the reply itself if it is an error (for the caller to raise). */
static PyObject *parse_records(const char *data, Py_ssize_t length, Py_ssize_t *at, Py_ssize_t record_size, char *out,
                               Py_ssize_t room, Py_ssize_t *records, PyObject *error_class) {
    *records = 0;
    if (data[*at] == '|')
        skip_aggregate(data, length, at);
    if (data[*at] != '*')
        return parse_element(data, length, at, error_class);
    Py_ssize_t end = line_end(data, length, *at);
    long long n;
    if (line_integer(data, *at + 1, end, &n))
        return NULL;
    if (n < 0 || n > room)
        return PyErr_Format(PyExc_ValueError, "RESP: %lld records in a reply, room for %zd", n, room);
    *records = (Py_ssize_t)n;
    *at = end + 2;
    for (Py_ssize_t i = 0; i < *records; i++) {
        char *record = out + i * record_size;
        if (data[*at] == '|')
            skip_aggregate(data, length, at);
        end = line_end(data, length, *at);
        Py_ssize_t size = 0;
        if (data[*at] == '$') {
            if (line_integer(data, *at + 1, end, &n))
                return NULL;
            size = n < 0 ? 0 : (Py_ssize_t)n;
        } else if (data[*at] != '_') {
            return PyErr_Format(PyExc_ValueError, "RESP: record %zd is not a string or null", i);
        }
        Py_ssize_t copied = size < record_size ? size : record_size;
        memcpy(record, data + end + 2, (size_t)copied);
        memset(record + copied, 0, (size_t)(record_size - copied));
        *at = data[*at] == '$' && n >= 0 ? end + 2 + size + 2 : end + 2;
    }
    Py_RETURN_NONE;
}

static PyObject *parse_replies(PyObject *module, PyObject *args, PyObject *kwargs) {
    static char *keywords[] = {"buffer", "count", "records_reply", "record_size", "out", "error_class", NULL};
    Py_buffer buffer, out;
    Py_ssize_t count, records_reply, record_size;
    PyObject *error_class;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "y*nnnw*O", keywords, &buffer, &count, &records_reply,
                                     &record_size, &out, &error_class))
        return NULL;
    PyObject *replies = NULL;
    ScanState state = {.count = count};
    int complete = scan(&state, buffer.buf, buffer.len);
    if (complete != 1) {
        if (complete == 0)
            PyErr_SetString(PyExc_ValueError, "RESP: the buffer does not hold every reply (see ReplyScanner)");
    } else if (records_reply < 0) {
        PyErr_SetString(PyExc_ValueError, "records_reply: the first records reply, count or more for none");
    } else if (record_size <= 0 || out.len % record_size != 0) {
        PyErr_SetString(PyExc_ValueError, "out must hold whole records of record_size > 0 bytes");
    } else {
        const char *data = buffer.buf;
        Py_ssize_t length = state.at, at = 0;  /* every reply is complete before state.at */
        Py_ssize_t room = out.len / record_size, records = 0;
        int errors = 0;
        replies = PyList_New(count);
        for (Py_ssize_t r = 0; replies != NULL && r < count; r++) {
            while (data[at] == '>')
                skip_aggregate(data, length, &at);
            PyObject *reply = r >= records_reply ? parse_records(buffer.buf, length, &at, record_size,
                                                                 (char *)out.buf + (out.len - room * record_size),
                                                                 room, &records, error_class)
                                                 : parse_element(buffer.buf, length, &at, error_class);
            if (reply == NULL) {
                Py_CLEAR(replies);
                break;
            }
            PyList_SET_ITEM(replies, r, reply);
            if (r >= records_reply) {
                room -= records;
                errors += reply != Py_None;
            }
        }
        if (replies != NULL && records_reply < count && room != 0 && !errors) {
            PyErr_Format(PyExc_ValueError, "RESP: %zd records in the replies, %zd asked for",
                         out.len / record_size - room, out.len / record_size);
            Py_CLEAR(replies);
        }
    }
    PyBuffer_Release(&buffer);
    PyBuffer_Release(&out);
    return replies;
}

/* ---- the MGET requests ---- */

typedef struct {
    PyObject *id;
    const char *utf8;
    Py_ssize_t size;
    Py_ssize_t bucket;
} Id;

/* "$<size>\r\n" at `out` (printf costs more than the rest of a key); returns its length. */
static int bulk_header(char *out, Py_ssize_t size) {
    char digits[24];
    int n = 0;
    do {
        digits[n++] = (char)('0' + size % 10);
        size /= 10;
    } while (size > 0);
    out[0] = '$';
    for (int i = 0; i < n; i++)
        out[1 + i] = digits[n - 1 - i];
    out[n + 1] = '\r';
    out[n + 2] = '\n';
    return n + 3;
}

/* CRC16-CCITT (XModem), the cluster's key hash: a key's bucket is the CRC16 of its id modulo the bucket count, as
 * layout.key_bucket computes it with binascii.crc_hqx. */
static uint16_t crc16_table[256];

static void crc16_init(void) {
    for (int byte = 0; byte < 256; byte++) {
        uint16_t crc = (uint16_t)(byte << 8);
        for (int bit = 0; bit < 8; bit++)
            crc = (uint16_t)(crc & 0x8000 ? (crc << 1) ^ 0x1021 : crc << 1);
        crc16_table[byte] = crc;
    }
}

static inline uint16_t crc16(const char *data, Py_ssize_t size) {
    uint16_t crc = 0;
    for (Py_ssize_t i = 0; i < size; i++)
        crc = (uint16_t)((crc << 8) ^ crc16_table[((crc >> 8) ^ (unsigned char)data[i]) & 0xff]);
    return crc;
}

/* The MGET of `ids` (ids[first..last)) with the keys prefixes[bucket] + id + suffix, written at `out`; returns the
 * end. */
static char *write_mget(char *out, const Id *ids, Py_ssize_t first, Py_ssize_t last, PyObject *prefixes,
                        const char *suffix, Py_ssize_t suffix_size) {
    out += sprintf(out, "*%zd\r\n$4\r\nMGET\r\n", last - first + 1);
    for (Py_ssize_t i = first; i < last; i++) {
        PyObject *prefix = PyTuple_GET_ITEM(prefixes, ids[i].bucket);
        Py_ssize_t prefix_size = PyBytes_GET_SIZE(prefix), key = prefix_size + ids[i].size + suffix_size;
        out += bulk_header(out, key);
        memcpy(out, PyBytes_AS_STRING(prefix), (size_t)prefix_size);
        memcpy(out + prefix_size, ids[i].utf8, (size_t)ids[i].size);
        memcpy(out + prefix_size + ids[i].size, suffix, (size_t)suffix_size);
        memcpy(out + key, "\r\n", 2);
        out += key + 2;
    }
    return out;
}

#define ID_PREFETCH 12
#define MGET_HEADER 40  /* "*<count>\r\n$4\r\nMGET\r\n" at most */

/* The MGET requests of the keys of the distinct ids, built straight from the id strings: a cache of packed keys
 * cost a dictionary lookup and a bytes object per id, each a cache miss on a 1,000-item read. */
static PyObject *pack_mget(PyObject *module, PyObject *args) {
    PyObject *ids, *prefixes;
    const char *suffix;
    Py_ssize_t suffix_size;
    int by_bucket;
    if (!PyArg_ParseTuple(args, "OO!y#p", &ids, &PyTuple_Type, &prefixes, &suffix, &suffix_size, &by_bucket))
        return NULL;
    Py_ssize_t buckets = PyTuple_GET_SIZE(prefixes);
    if (buckets == 0)
        return PyErr_Format(PyExc_ValueError, "prefixes: one per bucket, at least one");
    for (Py_ssize_t b = 0; b < buckets; b++)
        if (!PyBytes_CheckExact(PyTuple_GET_ITEM(prefixes, b)))
            return PyErr_Format(PyExc_TypeError, "prefixes[%zd] is not bytes", b);
    PyObject *items = PySequence_Fast(ids, "ids must be a sequence");
    if (items == NULL)
        return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(items), slots = 16;
    while (slots < 2 * n)
        slots *= 2;
    PyObject **table = PyMem_Calloc((size_t)slots, sizeof(PyObject *));  /* open addressing over the distinct ids */
    Id *unique_ids = PyMem_Malloc((size_t)(n ? n : 1) * sizeof(Id));
    Id *sorted = by_bucket ? PyMem_Malloc((size_t)(n ? n : 1) * sizeof(Id)) : NULL;
    Py_ssize_t *counts = PyMem_Calloc((size_t)buckets + 1, sizeof(Py_ssize_t));
    Py_ssize_t *sizes = PyMem_Calloc((size_t)buckets, sizeof(Py_ssize_t));  /* request bytes per bucket */
    PyObject *result = NULL, *unique = NULL, *requests = NULL;
    Py_ssize_t count = 0;
    if (table == NULL || unique_ids == NULL || (by_bucket && sorted == NULL) || counts == NULL || sizes == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    PyObject **given = PySequence_Fast_ITEMS(items);
    for (Py_ssize_t i = 0; i < n; i++) {
        /* the ids are scattered objects, most of them out of the caches: ask for those a few places ahead, so that
         * their loads overlap instead of waiting one after the other */
        if (i + ID_PREFETCH < n)
            __builtin_prefetch(given[i + ID_PREFETCH]);
        PyObject *id = given[i];
        if (!PyUnicode_CheckExact(id)) {  /* the caller packs other ids itself */
            result = Py_NewRef(Py_None);
            goto done;
        }
        Py_hash_t hash = PyObject_Hash(id);
        if (hash == -1)
            goto done;
        Py_ssize_t slot = (Py_ssize_t)((size_t)hash & (size_t)(slots - 1));
        int duplicate = 0;
        while (table[slot] != NULL) {
            int equal = table[slot] == id ? 1 : PyUnicode_Compare(table[slot], id) == 0;
            if (equal && !PyErr_Occurred()) {
                duplicate = 1;
                break;
            }
            if (PyErr_Occurred())
                goto done;
            slot = (slot + 1) & (slots - 1);
        }
        if (duplicate)
            continue;
        table[slot] = id;
        Id *entry = &unique_ids[count++];
        entry->id = id;
        entry->utf8 = PyUnicode_AsUTF8AndSize(id, &entry->size);
        if (entry->utf8 == NULL)
            goto done;
        entry->bucket = buckets > 1 ? crc16(entry->utf8, entry->size) % buckets : 0;
        char header[24];
        Py_ssize_t key = PyBytes_GET_SIZE(PyTuple_GET_ITEM(prefixes, entry->bucket)) + entry->size + suffix_size;
        sizes[entry->bucket] += bulk_header(header, key) + key + 2;
        counts[entry->bucket + 1]++;
    }
    unique = PyList_New(count);
    if (unique == NULL)
        goto done;
    if (!by_bucket) {
        Py_ssize_t size = MGET_HEADER;
        for (Py_ssize_t b = 0; b < buckets; b++)
            size += sizes[b];
        PyObject *request = PyBytes_FromStringAndSize(NULL, size);
        if (request == NULL)
            goto done;
        char *end = write_mget(PyBytes_AS_STRING(request), unique_ids, 0, count, prefixes, suffix, suffix_size);
        if (_PyBytes_Resize(&request, end - PyBytes_AS_STRING(request)) < 0)
            goto done;
        for (Py_ssize_t i = 0; i < count; i++)
            PyList_SET_ITEM(unique, i, Py_NewRef(unique_ids[i].id));
        result = Py_BuildValue("(NO)", request, unique);
        goto done;
    }
    /* a stable counting sort by bucket: counts[b] becomes the start of bucket b */
    for (Py_ssize_t b = 0; b < buckets; b++)
        counts[b + 1] += counts[b];
    Py_ssize_t *next = PyMem_Malloc((size_t)buckets * sizeof(Py_ssize_t));
    if (next == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    memcpy(next, counts, (size_t)buckets * sizeof(Py_ssize_t));
    for (Py_ssize_t i = 0; i < count; i++)
        sorted[next[unique_ids[i].bucket]++] = unique_ids[i];
    PyMem_Free(next);
    requests = PyList_New(0);
    if (requests == NULL)
        goto done;
    for (Py_ssize_t b = 0; b < buckets; b++) {
        if (counts[b + 1] == counts[b])
            continue;
        PyObject *request = PyBytes_FromStringAndSize(NULL, MGET_HEADER + sizes[b]);
        if (request == NULL)
            goto done;
        char *end = write_mget(PyBytes_AS_STRING(request), sorted, counts[b], counts[b + 1], prefixes, suffix,
                               suffix_size);
        PyObject *entry = _PyBytes_Resize(&request, end - PyBytes_AS_STRING(request)) < 0
                              ? NULL
                              : Py_BuildValue("(nnN)", b, counts[b + 1] - counts[b], request);
        if (entry == NULL || PyList_Append(requests, entry) < 0) {
            Py_XDECREF(entry);
            goto done;
        }
        Py_DECREF(entry);
    }
    for (Py_ssize_t i = 0; i < count; i++)
        PyList_SET_ITEM(unique, i, Py_NewRef(sorted[i].id));
    result = Py_BuildValue("(OO)", requests, unique);
done:
    PyMem_Free(table);
    PyMem_Free(unique_ids);
    PyMem_Free(sorted);
    PyMem_Free(counts);
    PyMem_Free(sizes);
    Py_DECREF(items);
    Py_XDECREF(unique);
    Py_XDECREF(requests);
    return result;
}

/* ---- The item cache: item records kept across reads, looked up in one pass over a read's ids ---- */

/* A row is a 64-byte header (the id's hash, its UTF-8 length and bytes) then the record, rounded up to whole cache
 * lines. Ids longer than CACHE_KEY_MAX bytes are never kept: such a read fetches them every time. */
#define CACHE_HEADER 64
#define CACHE_KEY_MAX (CACHE_HEADER - 12)
#define CACHE_PREFETCH 8  /* rows asked for ahead of the copy */

typedef struct {
    uint64_t hash;  /* 0: an empty slot */
    int64_t row;
} CacheSlot;

typedef struct {
    uint64_t hash;
    uint32_t size;
    char key[CACHE_KEY_MAX];
} RowHeader;

typedef struct {
    PyObject_HEAD
    Py_ssize_t record_size, stride, capacity;
    Py_ssize_t count;      /* rows in use: 0..count-1 */
    Py_ssize_t allocated;  /* rows with memory */
    char *rows;
    CacheSlot *slots;      /* open addressing, linear probing, backward-shift deletion; 2 slots or more per row */
    Py_ssize_t mask;
    Py_ssize_t hand;       /* the next row to evict when full */
    long long hits, misses, evictions;
} ItemCache;

/* FNV-1a, then a finalizer so that the low bits (the slot) depend on every byte; never 0 (the empty slot). */
static inline uint64_t key_hash(const char *data, Py_ssize_t size) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (Py_ssize_t i = 0; i < size; i++)
        h = (h ^ (unsigned char)data[i]) * 0x100000001b3ULL;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return h ? h : 1;
}

static inline RowHeader *row_header(const ItemCache *self, Py_ssize_t row) {
    return (RowHeader *)(self->rows + row * self->stride);
}

static inline int row_is(const ItemCache *self, Py_ssize_t row, uint64_t hash, const char *key, Py_ssize_t size) {
    const RowHeader *header = row_header(self, row);
    return header->hash == hash && header->size == (uint32_t)size && memcmp(header->key, key, (size_t)size) == 0;
}

/* The slot of `key`, or -1. */
static Py_ssize_t cache_find(const ItemCache *self, uint64_t hash, const char *key, Py_ssize_t size) {
    for (Py_ssize_t at = (Py_ssize_t)(hash & (uint64_t)self->mask);; at = (at + 1) & self->mask) {
        const CacheSlot *slot = &self->slots[at];
        if (slot->hash == 0)
            return -1;
        if (slot->hash == hash && row_is(self, slot->row, hash, key, size))
            return at;
    }
}

/* The slot that points at `row` (it is in the table). */
static Py_ssize_t slot_of_row(const ItemCache *self, Py_ssize_t row) {
    Py_ssize_t at = (Py_ssize_t)(row_header(self, row)->hash & (uint64_t)self->mask);
    while (self->slots[at].row != row || self->slots[at].hash == 0)
        at = (at + 1) & self->mask;
    return at;
}

/* Empties slot `at`, shifting back the entries after it that would no longer be found, then moves the last row into
 * the freed one so that rows stay dense. */
static void cache_remove(ItemCache *self, Py_ssize_t at) {
    Py_ssize_t row = self->slots[at].row, hole = at;
    for (Py_ssize_t next = (hole + 1) & self->mask; self->slots[next].hash != 0; next = (next + 1) & self->mask) {
        Py_ssize_t home = (Py_ssize_t)(self->slots[next].hash & (uint64_t)self->mask);
        /* the entry at `next` stays unless its home lies cyclically in (hole, next] */
        int stays = hole <= next ? (home > hole && home <= next) : (home > hole || home <= next);
        if (stays)
            continue;
        self->slots[hole] = self->slots[next];
        hole = next;
    }
    self->slots[hole].hash = 0;
    self->slots[hole].row = -1;
    Py_ssize_t last = --self->count;
    if (row != last) {
        self->slots[slot_of_row(self, last)].row = row;
        memcpy(row_header(self, row), row_header(self, last), (size_t)self->stride);
    }
    if (self->hand >= self->count)
        self->hand = 0;
}

/* Keeps `record` under `key`, replacing what was there; evicts a row when full. -1 (MemoryError set) on failure. */
static int cache_put(ItemCache *self, uint64_t hash, const char *key, Py_ssize_t size, const char *record) {
    Py_ssize_t at = cache_find(self, hash, key, size);
    if (at >= 0) {
        memcpy((char *)row_header(self, self->slots[at].row) + CACHE_HEADER, record, (size_t)self->record_size);
        return 0;
    }
    if (self->count == self->capacity) {
        cache_remove(self, slot_of_row(self, self->hand));
        self->hand = self->count ? (self->hand + 1) % self->count : 0;
        self->evictions++;
    }
    if (self->count == self->allocated) {
        Py_ssize_t grown = self->allocated ? 2 * self->allocated : 1024;
        if (grown > self->capacity)
            grown = self->capacity;
        char *rows = PyMem_Realloc(self->rows, (size_t)grown * (size_t)self->stride);
        if (rows == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        self->rows = rows;
        self->allocated = grown;
    }
    Py_ssize_t row = self->count++;
    RowHeader *header = row_header(self, row);
    header->hash = hash;
    header->size = (uint32_t)size;
    memcpy(header->key, key, (size_t)size);
    memcpy((char *)header + CACHE_HEADER, record, (size_t)self->record_size);
    at = (Py_ssize_t)(hash & (uint64_t)self->mask);
    while (self->slots[at].hash != 0)
        at = (at + 1) & self->mask;
    self->slots[at].hash = hash;
    self->slots[at].row = row;
    return 0;
}

static void cache_clear(ItemCache *self) {
    for (Py_ssize_t at = 0; at <= self->mask; at++) {
        self->slots[at].hash = 0;
        self->slots[at].row = -1;
    }
    self->count = self->hand = 0;
}

/* Drops the record of `key` if kept; returns whether it was. */
static int cache_forget(ItemCache *self, const char *key, Py_ssize_t size) {
    Py_ssize_t at = size > CACHE_KEY_MAX ? -1 : cache_find(self, key_hash(key, size), key, size);
    if (at >= 0)
        cache_remove(self, at);
    return at >= 0;
}

/* An id's UTF-8 bytes: a str, or bytes as the server names keys. NULL with an exception set if neither. */
static const char *id_bytes(PyObject *id, Py_ssize_t *size) {
    if (PyUnicode_Check(id))
        return PyUnicode_AsUTF8AndSize(id, size);
    if (PyBytes_Check(id)) {
        *size = PyBytes_GET_SIZE(id);
        return PyBytes_AS_STRING(id);
    }
    PyErr_Format(PyExc_TypeError, "an item id must be str or bytes, not %.80s", Py_TYPE(id)->tp_name);
    return NULL;
}

static int ItemCache_init(ItemCache *self, PyObject *args, PyObject *kwargs) {
    static char *keywords[] = {"record_size", "capacity", NULL};
    Py_ssize_t record_size, capacity;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "nn", keywords, &record_size, &capacity))
        return -1;
    if (record_size <= 0 || capacity <= 0 || capacity > ((Py_ssize_t)1 << 30)) {
        PyErr_SetString(PyExc_ValueError, "record_size and capacity must be > 0 (capacity at most 2^30)");
        return -1;
    }
    Py_ssize_t slots = 16;
    while (slots < 2 * capacity)
        slots *= 2;
    PyMem_Free(self->rows);
    PyMem_Free(self->slots);
    self->rows = NULL;
    self->slots = PyMem_Malloc((size_t)slots * sizeof(CacheSlot));
    if (self->slots == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    self->record_size = record_size;
    self->stride = (CACHE_HEADER + record_size + 63) / 64 * 64;
    self->capacity = capacity;
    self->allocated = 0;
    self->mask = slots - 1;
    self->hits = self->misses = self->evictions = 0;
    cache_clear(self);
    return 0;
}

static void ItemCache_dealloc(ItemCache *self) {
    PyMem_Free(self->rows);
    PyMem_Free(self->slots);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

typedef struct {
    PyObject *id;
    const char *key;
    Py_ssize_t size;
    uint64_t hash;
    Py_ssize_t row;  /* its row in the cache, -1: not there */
} Wanted;

static inline void prefetch_row(const ItemCache *self, Py_ssize_t row) {
    if (row < 0)
        return;
    const char *at = (const char *)row_header(self, row);
    for (Py_ssize_t line = 0; line < self->stride; line += 64)
        __builtin_prefetch(at + line);
}

/* lookup(ids, out) -> (distinct ids, missing positions): copies the kept records of the distinct ids, in first-seen
 * order, into `out` (one record_size slot per distinct id); the positions of those not kept are left as they were.
 * Three passes so that the cache misses of one id overlap with those of the next: the ids' objects and their
 * slots are asked for ahead, then each distinct id's row, then the rows are copied a few ahead of their loads. */
static PyObject *ItemCache_lookup(ItemCache *self, PyObject *args) {
    PyObject *ids;
    Py_buffer out;
    if (!PyArg_ParseTuple(args, "Ow*", &ids, &out))
        return NULL;
    PyObject *items = PySequence_Fast(ids, "ids must be a sequence");
    if (items == NULL) {
        PyBuffer_Release(&out);
        return NULL;
    }
    Py_ssize_t n = PySequence_Fast_GET_SIZE(items), seen_slots = 16, count = 0;
    while (seen_slots < 2 * n)
        seen_slots *= 2;
    Wanted *wanted = PyMem_Malloc((size_t)(n ? n : 1) * sizeof(Wanted));
    Py_ssize_t *seen = PyMem_Malloc((size_t)seen_slots * sizeof(Py_ssize_t));  /* distinct ids: their positions */
    PyObject *result = NULL, *unique = NULL, *missing = NULL;
    if (wanted == NULL || seen == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    memset(seen, 0xff, (size_t)seen_slots * sizeof(Py_ssize_t));
    PyObject **given = PySequence_Fast_ITEMS(items);
    for (Py_ssize_t i = 0; i < n; i++) {
        if (i + ID_PREFETCH < n)
            __builtin_prefetch(given[i + ID_PREFETCH]);
        Wanted w = {.id = given[i], .row = -1};
        if ((w.key = id_bytes(w.id, &w.size)) == NULL)
            goto done;
        w.hash = key_hash(w.key, w.size);
        Py_ssize_t at = (Py_ssize_t)(w.hash & (uint64_t)(seen_slots - 1)), other;
        while ((other = seen[at]) >= 0) {
            if (wanted[other].hash == w.hash && wanted[other].size == w.size
                && memcmp(wanted[other].key, w.key, (size_t)w.size) == 0)
                break;
            at = (at + 1) & (seen_slots - 1);
        }
        if (other >= 0)
            continue;  /* a duplicate */
        seen[at] = count;
        __builtin_prefetch(&self->slots[w.hash & (uint64_t)self->mask]);
        wanted[count++] = w;
    }
    if ((Py_ssize_t)out.len < count * self->record_size) {
        PyErr_Format(PyExc_ValueError, "out: %zd bytes, %zd distinct ids need %zd", out.len, count,
                     count * self->record_size);
        goto done;
    }
    /* each id's row, probing by hash alone (the header is checked in the copy) */
    for (Py_ssize_t i = 0; i < count; i++) {
        Wanted *w = &wanted[i];
        if (w->size > CACHE_KEY_MAX)
            continue;
        for (Py_ssize_t at = (Py_ssize_t)(w->hash & (uint64_t)self->mask); self->slots[at].hash != 0;
             at = (at + 1) & self->mask) {
            if (self->slots[at].hash == w->hash) {
                w->row = self->slots[at].row;
                break;
            }
        }
    }
    missing = PyList_New(0);
    if (missing == NULL)
        goto done;
    for (Py_ssize_t i = 0; i < count && i < CACHE_PREFETCH; i++)
        prefetch_row(self, wanted[i].row);
    for (Py_ssize_t i = 0; i < count; i++) {
        if (i + CACHE_PREFETCH < count)
            prefetch_row(self, wanted[i + CACHE_PREFETCH].row);
        Wanted *w = &wanted[i];
        if (w->row >= 0 && !row_is(self, w->row, w->hash, w->key, w->size)) {
            /* another id with the same 64-bit hash found first: look again, comparing keys */
            Py_ssize_t at = cache_find(self, w->hash, w->key, w->size);
            w->row = at >= 0 ? self->slots[at].row : -1;
        }
        if (w->row >= 0) {
            memcpy((char *)out.buf + i * self->record_size, (const char *)row_header(self, w->row) + CACHE_HEADER,
                   (size_t)self->record_size);
            self->hits++;
            continue;
        }
        self->misses++;
        PyObject *position = PyLong_FromSsize_t(i);
        if (position == NULL || PyList_Append(missing, position) < 0) {
            Py_XDECREF(position);
            goto done;
        }
        Py_DECREF(position);
    }
    unique = PyList_New(count);
    if (unique == NULL)
        goto done;
    for (Py_ssize_t i = 0; i < count; i++)
        PyList_SET_ITEM(unique, i, Py_NewRef(wanted[i].id));
    result = PyTuple_Pack(2, unique, missing);
done:
    PyMem_Free(wanted);
    PyMem_Free(seen);
    Py_XDECREF(unique);
    Py_XDECREF(missing);
    Py_DECREF(items);
    PyBuffer_Release(&out);
    return result;
}

/* store(ids, records): keeps each id's record (records end to end, in ids order), replacing what was kept. */
static PyObject *ItemCache_store(ItemCache *self, PyObject *args) {
    PyObject *ids;
    Py_buffer records;
    if (!PyArg_ParseTuple(args, "Oy*", &ids, &records))
        return NULL;
    PyObject *items = PySequence_Fast(ids, "ids must be a sequence"), *result = NULL;
    if (items == NULL)
        goto done;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(items);
    if (records.len != n * self->record_size) {
        PyErr_Format(PyExc_ValueError, "records: %zd bytes, %zd ids need %zd", records.len, n, n * self->record_size);
        goto done;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_ssize_t size;
        const char *key = id_bytes(PySequence_Fast_GET_ITEM(items, i), &size);
        if (key == NULL)
            goto done;
        if (size > CACHE_KEY_MAX)
            continue;
        if (cache_put(self, key_hash(key, size), key, size, (const char *)records.buf + i * self->record_size) < 0)
            goto done;
    }
    result = Py_NewRef(Py_None);
done:
    Py_XDECREF(items);
    PyBuffer_Release(&records);
    return result;
}

/* forget(ids) -> how many were kept: drops each id's record. */
static PyObject *ItemCache_forget(ItemCache *self, PyObject *ids) {
    PyObject *items = PySequence_Fast(ids, "ids must be a sequence");
    if (items == NULL)
        return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(items), forgotten = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_ssize_t size;
        const char *key = id_bytes(PySequence_Fast_GET_ITEM(items, i), &size);
        if (key == NULL) {
            Py_DECREF(items);
            return NULL;
        }
        forgotten += cache_forget(self, key, size);
    }
    Py_DECREF(items);
    return PyLong_FromSsize_t(forgotten);
}

/* The item id a changed record key names, `<prefix>{<tag>}:<id>`; NULL if the key is not such a record's. */
static const char *announced_id(const char *key, Py_ssize_t size, const char *prefix, Py_ssize_t prefix_size,
                                Py_ssize_t *id_size) {
    if (size < prefix_size || memcmp(key, prefix, (size_t)prefix_size) != 0)
        return NULL;
    for (Py_ssize_t i = prefix_size; i + 1 < size; i++) {
        if (key[i] == '}' && key[i + 1] == ':') {
            *id_size = size - i - 2;
            return key + i + 2;
        }
    }
    return NULL;
}

/* Whether the frame at `at` (complete) is an invalidation push: `>2`, then the blob "invalidate". Sets *keys to the
 * offset of its second element. */
static int is_invalidation(const char *data, Py_ssize_t length, Py_ssize_t at, Py_ssize_t *keys) {
    static const char head[] = ">2\r\n$10\r\ninvalidate\r\n";
    Py_ssize_t size = (Py_ssize_t)sizeof(head) - 1;
    if (length - at < size || memcmp(data + at, head, (size_t)size) != 0)
        return 0;
    *keys = at + size;
    return 1;
}

/* apply_notices(buffer, prefix, error_class) -> (consumed, changed, replies): reads the complete frames at the start
 * of a notice connection's buffer. Each invalidation push forgets the records it names (keys under `prefix`) and
 * adds their ids to `changed`; a null one (the server dropped every key) stops there with `changed` None. Other
 * frames (replies, other pushes) are parsed into `replies`. `consumed`: the bytes read. */
static PyObject *ItemCache_apply_notices(ItemCache *self, PyObject *args) {
    Py_buffer buffer;
    const char *prefix;
    Py_ssize_t prefix_size;
    PyObject *error_class;
    if (!PyArg_ParseTuple(args, "y*y#O", &buffer, &prefix, &prefix_size, &error_class))
        return NULL;
    const char *data = buffer.buf;
    Py_ssize_t length = buffer.len, at = 0;
    PyObject *changed = PyList_New(0), *replies = PyList_New(0), *result = NULL;
    int flushed = 0;
    if (changed == NULL || replies == NULL)
        goto done;
    while (at < length && !flushed) {
        ScanState state = {.count = 1, .at = at, .pushes_are_replies = 1};
        int complete = scan(&state, data, length);
        if (complete < 0)
            goto done;
        if (complete == 0)
            break;
        Py_ssize_t keys;
        if (!is_invalidation(data, length, at, &keys)) {
            PyObject *reply = parse_element(data, length, &at, error_class);
            if (reply == NULL || PyList_Append(replies, reply) < 0) {
                Py_XDECREF(reply);
                goto done;
            }
            Py_DECREF(reply);
            at = state.at;
            continue;
        }
        Py_ssize_t end = line_end(data, length, keys);
        long long n = -1;
        if (data[keys] == '*' && line_integer(data, keys + 1, end, &n))
            goto done;
        flushed = n < 0;  /* `_` or `*-1`: every key */
        Py_ssize_t key_at = end + 2;
        for (long long k = 0; k < n; k++) {
            Py_ssize_t key_end = line_end(data, length, key_at);
            long long size;
            if (data[key_at] != '$' || line_integer(data, key_at + 1, key_end, &size) || size < 0) {
                if (!PyErr_Occurred())
                    PyErr_SetString(PyExc_ValueError, "RESP: an invalidated key is not a string");
                goto done;
            }
            Py_ssize_t id_size;
            const char *id = announced_id(data + key_end + 2, (Py_ssize_t)size, prefix, prefix_size, &id_size);
            key_at = key_end + 2 + (Py_ssize_t)size + 2;
            if (id == NULL)
                continue;
            PyObject *name = PyBytes_FromStringAndSize(id, id_size);
            if (name == NULL || PyList_Append(changed, name) < 0) {
                Py_XDECREF(name);
                goto done;
            }
            Py_DECREF(name);
            cache_forget(self, id, id_size);
        }
        at = state.at;
    }
    result = Py_BuildValue("(nOO)", at, flushed ? Py_None : changed, replies);
done:
    Py_XDECREF(changed);
    Py_XDECREF(replies);
    PyBuffer_Release(&buffer);
    return result;
}

static PyObject *ItemCache_clear(ItemCache *self, PyObject *Py_UNUSED(ignored)) {
    cache_clear(self);
    return Py_NewRef(Py_None);
}

static Py_ssize_t ItemCache_len(ItemCache *self) { return self->count; }

static PyMethodDef ItemCache_methods[] = {
    {"lookup", (PyCFunction)ItemCache_lookup, METH_VARARGS,
     "lookup(ids, out) -> (distinct ids, missing positions)\n"
     "The distinct `ids` (str) in first-seen order; the kept record of each is copied into `out` at its position "
     "(one record_size slot each); the positions of the others are listed and left as they were."},
    {"store", (PyCFunction)ItemCache_store, METH_VARARGS,
     "store(ids, records)\nKeeps each id's record (records end to end, in ids order); a full cache evicts rows in "
     "turn. Ids of more than " Py_STRINGIFY(CACHE_KEY_MAX) " UTF-8 bytes are not kept."},
    {"forget", (PyCFunction)ItemCache_forget, METH_O,
     "forget(ids) -> int\nDrops the records of `ids` (str, or bytes as UTF-8); returns how many were kept."},
    {"apply_notices", (PyCFunction)ItemCache_apply_notices, METH_VARARGS,
     "apply_notices(buffer, prefix, error_class) -> (consumed, changed, replies)\n"
     "Reads the complete RESP3 frames at the start of `buffer` (a notice connection's bytes): each invalidation push "
     "drops the records of the keys it names under `prefix` (`<prefix>{<tag>}:<id>`), their ids listed in `changed` "
     "(bytes); a null invalidation (every key) stops there, `changed` None. Other frames are parsed into `replies` "
     "(errors as error_class(message)). `consumed`: the bytes of the frames read."},
    {"clear", (PyCFunction)ItemCache_clear, METH_NOARGS, "clear()\nDrops every record."},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef ItemCache_members[] = {
    {"capacity", T_PYSSIZET, offsetof(ItemCache, capacity), READONLY, "rows kept at most"},
    {"hits", T_LONGLONG, offsetof(ItemCache, hits), 0, "ids found by lookup"},
    {"misses", T_LONGLONG, offsetof(ItemCache, misses), 0, "ids not found by lookup"},
    {"evictions", T_LONGLONG, offsetof(ItemCache, evictions), 0, "rows dropped to make room"},
    {NULL, 0, 0, 0, NULL},
};

static PySequenceMethods ItemCache_sequence = {.sq_length = (lenfunc)ItemCache_len};

static PyTypeObject ItemCacheType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "recsys.features._decode.ItemCache",
    .tp_doc = PyDoc_STR("ItemCache(record_size, capacity): item records by id, kept across reads"),
    .tp_basicsize = sizeof(ItemCache),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)ItemCache_init,
    .tp_dealloc = (destructor)ItemCache_dealloc,
    .tp_methods = ItemCache_methods,
    .tp_members = ItemCache_members,
    .tp_as_sequence = &ItemCache_sequence,
};

static PyMethodDef module_methods[] = {
    {"pack_mget", pack_mget, METH_VARARGS,
     "pack_mget(ids, prefixes, suffix, by_bucket) -> (request, distinct ids) | ([(bucket, count, request)], "
     "distinct ids) | None\n"
     "The MGET of the keys prefixes[bucket] + id + suffix (UTF-8) of the distinct `ids`, where bucket is the "
     "CRC16 of the id modulo len(prefixes). Not by_bucket: one MGET of every key, the ids in first-seen order. "
     "by_bucket: one MGET per bucket that has ids, in bucket order, and the ids in that order (first-seen within a "
     "bucket). None if an id is not a str."},
    {"parse_replies", (PyCFunction)(void (*)(void))parse_replies, METH_VARARGS | METH_KEYWORDS,
     "parse_replies(buffer, count, records_reply, record_size, out, error_class) -> list\n"
     "The `count` complete replies in `buffer` as Python objects, except replies `records_reply` on: arrays of "
     "records written into `out` one after another (one `record_size` slot each; nil: zeros), which must fill it, "
     "each given as None. An error reply is given as error_class(message), not raised."},
    {NULL, NULL, 0, NULL},
};

/* The row of a record's creator in a creator cache (sorted hashes, with their expiry on the monotonic clock) if it
 * is there and fresh at `clock`; -1 if not; -2 if the item has no creator. */
static Py_ssize_t fresh_creator_row(const ItemDecoder *self, const unsigned char *record, const int64_t *hashes,
                                    const double *until, Py_ssize_t cached, double clock) {
    int64_t creator = be_i64(record + self->creator_offset);
    if (creator == 0)
        return -2;
    Py_ssize_t at = lower_bound(hashes, cached, creator);
    return (at < cached && hashes[at] == creator && until[at] > clock) ? at : -1;
}

static PyObject *ItemDecoder_creator_rows(ItemDecoder *self, PyObject *args, PyObject *kwargs) {
    static char *keywords[] = {"records", "hashes", "expires", "clock", "rows", NULL};
    Py_buffer records, hashes, expires, rows;
    double clock;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "y*y*y*dw*", keywords, &records, &hashes, &expires, &clock, &rows))
        return NULL;
    PyObject *result = NULL;
    Py_ssize_t n = records.len / self->record_size, cached = hashes.len / 8, missing = 0;
    if (!self->catalog) {
        PyErr_SetString(PyExc_ValueError, "creator_rows: these records have no catalog section");
        goto done;
    }
    if (records.len % self->record_size != 0 || rows.len != n * 8 || hashes.len % 8 != 0
        || expires.len != cached * 8) {
        PyErr_SetString(PyExc_ValueError, "creator_rows: records, rows (int64 per record), hashes (int64) and "
                                          "expires (float64 per hash) do not match");
        goto done;
    }
    const double *until = expires.buf;
    int64_t *out = rows.buf;
    for (Py_ssize_t i = 0; i < n; i++) {
        out[i] = fresh_creator_row(self, (const unsigned char *)records.buf + i * self->record_size, hashes.buf, until,
                                   cached, clock);
        missing += out[i] == -1;
    }
    result = PyLong_FromSsize_t(missing);
done:
    PyBuffer_Release(&records);
    PyBuffer_Release(&hashes);
    PyBuffer_Release(&expires);
    PyBuffer_Release(&rows);
    return result;
}

static PyObject *ItemDecoder_creator_features(ItemDecoder *self, PyObject *args, PyObject *kwargs) {
    static char *keywords[] = {"records", "hashes", "expires", "clock", "computed_at", "values", "second", "out", NULL};
    Py_buffer records, hashes, expires, computed_at, values, out;
    double clock;
    long long second;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "y*y*y*dy*y*Lw*", keywords, &records, &hashes, &expires, &clock,
                                     &computed_at, &values, &second, &out))
        return NULL;
    PyObject *result = NULL;
    Py_ssize_t n = records.len / self->record_size, cached = hashes.len / 8, k = self->n_creator_columns;
    if (!self->catalog) {
        PyErr_SetString(PyExc_ValueError, "creator_features: these records have no catalog section");
        goto done;
    }
    if (records.len % self->record_size != 0 || out.len != n * self->columns * (Py_ssize_t)sizeof(double)
        || hashes.len % 8 != 0 || expires.len != cached * 8 || computed_at.len != cached * 8
        || values.len != cached * k * (Py_ssize_t)sizeof(double)) {
        PyErr_SetString(PyExc_ValueError, "creator_features: the records, the matrix and the cache's hashes, expires, "
                                          "computed_at (int64) and values (float64, one row per hash) do not match");
        goto done;
    }
    const double *until = expires.buf, *cache = values.buf;
    const int64_t *computed = computed_at.buf;
    Py_ssize_t pending = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_ssize_t row = fresh_creator_row(self, (const unsigned char *)records.buf + i * self->record_size, hashes.buf,
                                           until, cached, clock);
        if (row == -2)
            continue;
        if (row < 0 || computed[row] != second) {
            pending++;
            continue;
        }
        double *target = (double *)out.buf + i * self->columns;
        for (Py_ssize_t c = 0; c < k; c++)
            target[self->creator_columns[c]] = cache[row * k + c];
    }
    result = PyLong_FromSsize_t(pending);
done:
    PyBuffer_Release(&records);
    PyBuffer_Release(&hashes);
    PyBuffer_Release(&expires);
    PyBuffer_Release(&computed_at);
    PyBuffer_Release(&values);
    PyBuffer_Release(&out);
    return result;
}

static PyMethodDef ItemDecoder_methods[] = {
    {"decode", (PyCFunction)(void (*)(void))ItemDecoder_decode, METH_VARARGS | METH_KEYWORDS,
     "decode(records, second, now, affinity_keys, affinity_values, profile, out)\n"
     "Fill `out` (float64, one row of `columns` per record) from joined item records read at `second` / `now`.\n"
     "affinity_keys: sorted salted int64 hashes, affinity_values: their float64 scores; profile: int64 topic hashes.\n"
     "Columns the records do not set (the creator's) are left as they are."},
    {"creator_rows", (PyCFunction)(void (*)(void))ItemDecoder_creator_rows, METH_VARARGS | METH_KEYWORDS,
     "creator_rows(records, hashes, expires, clock, rows) -> int\n"
     "For each record, the row of its creator in a cache of sorted int64 `hashes` with float64 `expires`, into "
     "`rows` (int64): the row if it is there and expires after `clock`, -1 if not, -2 if the item has no creator. "
     "Returns how many are -1."},
    {"creator_features", (PyCFunction)(void (*)(void))ItemDecoder_creator_features, METH_VARARGS | METH_KEYWORDS,
     "creator_features(records, hashes, expires, clock, computed_at, values, second, out) -> int\n"
     "Copies into `out` each record's creator features from the cache (its `values` rows, to the plan's "
     "creator_columns) where the creator is there, expires after `clock` and was computed for `second`. Returns how "
     "many records with a creator were not served so (0: all were)."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject ItemDecoderType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "recsys.features._decode.ItemDecoder",
    .tp_doc = PyDoc_STR("ItemDecoder(plan): decodes item records per recsys.features.native.decoder_plan"),
    .tp_basicsize = sizeof(ItemDecoder),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)ItemDecoder_init,
    .tp_methods = ItemDecoder_methods,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, .m_name = "recsys.features._decode",
    .m_doc = "The FeatureReader's native item decoder (see recsys/features/native.py).", .m_size = -1,
    .m_methods = module_methods,
};

PyMODINIT_FUNC PyInit__decode(void) {
    if (PyType_Ready(&ItemDecoderType) < 0 || PyType_Ready(&ReplyScannerType) < 0 || PyType_Ready(&ItemCacheType) < 0)
        return NULL;
    crc16_init();
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    if (PyModule_AddObjectRef(m, "ItemDecoder", (PyObject *)&ItemDecoderType) < 0
        || PyModule_AddObjectRef(m, "ReplyScanner", (PyObject *)&ReplyScannerType) < 0
        || PyModule_AddObjectRef(m, "ItemCache", (PyObject *)&ItemCacheType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
