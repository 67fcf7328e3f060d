/*
 * tierwise tree walker: every tree of every model of a scoring context, evaluated in one
 * native call per batch, with LightGBM's own prediction semantics.
 *
 * Built at first use by app/scoring/compiled.py with the system C compiler (no Python C-API),
 * loaded with ctypes. The model data (flat arrays) is built in Python from the LightGBM text
 * model and handed over once through tw_new(); tw_predict() only reads it, so any number of
 * threads may call it at once.
 *
 * Semantics, as in LightGBM 4.x (include/LightGBM/tree.h and the dense-matrix row reader):
 *   - an input value with |v| <= kZeroThreshold (1e-35f) is read as 0.0 (the row reader drops
 *     it and the predict buffer holds 0.0); NaN is kept;
 *   - numerical split: NaN becomes 0.0 unless missing_type is NaN; missing_type Zero sends 0.0
 *     (and so NaN) to the default side, missing_type NaN sends NaN to the default side, anything
 *     else goes left when v <= threshold;
 *   - categorical split: NaN and values whose int conversion is negative (v <= -1, and
 *     v >= 2^31, which the x86 conversion turns into INT_MIN) go right; otherwise the category
 *     (int)v goes left when its bit is set in the node's bitset;
 *   - leaf outputs are summed in double per output column, in tree order, starting from 0.0,
 *     exactly as GBDT::PredictRaw does, so the sums are bit-identical.
 *
 * Ranks instead of doubles. For each input column, T is the sorted list of every threshold
 * any node uses on it; a node stores the index i of its threshold in T (16 bits), and a row
 * value v is replaced once per row by its rank r(v) = number of thresholds below v. Then
 * v <= T[i] exactly when r(v) <= i, so every test is a 16-bit integer comparison and a node
 * takes 8 bytes: the internal nodes of ~2,600 trees fit in a 1 MB L2 cache.
 *
 * Each node compares one entry of the ranked row b, computed once per input row:
 *   b[0 .. nf)      rank, NaN as 0        (nodes whose NaN side is left)
 *   b[nf .. 2nf)    rank, NaN as BIG      (NaN side right)
 *   b[2nf .. 3nf)   rank, 0 and NaN as 0  (zero-as-missing nodes with default side left)
 *   b[3nf .. 4nf)   rank, 0 and NaN as BIG (zero-as-missing nodes with default side right)
 *   b[4nf + i]      0 when the category is in bitset i, else BIG (categorical nodes, index 0)
 *   b[width - 1]    always BIG (leaves)
 * BIG = 65535 exceeds every threshold index, so BIG always goes right and 0 always left.
 *
 * Nodes of a tree are stored in pre-order, so a left child is always the next node; a node
 * keeps the distance in bytes from its left child to its right child as int16 (so a right
 * child is at most 5,461 nodes away: trees up to ~2,700 leaves): 6 bytes a node, and a walk
 * is a byte pointer moved by 6 or 6 + that distance. A leaf is a node too: it compares
 * the always-BIG entry, so it goes right, and its stored offset is -1, so it stays put; its
 * threshold field holds the leaf's number. A step is then the same few instructions for
 * every node, with no branch, and walks in lock-step can run past their leaf at no risk; a
 * group of walks is done when no walk moved.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define TW_ABI 9
#define TW_BIG 65535u

#ifndef TW_K
#define TW_K 8 /* trees walked in lock-step for one row */
#endif
/* Rows walked in lock-step through one tree (batches). The ranked rows of a lane group are
 * interleaved, entry after entry (b[entry * TW_LANES + lane]), and nodes store their entry
 * already multiplied by TW_LANES, so lane k reads b[col + k]: no per-lane row pointer. */
#define TW_LANES 8
#ifndef TW_BLOCK
#define TW_BLOCK 64 /* rows ranked at a time in a batch */
#endif

/* LightGBM's kZeroThreshold is the float literal 1e-35f: 1.0000000180025095e-35 as a double. */
#define TW_ZERO_THRESHOLD ((double)1e-35f)

typedef struct {
    uint16_t thr;  /* index of the threshold in its column's sorted list (0 for categorical);
                      a leaf: its number in the tree */
    uint16_t col;  /* entry of the ranked row */
    int16_t rm1;   /* bytes from the left child (the next node) to the right child; leaf: -6 */
} tw_node;

typedef struct {
    int32_t feat;   /* input column */
    uint32_t off;   /* first word in the bitset array */
    uint32_t words; /* bitset length in 32-bit words */
} tw_catcol;

typedef struct {
    int32_t nfeat, ncols, ntrees, nnodes, nleaves, ncatcols, width;
    tw_node *nodes;
    double *leaf;     /* leaf values, tree after tree */
    double *thr;      /* sorted thresholds, column after column */
    int32_t *thr_off; /* per input column: first threshold; thr_off[nfeat] = total */
    uint32_t *cat;    /* categorical bitsets */
    tw_catcol *catcols;
    int32_t *root;    /* per tree: node index of its root */
    int32_t *leaf0;   /* per tree: index of its leaf 0 in `leaf` */
    int32_t *col;     /* per tree: output column */
    int32_t *depth;   /* per tree: depth of its deepest leaf */
    int32_t part_t[32][2]; /* per part: tree range [begin, end) */
    int32_t part_c[32][2]; /* per part: column range [begin, end) */
    int32_t nparts;
} tw_model;

int tw_abi(void) { return TW_ABI * 100 + TW_LANES; }

static void *dup(const void *src, size_t bytes) {
    void *p = malloc(bytes ? bytes : 1);
    if (p && bytes) memcpy(p, src, bytes);
    return p;
}

void tw_free(tw_model *m) {
    if (!m) return;
    free(m->nodes); free(m->leaf); free(m->thr); free(m->thr_off); free(m->cat);
    free(m->catcols); free(m->root); free(m->leaf0); free(m->col); free(m->depth);
    free(m);
}

/* Every index stays inside its array, and every walk moves forward to a leaf of its own tree:
 * a bad model can never make tw_predict read astray or loop. */
static int tw_valid(const tw_model *m, int32_t ncat) {
    if (m->nfeat < 1 || m->ncols < 0 || m->nnodes < 0 || m->ntrees < 0 || m->ncatcols < 0 ||
        m->nleaves < 0 || m->width > 65535)
        return 0;
    if (m->thr_off[0] != 0) return 0;
    for (int32_t j = 0; j < m->nfeat; ++j)
        if (m->thr_off[j + 1] < m->thr_off[j] || m->thr_off[j + 1] - m->thr_off[j] > 65535)
            return 0;
    for (int32_t i = 0; i < m->ncatcols; ++i) {
        const tw_catcol *c = m->catcols + i;
        if (c->feat < 0 || c->feat >= m->nfeat || (uint64_t)c->off + c->words > (uint64_t)ncat)
            return 0;
    }
    /* Trees own consecutive node ranges, in order. Children stay inside their tree and come
     * after their parent; a leaf reads the always-BIG entry and stays put. */
    int32_t end = m->nnodes, lend = m->nleaves;
    for (int32_t t = m->ntrees - 1; t >= 0; --t) {
        const int32_t r0 = m->root[t];
        if (m->col[t] < 0 || m->col[t] >= m->ncols || m->depth[t] < 0 || m->leaf0[t] < 0 ||
            m->leaf0[t] >= lend || r0 < 0 || r0 >= end)
            return 0;
        for (int32_t i = r0; i < end; ++i) {
            const tw_node *n = m->nodes + i;
            if (n->col % TW_LANES != 0 || n->col / TW_LANES >= m->width) return 0;
            if (n->col / TW_LANES == m->width - 1) { /* a leaf */
                if (n->rm1 != -(int16_t)sizeof(tw_node) || m->leaf0[t] + n->thr >= lend) return 0;
            } else if (n->rm1 < 1 || n->rm1 % (int16_t)sizeof(tw_node) != 0 ||
                       i + 1 + n->rm1 / (int16_t)sizeof(tw_node) >= end) {
                return 0;
            }
        }
        end = r0;
        lend = m->leaf0[t];
    }
    if (end != 0 || lend != 0) return 0;
    for (int32_t p = 0; p < m->nparts; ++p)
        if (m->part_t[p][0] < 0 || m->part_t[p][0] > m->part_t[p][1] ||
            m->part_t[p][1] > m->ntrees || m->part_c[p][0] < 0 ||
            m->part_c[p][0] > m->part_c[p][1] || m->part_c[p][1] > m->ncols)
            return 0;
    return 1;
}

/* Copies every array, so the caller's buffers may go away after the call. */
tw_model *tw_new(int32_t nfeat, int32_t ncols, int32_t nnodes, const tw_node *nodes,
                 int32_t nleaves, const double *leaf, const double *thr, const int32_t *thr_off,
                 int32_t ncat, const uint32_t *cat, int32_t ncatcols, const tw_catcol *catcols,
                 int32_t ntrees, const int32_t *root, const int32_t *leaf0, const int32_t *col,
                 const int32_t *depth, int32_t nparts, const int32_t *part_t,
                 const int32_t *part_c) {
    if (nparts < 0 || nparts > 32 || nfeat < 1 || ncatcols < 0 ||
        ((int64_t)4 * nfeat + ncatcols + 1) * TW_LANES > 65535)
        return NULL;
    tw_model *m = calloc(1, sizeof(tw_model));
    if (!m) return NULL;
    m->nfeat = nfeat; m->ncols = ncols; m->ntrees = ntrees; m->nnodes = nnodes;
    m->nleaves = nleaves; m->ncatcols = ncatcols; m->width = 4 * nfeat + ncatcols + 1;
    m->nparts = nparts;
    m->nodes = dup(nodes, sizeof(tw_node) * (size_t)nnodes);
    m->leaf = dup(leaf, sizeof(double) * (size_t)nleaves);
    m->thr_off = dup(thr_off, sizeof(int32_t) * (size_t)(nfeat + 1));
    m->thr = m->thr_off ? dup(thr, sizeof(double) * (size_t)m->thr_off[nfeat]) : NULL;
    m->cat = dup(cat, sizeof(uint32_t) * (size_t)ncat);
    m->catcols = dup(catcols, sizeof(tw_catcol) * (size_t)ncatcols);
    m->root = dup(root, sizeof(int32_t) * (size_t)ntrees);
    m->leaf0 = dup(leaf0, sizeof(int32_t) * (size_t)ntrees);
    m->col = dup(col, sizeof(int32_t) * (size_t)ntrees);
    m->depth = dup(depth, sizeof(int32_t) * (size_t)ntrees);
    for (int i = 0; i < nparts; ++i) {
        m->part_t[i][0] = part_t[2 * i]; m->part_t[i][1] = part_t[2 * i + 1];
        m->part_c[i][0] = part_c[2 * i]; m->part_c[i][1] = part_c[2 * i + 1];
    }
    if (!m->nodes || !m->leaf || !m->thr_off || !m->thr || !m->cat || !m->catcols || !m->root ||
        !m->leaf0 || !m->col || !m->depth || !tw_valid(m, ncat)) {
        tw_free(m);
        return NULL;
    }
    return m;
}

/* Number of thresholds t[0..n) below v (v not NaN). */
static inline uint32_t rank(const double *t, uint32_t n, double v) {
    uint32_t lo = 0;
    while (n > 0) {
        const uint32_t half = n >> 1;
        if (t[lo + half] < v) {
            lo += half + 1;
            n -= half + 1;
        } else {
            n = half;
        }
    }
    return lo;
}

/* The ranked row (see the top of this file) of one input row x, entry e at b[e * TW_LANES]. */
static void expand(const tw_model *m, const double *x, uint16_t *b) {
    const int32_t nf = m->nfeat;
#define TW_B(e) b[(size_t)(e) * TW_LANES]
    for (int32_t j = 0; j < nf; ++j) {
        double v = x[j];
        if (fabs(v) <= TW_ZERO_THRESHOLD) v = 0.0; /* also -0.0 */
        uint16_t lo, raw, zl, zr;
        if (v != v) {
            lo = 0; raw = TW_BIG; zl = 0; zr = TW_BIG;
        } else {
            const int32_t o = m->thr_off[j];
            lo = raw = (uint16_t)rank(m->thr + o, (uint32_t)(m->thr_off[j + 1] - o), v);
            if (v == 0.0) {
                zl = 0; zr = TW_BIG;
            } else {
                zl = zr = lo;
            }
        }
        TW_B(j) = lo; TW_B(nf + j) = raw; TW_B(2 * nf + j) = zl; TW_B(3 * nf + j) = zr;
    }
    for (int32_t i = 0; i < m->ncatcols; ++i) {
        const tw_catcol *c = m->catcols + i;
        const double v = x[c->feat]; /* values near 0 truncate to category 0 either way */
        int in = 0;
        /* NaN, v <= -1 (negative int) and v >= 2^31 (INT_MIN after conversion) go right. */
        if (v > -1.0 && v < 2147483648.0) {
            const uint32_t k = (uint32_t)(int32_t)v; /* truncation, as static_cast<int> */
            const uint32_t w = k >> 5;
            in = w < c->words && ((m->cat[c->off + w] >> (k & 31u)) & 1u);
        }
        TW_B(4 * nf + i) = in ? 0 : TW_BIG;
    }
    TW_B(m->width - 1) = TW_BIG;
#undef TW_B
}

/* One step: to the left child when b[col] <= thr, else to the right one; a leaf stays. */
/* p: a byte pointer to the current node. */
#define TW_STEP(p, b, moved)                                                   \
    do {                                                                       \
        const tw_node *n_ = (const tw_node *)(p);                              \
        const intptr_t right_ = (b)[n_->col] > n_->thr;                        \
        const intptr_t rel_ = (intptr_t)sizeof(tw_node) + (n_->rm1 & -right_); \
        (p) += rel_; /* no branch */                                           \
        (moved) |= rel_;                                                       \
    } while (0)

#define TW_NODE(p) ((const tw_node *)(p))

/* A walk to the leaf, branching on each test (remainders). */
static inline int32_t walk(const tw_node *nodes, int32_t i, const uint16_t *b) {
    const tw_node *n = nodes + i;
    while (n->rm1 != -(int16_t)sizeof(tw_node)) {
        n = b[n->col] <= n->thr ? n + 1 : (const tw_node *)((const char *)(n + 1) + n->rm1);
    }
    return n->thr;
}

/* Trees t0..t1 for one ranked row, TW_K trees in lock-step: K independent walks and no
 * branch on the data inside a step; the leaf values are added in tree order afterwards. */
static void walk_trees(const tw_model *m, int32_t t0, int32_t t1, const uint16_t *b,
                       double *out) {
    const tw_node *nodes = m->nodes;
    const int32_t *root = m->root, *depth = m->depth, *col = m->col, *leaf0 = m->leaf0;
    int32_t t = t0;
    for (; t + TW_K <= t1; t += TW_K) {
        const char *p[TW_K];
        int32_t deepest = 0;
#pragma GCC unroll 16
        for (int k = 0; k < TW_K; ++k) {
            p[k] = (const char *)(nodes + root[t + k]);
            deepest = depth[t + k] > deepest ? depth[t + k] : deepest;
        }
        for (int32_t d = 0; d < deepest; ++d) {
            intptr_t moved = 0;
#pragma GCC unroll 16
            for (int k = 0; k < TW_K; ++k) TW_STEP(p[k], b, moved);
            if (!moved) break; /* every walk stands on its leaf */
        }
        for (int k = 0; k < TW_K; ++k) out[col[t + k]] += m->leaf[leaf0[t + k] + TW_NODE(p[k])->thr];
    }
    for (; t < t1; ++t) out[col[t]] += m->leaf[leaf0[t] + walk(nodes, root[t], b)];
}

/*
 * x: n rows of nfeat doubles (row-major, contiguous); out: n rows of ncols doubles.
 * part_mask: bit i asks for part i; the columns of the parts not asked for are not written.
 * Returns 0, or -1 when memory is short.
 */
int tw_predict(const tw_model *m, const double *x, int64_t n, double *out, uint32_t part_mask) {
    const int32_t nf = m->nfeat, nc = m->ncols;
    const size_t tile = (size_t)m->width * TW_LANES; /* ranked rows of one lane group */
    const int64_t rows = n < TW_BLOCK ? n : TW_BLOCK;
    uint16_t *buf = malloc(sizeof(uint16_t) * tile * (size_t)((rows + TW_LANES - 1) / TW_LANES));
    if (!buf) return n ? -1 : 0;
    if (n < TW_LANES) {
        /* Few rows (one customer): each row through every tree, trees in lock-step. */
        for (int64_t r = 0; r < n; ++r) {
            double *o = out + r * nc;
            expand(m, x + r * nf, buf);
            for (int32_t p = 0; p < m->nparts; ++p) {
                if (!((part_mask >> p) & 1u)) continue;
                for (int32_t c = m->part_c[p][0]; c < m->part_c[p][1]; ++c) o[c] = 0.0;
                walk_trees(m, m->part_t[p][0], m->part_t[p][1], buf, o);
            }
        }
        free(buf);
        return 0;
    }
    /* Batches: a block of rows is ranked, then each tree takes every row of the block while
     * its nodes are hot, TW_LANES rows in lock-step. */
    const tw_node *nodes = m->nodes;
    for (int64_t r0 = 0; r0 < n; r0 += TW_BLOCK) {
        const int64_t nb = (n - r0 < TW_BLOCK) ? n - r0 : TW_BLOCK;
        for (int64_t r = 0; r < nb; ++r)
            expand(m, x + (r0 + r) * nf, buf + (size_t)(r / TW_LANES) * tile + r % TW_LANES);
        double *o = out + r0 * nc;
        for (int32_t p = 0; p < m->nparts; ++p) {
            if (!((part_mask >> p) & 1u)) continue;
            const int32_t c0 = m->part_c[p][0], c1 = m->part_c[p][1];
            for (int64_t r = 0; r < nb; ++r)
                for (int32_t c = c0; c < c1; ++c) o[r * nc + c] = 0.0;
            for (int32_t t = m->part_t[p][0]; t < m->part_t[p][1]; ++t) {
                const int32_t root = m->root[t], depth = m->depth[t], c = m->col[t];
                const double *leaf = m->leaf + m->leaf0[t];
                int64_t r = 0;
                for (; r + TW_LANES <= nb; r += TW_LANES) {
                    const char *q[TW_LANES];
                    const uint16_t *bb = buf + (size_t)(r / TW_LANES) * tile;
#pragma GCC unroll 16
                    for (int k = 0; k < TW_LANES; ++k) q[k] = (const char *)(nodes + root);
                    for (int32_t d = 0; d < depth; ++d) {
                        intptr_t moved = 0;
#pragma GCC unroll 16
                        for (int k = 0; k < TW_LANES; ++k) TW_STEP(q[k], bb + k, moved);
                        if (!moved) break;
                    }
                    for (int k = 0; k < TW_LANES; ++k) o[(r + k) * nc + c] += leaf[TW_NODE(q[k])->thr];
                }
                for (; r < nb; ++r)
                    o[r * nc + c] += leaf[walk(nodes, root, buf + (size_t)(r / TW_LANES) * tile +
                                                               r % TW_LANES)];
            }
        }
    }
    free(buf);
    return 0;
}

/*
 * The same, taking the two numpy arrays themselves: their data pointers are read at byte
 * `data_at` of the object (numpy's PyArrayObject keeps `data` right after the object header;
 * compiled.py checks the offset against ndarray.ctypes.data before using this). Saves the
 * microsecond or two that building ctypes pointers costs in Python on every call.
 */
int tw_predict_arrays(const tw_model *m, const char *xobj, int64_t n, const char *outobj,
                      uint32_t part_mask, int64_t data_at) {
    const double *x;
    double *out;
    memcpy(&x, xobj + data_at, sizeof x);
    memcpy(&out, outobj + data_at, sizeof out);
    return tw_predict(m, x, n, out, part_mask);
}
