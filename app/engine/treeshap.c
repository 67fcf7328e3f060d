/*
 * tierwise tree attributions: exact path-dependent TreeSHAP values (Lundberg et al. 2020,
 * the algorithm of LightGBM's pred_contrib) of every feature, for every tree of one model,
 * in O(nodes x Q) per tree and row instead of O(leaves x depth^2).
 *
 * Built into the same shared library as treewalk.c (app/engine/native.py), loaded with
 * ctypes; ts_new() copies and validates the arrays, ts_contrib() only reads them, so any
 * number of threads may call it at once.
 *
 * Decisions follow LightGBM 4.x exactly, as treewalk.c does (see its top comment): a value
 * with |v| <= kZeroThreshold reads as 0.0; numerical nodes send NaN to where 0.0 goes unless
 * missing_type is NaN, send 0.0 (zero as missing) or NaN (NaN as missing) to the default
 * side, else left when v <= threshold; categorical nodes send NaN and values whose int
 * conversion is negative (v <= -1, v >= 2^31, as the x86 conversion makes them INT_MIN)
 * right, else the category (int)v left when its bit is set.
 *
 * The method. For a leaf l with value v, let U be the features split on along its path; for
 * j in U, z_j is the product of the cover ratios count(child)/count(node) of the path's
 * splits on j, and o_j is 1 when the row satisfies every one of them, else 0. The
 * path-dependent TreeSHAP value of i in U from that leaf is
 *     v (o_i - z_i) sum_{C in U\{i}} |C|! (d-1-|C|)! / d!  prod_{j in C} o_j prod_{j not in C} z_j
 * (d = |U|), and since k!(d-1-k)!/d! = integral_0^1 t^k (1-t)^(d-1-k) dt, that is
 *     v (o_i - z_i) integral_0^1 prod_{j in U, j != i} F_j(t) dt,  F_j(t) = z_j + (o_j - z_j) t,
 * a polynomial of degree d - 1, integrated exactly by Gauss-Legendre with Q >= d/2 points.
 * Every (leaf, feature) pair is charged to the deepest split on that feature above the leaf:
 * for the edge e into node c from a node splitting on f, the leaves under c with no deeper
 * split on f share the same F_e, so their charge is
 *     (o_e - z_e) sum_q w_q S_e(t_q) / F_e(t_q),  S_e = sum of v_l P_l over those leaves,
 * P_l = prod_{j in U_l} F_j. One pass down the tree (pre-order) gives P at every node (the
 * parent's P times the new factor of its split feature over the factor it replaces); one
 * pass up gives the subtree sums T, and S_e = T_c minus T_m of the topmost nodes m below c
 * that split on f again. With o_e = 0, F_e = z_e (1 - t), so the charge is
 * -sum_q S_e(t_q) w_q / (1 - t_q); with o_e = 1 it is (1 - z_e) sum_q S_e w_q / F_e.
 * Every count must be positive (z > 0): the Python side checks that and refuses the model.
 */
#pragma GCC diagnostic ignored "-Wpsabi"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define TS_ABI 1
#define TS_INLINE static inline __attribute__((always_inline))
#define TS_QMAX 32 /* Gauss-Legendre points: trees with up to 64 distinct features on a path */
#define TS_ZERO_THRESHOLD ((double)1e-35f)

typedef struct {
    double a;       /* internal: threshold; leaf: value */
    double z;       /* merged zero fraction of the edge into this node (root: 1) */
    double r;       /* count(node) / count(parent) (root: 1) */
    int16_t right;  /* internal: the right child (tree-local index; the left one is next); leaf -1 */
    int16_t parent; /* -1 for the root */
    int16_t anc;    /* the node whose edge holds the factor the edge into this node replaces
                       (the deepest edge above from a split on the same feature), or -1 */
    int16_t sub;    /* internal node m: the node c whose S_c excludes T_m (c's edge is the
                       nearest split on m's feature above m; c may be m itself), or -1 */
    int16_t col;    /* internal: column of x it reads */
    int16_t out;    /* non-root: output index of the parent's split feature */
    int32_t cat;    /* internal categorical: first bitset word; numerical: -1 */
    int16_t ncat;   /* categorical: bitset words */
    uint8_t dtype;  /* LightGBM decision type */
    uint8_t isleft; /* the parent's left child */
} ts_node;

typedef struct {
    int32_t ntrees, nnodes, ncat, width, nout, maxn, maxq;
    ts_node *nodes;
    int32_t *node0;   /* per tree: first node; node0[ntrees] = nnodes */
    int32_t *q;       /* per tree: Gauss-Legendre points, a multiple of 4 (padding: weight 0) */
    int32_t *qoff;    /* per tree: first entry in tq, wq, g, ones */
    int32_t *base;    /* per tree: first output of its class */
    int64_t *ioff;    /* per tree: first entry in inv (node by node, q entries each) */
    double *tq, *wq;  /* points and weights on [0, 1] */
    double *g;        /* 1 / (1 - t_q): z / F(t_q) with o = 0 */
    double *ones;     /* 1.0 */
    double *invz;     /* per node: 1 / z */
    double *inv;      /* per non-root node: 1 / F(t_q) with o = 1: 1 / (z + (1 - z) t_q) */
    double *bias;     /* per output: added once per row (the expected values of the trees) */
    int16_t *slot;    /* per node: its excluded-sum slot in the batch kernel, or -1 */
    int32_t *nslot;   /* per tree: slots */
    int32_t *foff;    /* per tree: first entry in feats; foff[ntrees] = total */
    int16_t *feats;   /* per tree: the output indices its edges charge, each once */
    int32_t maxslot;
    uint32_t *cat;
} ts_model;

int ts_abi(void) { return TS_ABI; }

void ts_free(ts_model *m) {
    if (!m) return;
    free(m->nodes); free(m->node0); free(m->q); free(m->qoff); free(m->base); free(m->ioff);
    free(m->tq); free(m->wq); free(m->g); free(m->ones); free(m->invz); free(m->inv); free(m->bias); free(m->cat);
    free(m->slot); free(m->nslot); free(m->foff); free(m->feats);
    free(m);
}

static void *ts_dup(const void *src, size_t bytes) {
    void *p = malloc(bytes ? bytes : 1);
    if (p && bytes) memcpy(p, src, bytes);
    return p;
}

/* Every index inside its array and every reference pointing backwards in its tree's
 * pre-order (children after parents), so ts_contrib never reads astray. */
static int ts_valid(const ts_model *m, int32_t nq) {
    if (m->ntrees < 0 || m->nnodes < 0 || m->width < 1 || m->nout < 1 || m->ncat < 0) return 0;
    if (m->node0[0] != 0 || m->node0[m->ntrees] != m->nnodes) return 0;
    for (int32_t t = 0; t < m->ntrees; ++t) {
        const int32_t n0 = m->node0[t], n = m->node0[t + 1] - n0, q = m->q[t];
        if (n < 1 || n > 32767 || q < 4 || q > TS_QMAX || q % 4 || m->qoff[t] < 0 ||
            (int64_t)m->qoff[t] + q > nq || m->base[t] < 0)
            return 0;
        for (int32_t c = 0; c < n; ++c) {
            const ts_node *d = m->nodes + n0 + c;
            const int leaf = d->right < 0;
            if (c == 0 ? d->parent != -1 : (d->parent < 0 || d->parent >= c)) return 0;
            if (c > 0 && (m->nodes[n0 + d->parent].right < 0 ||
                          (d->isleft ? d->parent + 1 != c : m->nodes[n0 + d->parent].right != c) ||
                          d->out < 0 || (int64_t)m->base[t] + d->out >= m->nout ||
                          d->anc >= c || d->anc < -1 || d->anc == 0 || !(d->z > 0.0) ||
                          !(d->r > 0.0)))
                return 0;
            if (!leaf) {
                if (d->right <= c + 1 || d->right >= n || d->col < 0 || d->col >= m->width ||
                    d->sub < -1 || d->sub > c || d->sub == 0)
                    return 0;
                if ((d->dtype & 1) && (d->cat < 0 || d->ncat < 0 ||
                                       (int64_t)d->cat + d->ncat > m->ncat))
                    return 0;
            }
        }
    }
    return 1;
}

ts_model *ts_new(int32_t ntrees, int32_t nnodes, const ts_node *nodes, const int32_t *node0,
                 const int32_t *q, const int32_t *qoff, int32_t nq, const double *tq,
                 const double *wq, const int32_t *base, int32_t ncat, const uint32_t *cat,
                 int32_t width, int32_t nout, const double *bias) {
    if (ntrees < 0 || nnodes < 0 || nq < 0 || ncat < 0 || width < 1 || nout < 1) return NULL;
    ts_model *m = calloc(1, sizeof(ts_model));
    if (!m) return NULL;
    m->ntrees = ntrees; m->nnodes = nnodes; m->ncat = ncat; m->width = width; m->nout = nout;
    m->nodes = ts_dup(nodes, sizeof(ts_node) * (size_t)nnodes);
    m->node0 = ts_dup(node0, sizeof(int32_t) * ((size_t)ntrees + 1));
    m->q = ts_dup(q, sizeof(int32_t) * (size_t)ntrees);
    m->qoff = ts_dup(qoff, sizeof(int32_t) * (size_t)ntrees);
    m->base = ts_dup(base, sizeof(int32_t) * (size_t)ntrees);
    m->tq = ts_dup(tq, sizeof(double) * (size_t)nq);
    m->wq = ts_dup(wq, sizeof(double) * (size_t)nq);
    m->g = malloc(sizeof(double) * ((size_t)nq + 1));
    m->ones = malloc(sizeof(double) * ((size_t)nq + 1));
    m->invz = malloc(sizeof(double) * ((size_t)nnodes + 1));
    m->bias = ts_dup(bias, sizeof(double) * (size_t)nout);
    m->cat = ts_dup(cat, sizeof(uint32_t) * (size_t)ncat);
    m->ioff = malloc(sizeof(int64_t) * ((size_t)ntrees + 1));
    if (!m->nodes || !m->node0 || !m->q || !m->qoff || !m->base || !m->tq || !m->wq ||
        !m->g || !m->ones || !m->invz || !m->bias || !m->cat || !m->ioff || !ts_valid(m, nq)) {
        ts_free(m);
        return NULL;
    }
    for (int32_t i = 0; i < nq; ++i) {
        if (!(m->tq[i] > 0.0 && m->tq[i] < 1.0)) { ts_free(m); return NULL; }
        m->g[i] = 1.0 / (1.0 - m->tq[i]);
        m->ones[i] = 1.0;
    }
    for (int32_t i = 0; i < nnodes; ++i) m->invz[i] = 1.0 / m->nodes[i].z;
    int64_t total = 0;
    for (int32_t t = 0; t < ntrees; ++t) {
        const int32_t n = m->node0[t + 1] - m->node0[t];
        m->ioff[t] = total;
        total += (int64_t)n * m->q[t];
        if (n > m->maxn) m->maxn = n;
        if (m->q[t] > m->maxq) m->maxq = m->q[t];
    }
    m->ioff[ntrees] = total;
    m->inv = malloc(sizeof(double) * ((size_t)total + 1));
    if (!m->inv) { ts_free(m); return NULL; }
    for (int32_t t = 0; t < ntrees; ++t) {
        const int32_t n0 = m->node0[t], n = m->node0[t + 1] - n0, nq_t = m->q[t];
        const double *tt = m->tq + m->qoff[t];
        for (int32_t c = 0; c < n; ++c) {
            const double z = m->nodes[n0 + c].z;
            double *iv = m->inv + m->ioff[t] + (int64_t)c * nq_t;
            for (int32_t k = 0; k < nq_t; ++k) iv[k] = c ? 1.0 / (z + (1.0 - z) * tt[k]) : 1.0;
        }
    }
    /* Batch kernel: compact slots for the nodes some excluded sum lands in, and the outputs
     * each tree charges. */
    m->slot = malloc(sizeof(int16_t) * ((size_t)nnodes + 1));
    m->nslot = malloc(sizeof(int32_t) * ((size_t)ntrees + 1));
    m->foff = malloc(sizeof(int32_t) * ((size_t)ntrees + 1));
    m->feats = malloc(sizeof(int16_t) * ((size_t)nnodes + 1));
    uint8_t *seen = calloc((size_t)nout + 1, 1);
    if (!m->slot || !m->nslot || !m->foff || !m->feats || !seen) {
        free(seen);
        ts_free(m);
        return NULL;
    }
    int32_t nf = 0;
    for (int32_t t = 0; t < ntrees; ++t) {
        const int32_t n0 = m->node0[t], n = m->node0[t + 1] - n0;
        int32_t k = 0;
        for (int32_t c = 0; c < n; ++c) m->slot[n0 + c] = -1;
        for (int32_t c = 0; c < n; ++c) {
            const ts_node *d = m->nodes + n0 + c;
            if (d->right >= 0 && d->sub >= 0 && m->slot[n0 + d->sub] < 0)
                m->slot[n0 + d->sub] = (int16_t)k++;
        }
        m->nslot[t] = k;
        if (k > m->maxslot) m->maxslot = k;
        m->foff[t] = nf;
        for (int32_t c = 1; c < n; ++c) {
            const int16_t f = m->nodes[n0 + c].out;
            if (!seen[f]) { seen[f] = 1; m->feats[nf++] = f; }
        }
        for (int32_t i = m->foff[t]; i < nf; ++i) seen[m->feats[i]] = 0;
    }
    m->foff[ntrees] = nf;
    free(seen);
    return m;
}

/* LightGBM's decision at internal node d for the row x: 1 left, 0 right. */
TS_INLINE int ts_left(const ts_node *d, const double *x, const uint32_t *cat) {
    double v = x[d->col];
    if (d->dtype & 1) { /* categorical */
        if (v != v || !(v > -1.0) || !(v < 2147483648.0)) return 0;
        const uint32_t k = (uint32_t)(int32_t)v;
        const uint32_t w = k >> 5;
        if (w >= (uint32_t)d->ncat) return 0;
        return (int)((cat[d->cat + w] >> (k & 31)) & 1u);
    }
    /* Without branches on the value (they would mispredict): bitwise logic on compares. */
    const int missing = (d->dtype >> 2) & 3, default_left = (d->dtype >> 1) & 1;
    const int nan = v != v, tiny = (v >= -TS_ZERO_THRESHOLD) & (v <= TS_ZERO_THRESHOLD);
    const int is0 = tiny | (nan & (missing != 2)); /* reads as 0.0 */
    const int cmp = (is0 & (0.0 <= d->a)) | ((is0 ^ 1) & (v <= d->a));
    const int dflt = ((missing == 1) & is0) | ((missing == 2) & nan);
    return (dflt & default_left) | ((dflt ^ 1) & cmp);
}

/* Q/4 vectors of 4 doubles per node (GCC/Clang vector extension: SSE2 pairs at plain -O2,
 * one register with AVX2; the batch loop is cloned for AVX2 and AVX-512 where supported). */
typedef double ts_v4 __attribute__((vector_size(32)));
#if defined(__x86_64__) && defined(__GNUC__) && !defined(TW_PORTABLE) && defined(__has_attribute)
#if __has_attribute(target_clones)
#define TS_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#endif
#endif
#ifndef TS_CLONES
#define TS_CLONES
#endif

TS_INLINE ts_v4 ts_ld(const double *p) { ts_v4 v; memcpy(&v, p, sizeof v); return v; }
TS_INLINE void ts_st(double *p, ts_v4 v) { memcpy(p, &v, sizeof v); }

/* One tree for R rows at once (R independent dependency chains per node: the work is
 * latency-bound otherwise), Q4 = Q / 4 vectors a node and row: adds its charges to phi[r]
 * (the tree's class block of each row's output). P, T, S: (maxn + 2) * R * maxq doubles
 * each (slot n: zeros, the children of every leaf; slot n + 1: scratch, the excluded sum of
 * nodes without one); o, left: maxn * R bytes. No branch on the data except inside the
 * decisions:
 *   P_c = P_parent * F_c(o_c) / F_anc(o_anc), F(o) = z (1 - t) + o t (no anc: F_anc = 1),
 *   T_c = v_c P_c + T_left + T_right (v = 0 for internal nodes),
 *   charge = (o_c - z_c) sum_q (T_c - S_c) w_q / F_c(o_c). */
TS_INLINE void ts_tree_q(const ts_model *m, int32_t t, const double *const *x, double *const *phi,
                         double *P, double *T, double *S, uint8_t *o, uint8_t *left,
                         const int R, const int Q4) {
    const int32_t n0 = m->node0[t], n = m->node0[t + 1] - n0, Q = 4 * Q4;
    const ts_node *nd = m->nodes + n0;
    const double *tq = m->tq + m->qoff[t], *wq = m->wq + m->qoff[t], *g = m->g + m->qoff[t];
    const double *inv = m->inv + m->ioff[t];
    const double *ones = m->ones + m->qoff[t], *invz = m->invz + n0;
    if (n == 1) return;
    const int32_t zero = n, scratch = n + 1;
    const size_t QR = (size_t)Q * R;
#define TS_AT(A, node, r) ((A) + (size_t)(node) * QR + (size_t)(r) * Q)
    for (int r = 0; r < R; ++r) {
        for (int k = 0; k < Q; ++k) {
            TS_AT(P, 0, r)[k] = 1.0; TS_AT(S, 0, r)[k] = 0.0; TS_AT(T, zero, r)[k] = 0.0;
        }
        o[r] = 1;
        left[r] = (uint8_t)ts_left(nd, x[r], m->cat);
    }
    /* Down: P and the leaves' v P at every node, S cleared. */
    for (int32_t c = 1; c < n; ++c) {
        const ts_node *d = nd + c;
        const int32_t a = d->anc, pa = d->parent;
        const double z = d->z, v = d->right < 0 ? d->a : 0.0, sz = a < 0 ? 1.0 : invz[a];
        const double *ia1 = a < 0 ? ones : inv + (size_t)a * Q;
        for (int r = 0; r < R; ++r) {
            if (d->right >= 0) left[c * R + r] = (uint8_t)ts_left(d, x[r], m->cat);
            const int oa = a >= 0 ? o[a * R + r] : 1;
            const int oc = oa & (d->isleft == left[pa * R + r]);
            o[c * R + r] = (uint8_t)oc;
            /* 1 / F_anc(o_anc): inv of the anc (o = 1), g / z_anc (o = 0), or 1 (none). */
            const double *ia = oa ? ia1 : g;
            const double sa = oa ? 1.0 : sz, ocd = (double)oc;
            for (int k = 0; k < Q4; ++k) {
                const ts_v4 tt = ts_ld(tq + 4 * k);
                const ts_v4 f = (z - z * tt + ocd * tt) * (ts_ld(ia + 4 * k) * sa);
                const ts_v4 p = ts_ld(TS_AT(P, pa, r) + 4 * k) * f;
                ts_st(TS_AT(P, c, r) + 4 * k, p);
                ts_st(TS_AT(T, c, r) + 4 * k, p * v);
                ts_st(TS_AT(S, c, r) + 4 * k, p - p);
            }
        }
    }
    /* Up: subtree sums, excluded sums, each edge's charge. */
    for (int32_t c = n - 1; c > 0; --c) {
        const ts_node *d = nd + c;
        const int leaf = d->right < 0;
        const int32_t l = leaf ? zero : c + 1, rr = leaf ? zero : d->right;
        const int32_t sx = d->sub >= 0 ? d->sub : scratch;
        const double *ic1 = inv + (size_t)c * Q, s1 = 1.0 - d->z;
        for (int r = 0; r < R; ++r) {
            const int oc = o[c * R + r];
            const double *ic = oc ? ic1 : g;
            const double s = oc ? s1 : -1.0;
            ts_v4 acc = {0.0, 0.0, 0.0, 0.0};
            for (int k = 0; k < Q4; ++k) {
                const ts_v4 tc = ts_ld(TS_AT(T, c, r) + 4 * k) + ts_ld(TS_AT(T, l, r) + 4 * k) +
                                 ts_ld(TS_AT(T, rr, r) + 4 * k);
                ts_st(TS_AT(T, c, r) + 4 * k, tc);
                if (sx != scratch) /* the same every row: predicted */
                    ts_st(TS_AT(S, sx, r) + 4 * k, ts_ld(TS_AT(S, sx, r) + 4 * k) + tc);
                acc += (tc - ts_ld(TS_AT(S, c, r) + 4 * k)) * (ts_ld(wq + 4 * k) * ts_ld(ic + 4 * k));
            }
            phi[r][d->out] += s * ((acc[0] + acc[1]) + (acc[2] + acc[3]));
        }
    }
#undef TS_AT
}

#define TS_RQ(R)                                                                               \
    switch (m->q[t] / 4) {                                                                     \
    case 1: ts_tree_q(m, t, x, phi, P, T, S, o, left, R, 1); break;                            \
    case 2: ts_tree_q(m, t, x, phi, P, T, S, o, left, R, 2); break;                            \
    case 3: ts_tree_q(m, t, x, phi, P, T, S, o, left, R, 3); break;                            \
    default: ts_tree_q(m, t, x, phi, P, T, S, o, left, R, m->q[t] / 4); break;                 \
    }

TS_INLINE void ts_tree1(const ts_model *m, int32_t t, const double *const *x,
                        double *const *phi, double *P, double *T, double *S, uint8_t *o,
                        uint8_t *left) {
    TS_RQ(1)
}

TS_INLINE void ts_tree4(const ts_model *m, int32_t t, const double *const *x,
                        double *const *phi, double *P, double *T, double *S, uint8_t *o,
                        uint8_t *left) {
    TS_RQ(4)
}

/*
 * x: rows of `width` doubles; rows: n indices into x (NULL: rows 0..n-1); out: n rows of
 * nout doubles, overwritten: the bias, plus every tree's charges. Returns 0, or -1 when
 * memory is short.
 */
/* ---- batches: 8 rows in the lanes of a vector --------------------------------------------
 * The same arithmetic as ts_tree_q, node by node, with the rows in the lanes (one AVX-512
 * register, two AVX2 ones): what depends on the node (factors, weights, indices) is scalar
 * and shared by the 8 rows, the selects on o are bitwise (exact), and each edge's charge is
 * added to a per-feature vector of the 8 rows, so there is no horizontal sum. P holds P
 * going down and T going up (a node's P is no longer needed once its children have theirs);
 * S only for the nodes some excluded sum lands in (slot). */
typedef double ts_v8 __attribute__((vector_size(64)));
typedef long long ts_m8 __attribute__((vector_size(64)));

TS_INLINE ts_v8 ts_sel(ts_m8 m, ts_v8 a, ts_v8 b) {
    return (ts_v8)((m & (ts_m8)a) | (~m & (ts_m8)b));
}

TS_INLINE ts_v8 ts_bc(double v) { return (ts_v8){v, v, v, v, v, v, v, v}; }

/* The decisions of node d for the 8 rows: all ones where the row goes left. */
TS_INLINE ts_m8 ts_left8(const ts_node *d, const double *const *x, const uint32_t *cat) {
    ts_v8 v;
    for (int r = 0; r < 8; ++r) v[r] = x[r][d->col];
    if (d->dtype & 1) {
        ts_m8 res;
        for (int r = 0; r < 8; ++r) res[r] = -(long long)ts_left(d, x[r], cat);
        return res;
    }
    const int missing = (d->dtype >> 2) & 3;
    const ts_m8 all = {-1, -1, -1, -1, -1, -1, -1, -1}, none = all ^ all;
    const ts_m8 nan = v != v;
    const ts_m8 tiny = (v >= ts_bc(-TS_ZERO_THRESHOLD)) & (v <= ts_bc(TS_ZERO_THRESHOLD));
    const ts_m8 is0 = tiny | (nan & (missing != 2 ? all : none));
    const ts_m8 z0 = 0.0 <= d->a ? all : none;
    const ts_m8 cmp = (is0 & z0) | (~is0 & (v <= ts_bc(d->a)));
    const ts_m8 dflt = (is0 & (missing == 1 ? all : none)) | (nan & (missing == 2 ? all : none));
    const ts_m8 dl = (d->dtype >> 1) & 1 ? all : none;
    return (dflt & dl) | (~dflt & cmp);
}

/* Tree t for 8 rows: adds each charged feature's sum to acc[out] (lanes = rows). */
TS_INLINE void ts_tree8(const ts_model *m, int32_t t, const double *const *x, ts_v8 *acc,
                        ts_v8 *P, ts_v8 *S, ts_m8 *O, ts_m8 *L, const int Q) {
    const int32_t n0 = m->node0[t], n = m->node0[t + 1] - n0;
    const ts_node *nd = m->nodes + n0;
    const double *tq = m->tq + m->qoff[t], *wq = m->wq + m->qoff[t], *g = m->g + m->qoff[t];
    const double *inv = m->inv + m->ioff[t], *invz = m->invz + n0;
    const int16_t *slot = m->slot + n0;
    const ts_m8 all = {-1, -1, -1, -1, -1, -1, -1, -1};
    if (n == 1) return;
    for (int k = 0; k < Q; ++k) P[k] = ts_bc(1.0);
    for (int32_t i = 0; i < m->nslot[t] * Q; ++i) S[i] = ts_bc(0.0);
    O[0] = all;
    L[0] = ts_left8(nd, x, m->cat);
    for (int32_t c = 1; c < n; ++c) {
        const ts_node *d = nd + c;
        const int32_t a = d->anc;
        const ts_m8 hot = d->isleft ? L[d->parent] : ~L[d->parent];
        const ts_m8 oa = a >= 0 ? O[a] : all, oc = oa & hot;
        O[c] = oc;
        if (d->right >= 0) L[c] = ts_left8(d, x, m->cat);
        const double z = d->z, r = d->r;
        const double *ia = a >= 0 ? inv + (size_t)a * Q : m->ones;
        const ts_v8 *pp = P + (size_t)d->parent * Q;
        ts_v8 *pc = P + (size_t)c * Q;
        for (int k = 0; k < Q; ++k) {
            const double f11 = (z + (1.0 - z) * tq[k]) * ia[k], f10 = (z * (1.0 - tq[k])) * ia[k];
            pc[k] = pp[k] * ts_sel(oc, ts_bc(f11), ts_sel(oa, ts_bc(f10), ts_bc(r)));
        }
    }
    (void)invz;
    for (int32_t c = n - 1; c > 0; --c) {
        const ts_node *d = nd + c;
        ts_v8 *tc = P + (size_t)c * Q;
        if (d->right < 0) {
            const ts_v8 v = ts_bc(d->a);
            for (int k = 0; k < Q; ++k) tc[k] = v * tc[k];
        } else {
            const ts_v8 *tl = P + (size_t)(c + 1) * Q, *tr = P + (size_t)d->right * Q;
            for (int k = 0; k < Q; ++k) tc[k] = tl[k] + tr[k];
            if (d->sub >= 0) {
                ts_v8 *sx = S + (size_t)slot[d->sub] * Q;
                for (int k = 0; k < Q; ++k) sx[k] += tc[k];
            }
        }
        const ts_m8 oc = O[c];
        const double *ic = inv + (size_t)c * Q, s1 = 1.0 - d->z;
        ts_v8 sum = ts_bc(0.0);
        if (slot[c] >= 0) {
            const ts_v8 *sc = S + (size_t)slot[c] * Q;
            for (int k = 0; k < Q; ++k)
                sum += (tc[k] - sc[k]) * ts_sel(oc, ts_bc(s1 * (wq[k] * ic[k])), ts_bc(-(wq[k] * g[k])));
        } else {
            for (int k = 0; k < Q; ++k)
                sum += tc[k] * ts_sel(oc, ts_bc(s1 * (wq[k] * ic[k])), ts_bc(-(wq[k] * g[k])));
        }
        acc[d->out] += sum;
    }
}

TS_INLINE void ts_block8(const ts_model *m, int32_t t, const double *const *x, ts_v8 *acc,
                         ts_v8 *P, ts_v8 *S, ts_m8 *O, ts_m8 *L) {
    switch (m->q[t]) {
    case 4: ts_tree8(m, t, x, acc, P, S, O, L, 4); break;
    case 8: ts_tree8(m, t, x, acc, P, S, O, L, 8); break;
    case 12: ts_tree8(m, t, x, acc, P, S, O, L, 12); break;
    default: ts_tree8(m, t, x, acc, P, S, O, L, m->q[t]); break;
    }
}

/* n >= 8 rows: blocks of 8 (the last one padded with copies of the last row), tree after
 * tree so that a tree's arrays stay in cache for every block. */
TS_INLINE int ts_batch8(const ts_model *m, const double *x, int64_t n, const int64_t *rows,
                        double *out) {
    const int32_t nout = m->nout, maxq = m->maxq > 0 ? m->maxq : 4;
    const size_t pcells = (size_t)(m->maxn + 1) * maxq, scells = (size_t)(m->maxslot + 1) * maxq;
    char *raw = malloc(sizeof(ts_v8) * (pcells + scells + (size_t)nout + 1) +
                       sizeof(ts_m8) * 2 * ((size_t)m->maxn + 1) + 64);
    if (!raw) return -1;
    char *al = raw + (64 - (uintptr_t)raw % 64) % 64;
    ts_v8 *P = (ts_v8 *)(void *)al, *S = P + pcells, *acc = S + scells;
    ts_m8 *O = (ts_m8 *)(void *)(acc + nout + 1), *L = O + m->maxn + 1;
    for (int i = 0; i <= nout; ++i) acc[i] = ts_bc(0.0);
    for (int32_t t = 0; t < m->ntrees; ++t) {
        for (int64_t i0 = 0; i0 < n; i0 += 8) {
            const double *xs[8];
            for (int r = 0; r < 8; ++r) {
                const int64_t i = i0 + r < n ? i0 + r : n - 1;
                xs[r] = x + (rows ? rows[i] : i) * m->width;
            }
            ts_block8(m, t, xs, acc, P, S, O, L);
            const int lanes = n - i0 < 8 ? (int)(n - i0) : 8;
            for (int32_t j = m->foff[t]; j < m->foff[t + 1]; ++j) {
                const int16_t f = m->feats[j];
                for (int r = 0; r < lanes; ++r) out[(i0 + r) * nout + m->base[t] + f] += acc[f][r];
                acc[f] = ts_bc(0.0);
            }
        }
    }
    free(raw);
    return 0;
}

TS_CLONES int ts_contrib(const ts_model *m, const double *x, int64_t n, const int64_t *rows,
                         double *out) {
    if (n <= 0) return 0;
    const size_t cells = (size_t)(m->maxn + 2) * (size_t)(m->maxq > 0 ? m->maxq : 4) * 4;
    double *buf = malloc(sizeof(double) * 3 * cells + 2 * 4 * (size_t)(m->maxn + 1));
    if (!buf) return -1;
    double *P = buf, *T = buf + cells, *S = buf + 2 * cells;
    uint8_t *o = (uint8_t *)(buf + 3 * cells), *left = o + 4 * (m->maxn + 1);
    const int32_t nout = m->nout;
    for (int64_t i = 0; i < n; ++i) memcpy(out + i * nout, m->bias, sizeof(double) * (size_t)nout);
    if (n >= 8) {
        free(buf);
        return ts_batch8(m, x, n, rows, out);
    }
    /* Tree after tree, every row (the tree's arrays stay in cache), four rows at a time. */
    for (int32_t t = 0; t < m->ntrees; ++t) {
        int64_t i = 0;
        for (; i + 4 <= n; i += 4) {
            const double *xs[4];
            double *ph[4];
            for (int r = 0; r < 4; ++r) {
                xs[r] = x + (rows ? rows[i + r] : i + r) * m->width;
                ph[r] = out + (i + r) * nout + m->base[t];
            }
            ts_tree4(m, t, xs, ph, P, T, S, o, left);
        }
        for (; i < n; ++i) {
            const double *xs[1] = {x + (rows ? rows[i] : i) * m->width};
            double *ph[1] = {out + i * nout + m->base[t]};
            ts_tree1(m, t, xs, ph, P, T, S, o, left);
        }
    }
    free(buf);
    return 0;
}
