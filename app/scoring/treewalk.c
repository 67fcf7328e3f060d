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
 * Every node is reduced to one test, "right unless e[f] <= thr", on an expanded row e that is
 * computed once per input row:
 *   e[0 .. nf)        the value, NaN as -inf   (nodes whose NaN side is left: -inf <= any thr)
 *   e[nf .. 2nf)      the value, NaN kept      (NaN side right: NaN <= thr is false)
 *   e[2nf .. 3nf)     0 and NaN as -inf        (zero-as-missing nodes, default side left)
 *   e[3nf .. 4nf)     0 and NaN as NaN         (zero-as-missing nodes, default side right)
 *   e[4nf + i]        0.0 when the value's category is in bitset i, else 1.0 (thr 0.5)
 * so a step has no branch on the kind of node, and no node is slower than another.
 *
 * Node layout: trees in pre-order, 16 bytes a node; the left child of node i is i + 1 and the
 * right child is i + 1 + skip. A leaf has skip = -1 and threshold NaN: "e <= NaN" is false, so
 * a step from a leaf goes "right" onto itself; that lets several walks advance in lock-step.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define TW_ABI 3

#ifndef TW_LANES
#define TW_LANES 8 /* rows walked in lock-step through one tree (batch path) */
#endif

/* LightGBM's kZeroThreshold is the float literal 1e-35f: 1.0000000180025095e-35 as a double. */
#define TW_ZERO_THRESHOLD ((double)1e-35f)

typedef struct {
    double thr;    /* threshold; NaN for a leaf */
    int32_t skip;  /* right child = this + 1 + skip (left child = this + 1); leaf: -1 */
    uint32_t feat; /* index into the expanded row */
} tw_node;

typedef struct {
    int32_t feat;   /* input column */
    uint32_t off;   /* first word in the bitset array */
    uint32_t words; /* bitset length in 32-bit words */
} tw_catcol;

typedef struct {
    int32_t nfeat, ncols, ntrees, nnodes, ncatcols, width;
    tw_node *nodes;
    double *val;   /* per node: leaf value (unused for internal nodes) */
    uint32_t *cat; /* categorical bitsets */
    tw_catcol *catcols;
    int32_t *root; /* per tree: node index of its root */
    int32_t *col;  /* per tree: output column */
    int32_t *depth; /* per tree: depth of its deepest leaf */
    int32_t part_t[32][2]; /* per part: tree range [begin, end) */
    int32_t part_c[32][2]; /* per part: column range [begin, end) */
    int32_t nparts;
} tw_model;

int tw_abi(void) { return TW_ABI; }

static void *dup(const void *src, size_t bytes) {
    void *p = malloc(bytes ? bytes : 1);
    if (p && bytes) memcpy(p, src, bytes);
    return p;
}

void tw_free(tw_model *m) {
    if (!m) return;
    free(m->nodes); free(m->val); free(m->cat); free(m->catcols); free(m->root); free(m->col);
    free(m->depth);
    free(m);
}

/* Every index stays inside its array: a bad model can never make tw_predict read astray. */
static int tw_valid(const tw_model *m, int32_t ncat) {
    if (m->nfeat < 1 || m->ncols < 0 || m->nnodes < 1 || m->ntrees < 0 || m->ncatcols < 0)
        return 0;
    for (int32_t i = 0; i < m->nnodes; ++i) {
        const tw_node *n = m->nodes + i;
        if (n->feat >= (uint32_t)m->width) return 0;
        /* A leaf (skip -1) stays put (threshold NaN); any other node moves forward (pre-order),
         * so every walk ends on a leaf inside the array. */
        if (n->skip == -1) {
            if (n->thr == n->thr) return 0;
        } else if (n->skip < 1 || (int64_t)i + 1 + n->skip >= m->nnodes || n->thr != n->thr) {
            return 0;
        }
    }
    for (int32_t i = 0; i < m->ncatcols; ++i) {
        const tw_catcol *c = m->catcols + i;
        if (c->feat < 0 || c->feat >= m->nfeat || (uint64_t)c->off + c->words > (uint64_t)ncat)
            return 0;
    }
    for (int32_t t = 0; t < m->ntrees; ++t)
        if (m->root[t] < 0 || m->root[t] >= m->nnodes || m->col[t] < 0 ||
            m->col[t] >= m->ncols || m->depth[t] < 0)
            return 0;
    for (int32_t p = 0; p < m->nparts; ++p)
        if (m->part_t[p][0] < 0 || m->part_t[p][0] > m->part_t[p][1] ||
            m->part_t[p][1] > m->ntrees || m->part_c[p][0] < 0 ||
            m->part_c[p][0] > m->part_c[p][1] || m->part_c[p][1] > m->ncols)
            return 0;
    return 1;
}

/* Copies every array, so the caller's buffers may go away after the call. */
tw_model *tw_new(int32_t nfeat, int32_t ncols, int32_t nnodes, const tw_node *nodes,
                 const double *val, int32_t ncat, const uint32_t *cat, int32_t ncatcols,
                 const tw_catcol *catcols, int32_t ntrees, const int32_t *root,
                 const int32_t *col, const int32_t *depth, int32_t nparts,
                 const int32_t *part_t, const int32_t *part_c) {
    if (nparts < 0 || nparts > 32 || nfeat < 1 || ncatcols < 0 ||
        (int64_t)4 * nfeat + ncatcols > 0x7fffffff)
        return NULL;
    tw_model *m = calloc(1, sizeof(tw_model));
    if (!m) return NULL;
    m->nfeat = nfeat; m->ncols = ncols; m->ntrees = ntrees; m->nnodes = nnodes;
    m->ncatcols = ncatcols; m->width = 4 * nfeat + ncatcols; m->nparts = nparts;
    m->nodes = dup(nodes, sizeof(tw_node) * (size_t)nnodes);
    m->val = dup(val, sizeof(double) * (size_t)nnodes);
    m->cat = dup(cat, sizeof(uint32_t) * (size_t)ncat);
    m->catcols = dup(catcols, sizeof(tw_catcol) * (size_t)ncatcols);
    m->root = dup(root, sizeof(int32_t) * (size_t)ntrees);
    m->col = dup(col, sizeof(int32_t) * (size_t)ntrees);
    m->depth = dup(depth, sizeof(int32_t) * (size_t)ntrees);
    for (int i = 0; i < nparts; ++i) {
        m->part_t[i][0] = part_t[2 * i]; m->part_t[i][1] = part_t[2 * i + 1];
        m->part_c[i][0] = part_c[2 * i]; m->part_c[i][1] = part_c[2 * i + 1];
    }
    if (!m->nodes || !m->val || !m->cat || !m->catcols || !m->root || !m->col || !m->depth ||
        !tw_valid(m, ncat)) {
        tw_free(m);
        return NULL;
    }
    return m;
}

/* The expanded row e (see the top of this file) of one input row x. */
static void expand(const tw_model *m, const double *x, double *e) {
    const int32_t nf = m->nfeat;
    double *lo = e, *raw = e + nf, *zl = e + 2 * nf, *zr = e + 3 * nf, *cc = e + 4 * nf;
    for (int32_t j = 0; j < nf; ++j) {
        double v = x[j];
        if (fabs(v) <= TW_ZERO_THRESHOLD) v = 0.0; /* also -0.0 */
        const int nan = v != v, zero = v == 0.0;
        raw[j] = v;
        lo[j] = nan ? -INFINITY : v;
        zl[j] = (nan || zero) ? -INFINITY : v;
        zr[j] = (nan || zero) ? NAN : v;
    }
    for (int32_t i = 0; i < m->ncatcols; ++i) {
        const tw_catcol *c = m->catcols + i;
        double v = x[c->feat];
        if (fabs(v) <= TW_ZERO_THRESHOLD) v = 0.0;
        int in = 0;
        /* NaN, v <= -1 (negative int) and v >= 2^31 (INT_MIN after conversion) go right. */
        if (v > -1.0 && v < 2147483648.0) {
            const uint32_t k = (uint32_t)(int32_t)v; /* truncation, as static_cast<int> */
            const uint32_t w = k >> 5;
            in = w < c->words && ((m->cat[c->off + w] >> (k & 31u)) & 1u);
        }
        cc[i] = in ? 0.0 : 1.0;
    }
}

/* One step: left child when e[feat] <= thr, right child otherwise; a leaf stays put. */
static inline const tw_node *step(const tw_node *n, const double *e) {
    const int32_t right = !(e[n->feat] <= n->thr);
    return n + 1 + ((-right) & n->skip);
}

/* A walk to the leaf, branching on each test (the best for one row: the predictor runs
 * ahead, and most trees are shallow where it matters). */
static inline double walk(const tw_model *m, const tw_node *n, const double *e) {
    while (n->skip != -1) n = (e[n->feat] <= n->thr) ? n + 1 : n + 1 + n->skip;
    return m->val[n - m->nodes];
}

#ifndef TW_K
#define TW_K 8 /* trees walked in lock-step for one row */
#endif

/* Trees t0..t1 for one expanded row, TW_K trees in lock-step: K independent walks, no branch
 * on the data inside a step, so nothing is mispredicted but the end of each group. The leaf
 * values are added in tree order afterwards. */
static void walk_trees(const tw_model *m, int32_t t0, int32_t t1, const double *e, double *out) {
    const tw_node *nodes = m->nodes;
    const int32_t *root = m->root, *col = m->col, *depth = m->depth;
    int32_t t = t0;
    for (; t + TW_K <= t1; t += TW_K) {
        const tw_node *p[TW_K];
        int32_t deepest = 0;
        for (int k = 0; k < TW_K; ++k) {
            p[k] = nodes + root[t + k];
            if (depth[t + k] > deepest) deepest = depth[t + k];
        }
        for (int32_t d = 0; d < deepest; ++d) {
            int32_t live = 0;
            for (int k = 0; k < TW_K; ++k) {
                p[k] = step(p[k], e);
                live |= ~p[k]->skip;
            }
            if (!live) break;
        }
        for (int k = 0; k < TW_K; ++k) out[col[t + k]] += m->val[p[k] - nodes];
    }
    for (; t < t1; ++t) out[col[t]] += walk(m, nodes + root[t], e);
}

/* Expanded rows are prepared this many doubles at a time. */
#ifndef TW_BUF_DOUBLES
#define TW_BUF_DOUBLES 8192
#endif

/*
 * x: n rows of nfeat doubles (row-major, contiguous); out: n rows of ncols doubles.
 * part_mask: bit i asks for part i; the columns of the parts not asked for are not written.
 * Returns 0, or -1 when memory is short.
 */
int tw_predict(const tw_model *m, const double *x, int64_t n, double *out, uint32_t part_mask) {
    const int32_t nf = m->nfeat, nc = m->ncols, w = m->width;
    double stackbuf[TW_BUF_DOUBLES];
    double *buf = stackbuf;
    int64_t block = TW_BUF_DOUBLES / w;
    if (block < 1) {
        block = 1;
        buf = malloc(sizeof(double) * (size_t)w);
        if (!buf) return -1;
    }
#ifdef TW_BATCH_ROWS
    const int rowmajor = 0;
#else
    const int rowmajor = 1;
#endif
    if (rowmajor || n == 1) {
        for (int64_t r = 0; r < n; ++r) {
            double *o = out + r * nc;
            expand(m, x + r * nf, buf);
            for (int32_t p = 0; p < m->nparts; ++p) {
                if (!((part_mask >> p) & 1u)) continue;
                for (int32_t c = m->part_c[p][0]; c < m->part_c[p][1]; ++c) o[c] = 0.0;
                walk_trees(m, m->part_t[p][0], m->part_t[p][1], buf, o);
            }
        }
        if (buf != stackbuf) free(buf);
        return 0;
    }
    for (int64_t r0 = 0; r0 < n; r0 += block) {
        const int64_t nb = (n - r0 < block) ? n - r0 : block;
        for (int64_t r = 0; r < nb; ++r) expand(m, x + (r0 + r) * nf, buf + r * w);
        for (int32_t p = 0; p < m->nparts; ++p) {
            if (!((part_mask >> p) & 1u)) continue;
            const int32_t c0 = m->part_c[p][0], c1 = m->part_c[p][1];
            for (int64_t r = 0; r < nb; ++r)
                for (int32_t c = c0; c < c1; ++c) out[(r0 + r) * nc + c] = 0.0;
            const int32_t t0 = m->part_t[p][0], t1 = m->part_t[p][1];
            for (int32_t t = t0; t < t1; ++t) {
                const tw_node *root = m->nodes + m->root[t];
                const int32_t c = m->col[t];
                int64_t r = 0;
#if TW_LANES > 1
                /* TW_LANES rows in lock-step through this tree: independent walks, no branch
                 * on the data; at most depth[t] steps, fewer when all lanes stand on leaves. */
                const int32_t depth = m->depth[t];
                for (; r + TW_LANES <= nb; r += TW_LANES) {
                    const tw_node *p[TW_LANES];
                    const double *e[TW_LANES];
                    for (int k = 0; k < TW_LANES; ++k) {
                        p[k] = root;
                        e[k] = buf + (r + k) * w;
                    }
                    for (int32_t d = 0; d < depth; ++d) {
                        int32_t live = 0;
                        for (int k = 0; k < TW_LANES; ++k) {
                            p[k] = step(p[k], e[k]);
                            live |= ~p[k]->skip;
                        }
                        if (!live) break;
                    }
                    for (int k = 0; k < TW_LANES; ++k)
                        out[(r0 + r + k) * nc + c] += m->val[p[k] - m->nodes];
                }
#endif
                for (; r < nb; ++r) out[(r0 + r) * nc + c] += walk(m, root, buf + r * w);
            }
        }
    }
    if (buf != stackbuf) free(buf);
    return 0;
}
