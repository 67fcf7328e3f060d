/*
 * tierwise tree walker: every tree of every model of a scoring context, evaluated in one
 * native call per batch, with LightGBM's own prediction semantics.
 *
 * Built at first use by app/scoring/compiled.py with the system C compiler (no Python C-API),
 * loaded with ctypes. The model data (flat node arrays) is built in Python from the LightGBM
 * text model and handed over once through tw_new(); tw_predict() only reads it, so any number
 * of threads may call it at once.
 *
 * Semantics, as in LightGBM 4.x (include/LightGBM/tree.h and the dense-matrix row reader):
 *   - an input value with |v| <= kZeroThreshold (1e-35f) is read as 0.0 (the row reader drops it
 *     and the predict buffer holds 0.0); NaN is kept;
 *   - numerical split: NaN becomes 0.0 unless missing_type is NaN; missing_type Zero sends 0.0
 *     (and so NaN) to the default side, missing_type NaN sends NaN to the default side, anything
 *     else goes left when v <= threshold;
 *   - categorical split: NaN and values whose int conversion is negative (v <= -1, and
 *     v >= 2^31, which the x86 conversion turns into INT_MIN) go right; otherwise the category
 *     (int)v goes left when its bit is set in the node's bitset;
 *   - leaf outputs are summed in double per output column, in tree order, starting from 0.0,
 *     exactly as GBDT::PredictRaw does, so the sums are bit-identical.
 *
 * The row is expanded once per call into three copies of nfeat values: [0, nfeat) with NaN as
 * -inf, [nfeat, 2 nfeat) with NaN as +inf, [2 nfeat, 3 nfeat) with NaN kept. A plain numerical
 * node reads the copy in which NaN already lands on its NaN side (-inf <= thr goes left,
 * +inf <= thr goes right, for a finite thr), so its step is a single comparison. Only
 * categorical nodes, zero-as-missing nodes whose default side differs from "0 <= thr" and
 * nodes with an infinite threshold ("special" nodes, flagged, reading the NaN-kept copy) take
 * the slower step.
 *
 * Node layout: trees in pre-order, so the left child of node i is i + 1 and the right child is
 * i + 1 + skip. A leaf has skip = -1 and threshold NaN: "v <= NaN" is false, so a step from a
 * leaf goes "right" onto itself. That lets K trees be walked in lock-step with no data-dependent
 * branch inside a step: K independent chains keep the CPU busy, and the only branch taken on
 * data is "every walk of the group has reached its leaf".
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#ifndef TW_K
#define TW_K 8 /* trees walked in lock-step */
#endif
#define TW_ABI 2

#define TW_NANLEFT 1u /* special numerical node: NaN goes left */
#define TW_CAT 2u     /* categorical split: thr holds (offset, words) into the bitset array */
#define TW_ZERO 4u    /* zero-as-missing node whose default side differs from "0 <= thr" */
#define TW_ZLEFT 8u   /* default side of a TW_ZERO node is left */
#define TW_RAW 16u    /* numerical node with an infinite threshold: reads NaN as NaN */
#define TW_SPECIAL (TW_CAT | TW_ZERO | TW_RAW)

/* LightGBM's kZeroThreshold is the float literal 1e-35f: 1.0000000180025095e-35 as a double. */
#define TW_ZERO_THRESHOLD ((double)1e-35f)

typedef struct {
    double thr;    /* threshold; NaN for a leaf; categorical: uint32 offset, uint32 words */
    int32_t skip;  /* right child = this + 1 + skip (left child = this + 1); leaf: -1 */
    uint16_t feat; /* column of the expanded row (see above) */
    uint16_t flags;
} tw_node;

typedef struct {
    int32_t nfeat, ncols, ntrees, ngroups, nnodes;
    tw_node *nodes;
    double *val;     /* per node: leaf value (unused for internal nodes) */
    uint32_t *cat;   /* categorical bitsets */
    int32_t *root;   /* per tree: node index of its root */
    int32_t *col;    /* per tree: output column */
    int32_t *g_tree; /* per group: first tree */
    int32_t *g_n;    /* per group: number of trees (1..TW_K) */
    int32_t *g_depth;
    int32_t *g_special;
    int32_t part_g[32][2]; /* per part: group range [begin, end) */
    int32_t part_c[32][2]; /* per part: column range [begin, end) */
    int32_t nparts;
} tw_model;

int tw_abi(void) { return TW_ABI * 1000 + TW_K; }

static void *dup(const void *src, size_t bytes) {
    void *p = malloc(bytes ? bytes : 1);
    if (p && bytes) memcpy(p, src, bytes);
    return p;
}

void tw_free(tw_model *m) {
    if (!m) return;
    free(m->nodes); free(m->val); free(m->cat); free(m->root); free(m->col);
    free(m->g_tree); free(m->g_n); free(m->g_depth); free(m->g_special);
    free(m);
}

/* Every index stays inside its array: a bad model can never make tw_predict read astray. */
static int tw_valid(const tw_model *m, int32_t ncat) {
    if (m->nfeat < 1 || m->ncols < 0 || m->nnodes < 1) return 0;
    for (int32_t i = 0; i < m->nnodes; ++i) {
        const tw_node *n = m->nodes + i;
        if (n->feat >= 3 * m->nfeat) return 0;
        /* A leaf (skip -1) must stay put: threshold NaN, no flags. Any other node moves
         * forward (pre-order), so every walk ends on a leaf inside the array. */
        if (n->skip == -1) {
            if (n->thr == n->thr || n->flags != 0) return 0;
        } else if (n->skip < 1 || (int64_t)i + 1 + n->skip >= m->nnodes) {
            return 0;
        }
        if (n->flags & TW_CAT) {
            uint32_t loc[2];
            memcpy(loc, &n->thr, sizeof loc);
            if ((uint64_t)loc[0] + loc[1] > (uint64_t)ncat) return 0;
        }
    }
    for (int32_t t = 0; t < m->ntrees; ++t)
        if (m->root[t] < 0 || m->root[t] >= m->nnodes || m->col[t] < 0 || m->col[t] >= m->ncols)
            return 0;
    for (int32_t g = 0; g < m->ngroups; ++g)
        if (m->g_n[g] < 1 || m->g_n[g] > TW_K || m->g_tree[g] < 0 ||
            (int64_t)m->g_tree[g] + m->g_n[g] > m->ntrees || m->g_depth[g] < 0)
            return 0;
    for (int32_t p = 0; p < m->nparts; ++p)
        if (m->part_g[p][0] < 0 || m->part_g[p][0] > m->part_g[p][1] ||
            m->part_g[p][1] > m->ngroups || m->part_c[p][0] < 0 ||
            m->part_c[p][0] > m->part_c[p][1] || m->part_c[p][1] > m->ncols)
            return 0;
    return 1;
}

/* Copies every array, so the caller's buffers may go away after the call. */
tw_model *tw_new(int32_t nfeat, int32_t ncols, int32_t nnodes, const tw_node *nodes,
                 const double *val, int32_t ncat, const uint32_t *cat, int32_t ntrees,
                 const int32_t *root, const int32_t *col, int32_t ngroups, const int32_t *g_tree,
                 const int32_t *g_n, const int32_t *g_depth, const int32_t *g_special,
                 int32_t nparts, const int32_t *part_g, const int32_t *part_c) {
    if (nparts < 0 || nparts > 32) return NULL;
    tw_model *m = calloc(1, sizeof(tw_model));
    if (!m) return NULL;
    m->nfeat = nfeat; m->ncols = ncols; m->ntrees = ntrees; m->ngroups = ngroups;
    m->nnodes = nnodes; m->nparts = nparts;
    m->nodes = dup(nodes, sizeof(tw_node) * (size_t)nnodes);
    m->val = dup(val, sizeof(double) * (size_t)nnodes);
    m->cat = dup(cat, sizeof(uint32_t) * (size_t)ncat);
    m->root = dup(root, sizeof(int32_t) * (size_t)ntrees);
    m->col = dup(col, sizeof(int32_t) * (size_t)ntrees);
    m->g_tree = dup(g_tree, sizeof(int32_t) * (size_t)ngroups);
    m->g_n = dup(g_n, sizeof(int32_t) * (size_t)ngroups);
    m->g_depth = dup(g_depth, sizeof(int32_t) * (size_t)ngroups);
    m->g_special = dup(g_special, sizeof(int32_t) * (size_t)ngroups);
    for (int i = 0; i < nparts; ++i) {
        m->part_g[i][0] = part_g[2 * i]; m->part_g[i][1] = part_g[2 * i + 1];
        m->part_c[i][0] = part_c[2 * i]; m->part_c[i][1] = part_c[2 * i + 1];
    }
    if (!m->nodes || !m->val || !m->cat || !m->root || !m->col || !m->g_tree || !m->g_n ||
        !m->g_depth || !m->g_special || !tw_valid(m, ncat)) {
        tw_free(m);
        return NULL;
    }
    return m;
}

static inline int cat_left(const uint32_t *bits, const tw_node *n, double v) {
    /* NaN, v <= -1 (negative int) and v >= 2^31 (INT_MIN after conversion) go right. */
    if (!(v > -1.0) || v >= 2147483648.0) return 0;
    uint32_t i = (uint32_t)(int32_t)v; /* truncation toward zero, as static_cast<int> */
    uint32_t loc[2];
    memcpy(loc, &n->thr, sizeof loc);
    uint32_t w = i >> 5;
    if (w >= loc[1]) return 0;
    return (int)((bits[loc[0] + w] >> (i & 31u)) & 1u);
}

/* One step of a plain numerical node (or a leaf, which stays put). */
static inline const tw_node *step(const tw_node *n, const double *x) {
    const uint32_t right = !(x[n->feat] <= n->thr);
    return n + 1 + ((-(int32_t)right) & n->skip);
}

/* One step of any node. */
static inline const tw_node *step_any(const tw_node *n, const double *x, const uint32_t *bits) {
    const uint32_t fl = n->flags;
    const double v = x[n->feat];
    uint32_t right;
    if (__builtin_expect((fl & TW_SPECIAL) != 0, 0)) {
        if (fl & TW_CAT) {
            right = !cat_left(bits, n, v);
        } else if (v != v) {
            right = !(fl & TW_NANLEFT);
        } else if ((fl & TW_ZERO) && v == 0.0) {
            right = !(fl & TW_ZLEFT);
        } else {
            right = !(v <= n->thr);
        }
    } else {
        right = !(v <= n->thr);
    }
    return n + 1 + ((-(int32_t)right) & n->skip);
}

static inline void walk_group(const tw_model *m, int32_t g, const double *x, double *out) {
    const int32_t t0 = m->g_tree[g], nt = m->g_n[g], depth = m->g_depth[g];
    const tw_node *p[TW_K];
    for (int k = 0; k < TW_K; ++k) p[k] = m->nodes + m->root[t0 + (k < nt ? k : 0)];
    /* At most `depth` steps (the deepest leaf of the group); stop as soon as every walk
     * stands on a leaf (skip == -1, so ~skip == 0). */
    if (!m->g_special[g]) {
        for (int32_t d = 0; d < depth; ++d) {
            int32_t live = 0;
            for (int k = 0; k < TW_K; ++k) {
                p[k] = step(p[k], x);
                live |= ~p[k]->skip;
            }
            if (!live) break;
        }
    } else {
        const uint32_t *bits = m->cat;
        for (int32_t d = 0; d < depth; ++d) {
            int32_t live = 0;
            for (int k = 0; k < TW_K; ++k) {
                p[k] = step_any(p[k], x, bits);
                live |= ~p[k]->skip;
            }
            if (!live) break;
        }
    }
    const int32_t *col = m->col + t0;
    for (int k = 0; k < nt; ++k) out[col[k]] += m->val[p[k] - m->nodes];
}

/* Rows are read this many at a time into a normalised buffer; each tree group is then walked
 * for every row of the block while its nodes are hot in the cache. */
#define TW_BLOCK_DOUBLES 4096

/*
 * x: n rows of nfeat doubles (row-major, contiguous); out: n rows of ncols doubles.
 * part_mask: bit i asks for part i; the columns of the parts not asked for are not written.
 * Returns 0, or -1 when memory is short.
 */
int tw_predict(const tw_model *m, const double *x, int64_t n, double *out, uint32_t part_mask) {
    const int32_t nf = m->nfeat, nc = m->ncols, w = 3 * m->nfeat;
    double stackbuf[TW_BLOCK_DOUBLES];
    double *buf = stackbuf;
    int64_t block = TW_BLOCK_DOUBLES / w;
    if (block < 1) {
        block = 1;
        buf = malloc(sizeof(double) * (size_t)w);
        if (!buf) return -1;
    }
    for (int64_t r0 = 0; r0 < n; r0 += block) {
        const int64_t nb = (n - r0 < block) ? n - r0 : block;
        for (int64_t r = 0; r < nb; ++r) {
            const double *src = x + (r0 + r) * nf;
            double *lo = buf + r * w, *hi = lo + nf, *raw = hi + nf;
            for (int32_t j = 0; j < nf; ++j) {
                double v = src[j];
                if (fabs(v) <= TW_ZERO_THRESHOLD) v = 0.0;
                raw[j] = v;
                lo[j] = v != v ? -INFINITY : v;
                hi[j] = v != v ? INFINITY : v;
            }
        }
        for (int32_t p = 0; p < m->nparts; ++p) {
            if (!((part_mask >> p) & 1u)) continue;
            const int32_t c0 = m->part_c[p][0], c1 = m->part_c[p][1];
            for (int64_t r = 0; r < nb; ++r)
                for (int32_t c = c0; c < c1; ++c) out[(r0 + r) * nc + c] = 0.0;
            const int32_t g0 = m->part_g[p][0], g1 = m->part_g[p][1];
            for (int32_t g = g0; g < g1; ++g)
                for (int64_t r = 0; r < nb; ++r) walk_group(m, g, buf + r * w, out + (r0 + r) * nc);
        }
    }
    if (buf != stackbuf) free(buf);
    return 0;
}
