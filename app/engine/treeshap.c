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
 *
 * The kernel (ts_tree_s) runs one row through one tree with the Q points in the lanes of
 * Q / 4 vectors, over the internal nodes only: a leaf is folded into its parent (its T and
 * the charge of its edge are the parent's P times a factor picked by scalars), and every
 * choice on o is a scalar or pointer pick (indexed loads, masks), never a branch on the data,
 * which mispredicts. One row reads every record of the model once, usually from memory (a
 * request explains the churn model and a few product models): the records are small (80
 * bytes an internal node, the 1 / F(t) of the nodes computed going down rather than read),
 * and the next tree's are prefetched while one tree is computed. Batches (ts_tree8) run the same records with 4 rows in the lanes of a
 * vector and the points in a loop, the row-independent factors of a tree tabulated once per
 * chunk of rows (ts_fill).
 */
#pragma GCC diagnostic ignored "-Wpsabi"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define TS_ABI 1
#define TS_INLINE static inline __attribute__((always_inline))
#if defined(__GNUC__) && !defined(__clang__)
#define TS_UNROLL _Pragma("GCC unroll 8") /* the loops over the points: constant trip counts */
#else
#define TS_UNROLL
#endif
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
    int32_t *qr;      /* per tree: the points that are not padding */
    int32_t *qoff;    /* per tree: first entry in tq, wq, g, ng */
    int32_t *base;    /* per tree: first output of its class */
    int64_t *ioff;    /* per tree: first entry in inv (node by node, q entries each) */
    double *tq, *wq;  /* points and weights on [0, 1] */
    double *g;        /* 1 / (1 - t_q): z / F(t_q) with o = 0 */
    double *inv;      /* per non-root node: 1 / F(t_q) with o = 1: 1 / (z + (1 - z) t_q) */
    double *bias;     /* per output: added once per row (the expected values of the trees) */
    int16_t *slot;    /* per node: its excluded-sum slot in the batch kernel, or -1 */
    int32_t *nslot;   /* per tree: slots */
    int32_t maxslot;
    uint32_t *cat;
    struct ts_down *dn; /* per internal node: what the single-row kernel reads going down */
    struct ts_up *up;   /* per internal node: ... and going up */
    int32_t *ni0;       /* per tree: first internal record; ni0[ntrees] = total */
    int64_t *iioff;     /* per tree: first entry in iinv */
    double *iinv;       /* per internal node: 1 / F(t_q) with o = 1 (the root: 1) */
    int32_t *inode;     /* per internal record: its node */
    double *ng;         /* per point: -1 / (1 - t_q) */
    int32_t maxni;
} ts_model;

/* The single-row kernel's records, for the internal nodes only (pre-order, index 0 the
 * root; a leaf is folded into its parent's record): every index resolved, sentinels for
 * "none" (internal index 0, the root: o = 1 and 1 / F = 1 in every lane). */
typedef struct ts_down {
    double rz[2];       /* the edge into the node: count ratio, zero fraction */
    double thr;         /* threshold */
    int16_t parent;     /* internal index */
    int16_t anc;        /* internal index of the anc, or 0 */
    int16_t col;        /* column of x */
    uint8_t isleft;
    uint8_t dm;         /* bit 0/1: a zero/NaN value takes the default side; bit 2: the
                           default side is left; bit 3: categorical (read the ts_node) */
} ts_down;

typedef struct ts_up {
    /* Its leaf children l (v_l, z_l, r_l; zeros for an internal child): ca = {C, A} with
     * A = sum v_l z_l, C = sum v_l r_l, and v = {v_right, v_left}. */
    double ca[2], v[2];
    int16_t l, r;       /* internal children (a leaf, or none: ni, the zero row) */
    int16_t sa, so;     /* the slot its T is added to (none: nslot + 1, a sink); the slot of
                           its own excluded sum (none: nslot, zeros) */
    int16_t out;        /* output index of the parent's split feature */
    int16_t ka;         /* internal index of the children's anc, or 0 */
    int16_t cout;       /* output index of its own split feature (its children's edges) */
    int16_t pad;
} ts_up;

int ts_abi(void) { return TS_ABI; }

void ts_free(ts_model *m) {
    if (!m) return;
    free(m->nodes); free(m->node0); free(m->q); free(m->qoff); free(m->base); free(m->ioff);
    free(m->tq); free(m->wq); free(m->g); free(m->inv); free(m->bias); free(m->cat);
    free(m->slot); free(m->nslot); free(m->qr); free(m->dn); free(m->up); free(m->ni0); free(m->iioff); free(m->iinv); free(m->inode); free(m->ng);
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
    m->bias = ts_dup(bias, sizeof(double) * (size_t)nout);
    m->cat = ts_dup(cat, sizeof(uint32_t) * (size_t)ncat);
    m->ioff = malloc(sizeof(int64_t) * ((size_t)ntrees + 1));
    if (!m->nodes || !m->node0 || !m->q || !m->qoff || !m->base || !m->tq || !m->wq ||
        !m->g || !m->bias || !m->cat || !m->ioff || !ts_valid(m, nq)) {
        ts_free(m);
        return NULL;
    }
    for (int32_t i = 0; i < nq; ++i) {
        if (!(m->tq[i] > 0.0 && m->tq[i] < 1.0)) { ts_free(m); return NULL; }
        m->g[i] = 1.0 / (1.0 - m->tq[i]);
    }
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
    m->qr = malloc(sizeof(int32_t) * ((size_t)ntrees + 1));
    if (!m->qr) { ts_free(m); return NULL; }
    for (int32_t t = 0; t < ntrees; ++t) {
        int32_t k = 0;
        while (k < m->q[t] && m->wq[m->qoff[t] + k] != 0.0) ++k;
        m->qr[t] = k;
    }
    /* Compact slots for the nodes some excluded sum lands in. */
    m->slot = malloc(sizeof(int16_t) * ((size_t)nnodes + 1));
    m->nslot = malloc(sizeof(int32_t) * ((size_t)ntrees + 1));
    if (!m->slot || !m->nslot) {
        ts_free(m);
        return NULL;
    }
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
    }
    /* The single-row kernel's records. */
    int32_t nint = 0;
    int64_t itot = 0;
    for (int32_t i = 0; i < nnodes; ++i) nint += m->nodes[i].right >= 0;
    m->dn = malloc(sizeof(ts_down) * ((size_t)nint + 1));
    m->up = malloc(sizeof(ts_up) * ((size_t)nint + 1));
    m->inode = malloc(sizeof(int32_t) * ((size_t)nint + 1));
    m->ni0 = malloc(sizeof(int32_t) * ((size_t)ntrees + 1));
    m->iioff = malloc(sizeof(int64_t) * ((size_t)ntrees + 1));
    m->ng = malloc(sizeof(double) * ((size_t)nq + 1));
    int16_t *iidx = malloc(sizeof(int16_t) * ((size_t)m->maxn + 1));
    if (!m->dn || !m->up || !m->inode || !m->ni0 || !m->iioff || !m->ng || !iidx) {
        free(iidx);
        ts_free(m);
        return NULL;
    }
    for (int32_t i = 0; i < nq; ++i) m->ng[i] = -m->g[i];
    for (int32_t t = 0, k = 0; t < ntrees; ++t) {
        const int32_t n0 = m->node0[t], n = m->node0[t + 1] - n0;
        int16_t ni = 0;
        for (int32_t c = 0; c < n; ++c) iidx[c] = m->nodes[n0 + c].right >= 0 ? ni++ : -1;
        m->ni0[t] = k;
        m->iioff[t] = itot;
        itot += (int64_t)ni * m->q[t];
        for (int32_t c = 0; c < n; ++c) {
            const ts_node *d = m->nodes + n0 + c;
            if (d->right < 0) continue;
            const int missing = (d->dtype >> 2) & 3;
            const ts_node *ch[2] = {d + 1, m->nodes + n0 + d->right};
            ts_down *w = m->dn + k;
            ts_up *u = m->up + k;
            m->inode[k++] = n0 + c;
            w->rz[0] = d->r; w->rz[1] = d->z; w->thr = d->a;
            w->parent = c ? iidx[d->parent] : 0;
            w->anc = d->anc >= 0 ? iidx[d->anc] : 0;
            w->col = d->col;
            w->isleft = d->isleft;
            w->dm = (uint8_t)((missing == 1 ? 1 : missing == 2 ? 2 : 0) |
                              ((d->dtype >> 1) & 1) << 2 | (d->dtype & 1) << 3);
            u->ca[0] = u->ca[1] = u->v[0] = u->v[1] = 0.0;
            for (int j = 0; j < 2; ++j) {
                const int leaf = ch[j]->right < 0;
                const int16_t ci = (int16_t)(ch[j] - (m->nodes + n0));
                if (leaf) {
                    u->ca[1] += ch[j]->a * ch[j]->z;
                    u->ca[0] += ch[j]->a * ch[j]->r;
                    u->v[1 - j] = ch[j]->a;
                }
                if (j) u->r = leaf ? ni : iidx[ci]; else u->l = leaf ? ni : iidx[ci];
            }
            u->sa = (int16_t)(d->sub >= 0 ? m->slot[n0 + d->sub] : m->nslot[t] + 1);
            u->so = (int16_t)(m->slot[n0 + c] >= 0 ? m->slot[n0 + c] : m->nslot[t]);
            u->out = c ? d->out : 0;
            u->ka = ch[0]->anc >= 0 ? iidx[ch[0]->anc] : 0;
            u->cout = ch[0]->out;
            u->pad = 0;
        }
        if (ni > m->maxni) m->maxni = ni;
    }
    m->ni0[ntrees] = nint;
    m->iioff[ntrees] = itot;
    free(iidx);
    m->iinv = malloc(sizeof(double) * ((size_t)itot + 1));
    if (!m->iinv) { ts_free(m); return NULL; }
    for (int32_t t = 0; t < ntrees; ++t) {
        const int32_t q = m->q[t];
        for (int32_t i = m->ni0[t]; i < m->ni0[t + 1]; ++i) {
            const int32_t node = m->inode[i];
            const double *src = m->inv + m->ioff[t] + (int64_t)(node - m->node0[t]) * q;
            memcpy(m->iinv + m->iioff[t] + (int64_t)(i - m->ni0[t]) * q, src, sizeof(double) * q);
        }
    }
    free(m->inv); /* the leaves' rows are not needed */
    m->inv = NULL;
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
#if __has_attribute(target_clones) && !defined(__clang__) && __GNUC__ >= 12
/* x86-64-v4: AVX-512 with VL, whose vpternlog makes a lane select one instruction. */
#define TS_CLONES __attribute__((target_clones("arch=x86-64-v4", "avx2", "default")))
#elif __has_attribute(target_clones)
#define TS_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#endif
#endif
#ifndef TS_CLONES
#define TS_CLONES
#endif

TS_INLINE ts_v4 ts_ld(const double *p) { ts_v4 v; memcpy(&v, p, sizeof v); return v; }
TS_INLINE void ts_st(double *p, ts_v4 v) { memcpy(p, &v, sizeof v); }

/* One row, tree t, the Q = 4 * Q4 quadrature points in the lanes of Q4 vectors: P (then T) of
 * node c in P[c * Q4 ...] (slot n: zeros), excluded sums in S by slot (slot nslot: zeros,
 * nslot + 1: a sink for nodes without one), each edge's charge added lane-wise to
 * acc[(base + out) * A4 ...] (summed over the lanes once per row). No branch on the data:
 * the decisions and o are bytes, turned into lane masks. */
typedef long long ts_m4 __attribute__((vector_size(32)));

TS_INLINE ts_v4 ts_sel4(ts_m4 m, ts_v4 a, ts_v4 b) {
    return (ts_v4)((m & (ts_m4)a) | (~m & (ts_m4)b));
}

TS_INLINE ts_m4 ts_mask4(int bit) {
    const long long v = -(long long)bit;
    return (ts_m4){v, v, v, v};
}

TS_INLINE void ts_tree_s(const ts_model *m, int32_t t, const double *x0, const uint8_t *kind,
                         const double *x, ts_v4 *acc, int A4, ts_v4 *P, ts_v4 *S, uint8_t *o,
                         uint8_t *left, double *iv, const int Q4) {
    const int32_t i0 = m->ni0[t], ni = m->ni0[t + 1] - i0, Q = 4 * Q4;
    if (ni == 0) return;
    const ts_down *dn = m->dn + i0;
    const ts_up *up = m->up + i0;
    const int32_t qo = m->qoff[t];
    /* 1 / F_c(1) of every internal node, computed going down into iv (a few divisions cost
     * less than reading a table of them from memory: one row reads each record once). */
    double *const inv = iv;
    const int32_t zs = m->nslot[t];
    ts_v4 tt[TS_QMAX / 4], w[TS_QMAX / 4];
    ts_v4 *const acct = acc + (size_t)m->base[t] * A4;
    TS_UNROLL
    for (int k = 0; k < Q4; ++k) {
        tt[k] = ts_ld(m->tq + qo + 4 * k);
        w[k] = ts_ld(m->wq + qo + 4 * k);
        P[k] = (ts_v4){1.0, 1.0, 1.0, 1.0};
        P[(size_t)ni * Q4 + k] = P[k] - P[k];
        ts_st(inv + 4 * k, P[k]);
    }
    for (int32_t i = 0; i < (zs + 2) * Q4; ++i) S[i] = (ts_v4){0.0, 0.0, 0.0, 0.0};
    o[0] = 1;
    /* Down: the decisions, o, and P_c = P_parent * F_c(o_c) / F_anc(1) when o_anc = 1, else
     * P_parent * z_c / z_anc (no anc: the root's row, o = 1 and 1 / F = 1). The selections
     * on o are on scalars and pointers: F_c(o_c) / F_anc(1) = (z + (o_c - z) t) / F_anc(1),
     * z_c / z_anc = (r + 0 t) / 1 (row 0 of inv: ones). */
    for (int32_t c = 0; c < ni; ++c) {
        const ts_down *d = dn + c;
        /* LightGBM's decision (see ts_left) on x0 (NaN and |v| <= kZeroThreshold as 0.0)
         * and kind (bit 0: zero or NaN, bit 1: NaN). */
        const int col = d->col, dm = d->dm;
        int lf = (kind[col] & dm & 3) ? (dm >> 2) & 1 : x0[col] <= d->thr;
        if (dm & 8) lf = ts_left(m->nodes + m->inode[i0 + c], x, m->cat);
        left[c] = (uint8_t)lf;
        if (c == 0) continue;
        const int32_t a = d->anc, pa = d->parent;
        const int oa = o[a];
        const int oc = oa & (d->isleft == left[pa]);
        o[c] = oc;
        const double al = d->rz[oa], be = (double)oa * ((double)oc - d->rz[1]);
        const double *ia = inv + ((size_t)a * Q & (size_t)-(int64_t)oa);
        const ts_v4 A = {al, al, al, al}, B = {be, be, be, be};
        const double z = d->rz[1];
        const ts_v4 zv = {z, z, z, z}, one = {1.0, 1.0, 1.0, 1.0};
        const ts_v4 *pp = P + (size_t)pa * Q4;
        ts_v4 *pc = P + (size_t)c * Q4;
        TS_UNROLL
        for (int k = 0; k < Q4; ++k) {
            pc[k] = pp[k] * ((A + B * tt[k]) * ts_ld(ia + 4 * k));
            ts_st(inv + (size_t)c * Q + 4 * k, one / (zv + (one - zv) * tt[k]));
        }
    }
    /* Up, for each internal node c (P_c in P, then T_c):
     * - its leaf children l (o_l = o_ka & the decision, F_l / F_ka = z_l (1 - t) + o_l t
     *   over F_ka(1) when o_ka = 1, else r_l): T_l = v_l P_c F_l / F_ka, and the charges
     *   of their edges, (o_l - z_l) v_l w P_c / F_ka(1) when o_ka = 1, else -r_l v_l w P_c
     *   / (1 - t), summed: (B - A) and -C times w P_c (1 / F_ka(1) or 1 / (1 - t)), with
     *   A = sum v_l z_l, B = sum v_l o_l, C = sum v_l r_l;
     * - T_c = T of the internal children + T of the leaf children, its excluded sum, and
     *   the charge of its own edge (o_c - z_c) sum_q w_q (T_c - S_c) / F_c(o_c):
     *   (1 - z_c) w (T_c - S_c) / F_c(1), or -w (T_c - S_c) / (1 - t). */
    const double *ngt = m->ng + qo;
    for (int32_t c = ni - 1; c >= 0; --c) {
        const ts_up *u = up + c;
        const int ok = o[u->ka];
        const size_t ko = (size_t)u->ka * Q & (size_t)-(int64_t)ok;
        const double *ik = inv + ko;
        const double *gk = (const double *)((uintptr_t)ik & -(uintptr_t)ok) +
                           ((uintptr_t)ngt & ((uintptr_t)ok - 1)) / sizeof(double);
        const double bv = u->v[left[c]], av = u->ca[1], cv = u->ca[0], okd = (double)ok;
        const double al = u->ca[ok], be = okd * (bv - av), ga = be + (1.0 - okd) * cv;
        const ts_v4 A = {al, al, al, al}, B = {be, be, be, be}, G = {ga, ga, ga, ga};
        ts_v4 *pc = P + (size_t)c * Q4, *ak = acct + (size_t)u->cout * A4;
        const ts_v4 *pl = P + (size_t)u->l * Q4, *pr = P + (size_t)u->r * Q4;
        ts_v4 tc[TS_QMAX / 4];
        TS_UNROLL
        for (int k = 0; k < Q4; ++k) {
            const ts_v4 p = pc[k];
            ak[k] += (w[k] * p) * (G * ts_ld(gk + 4 * k));
            tc[k] = pl[k] + pr[k] + p * ((A + B * tt[k]) * ts_ld(ik + 4 * k));
            pc[k] = tc[k];
        }
        if (c == 0) break;
        const int oc = o[c];
        const double s1 = 1.0 - dn[c].rz[1] * (double)oc; /* 1 - z, or 1 */
        const ts_v4 sv = {s1, s1, s1, s1};
        const double *ic = (const double *)((uintptr_t)(inv + (size_t)c * Q) & -(uintptr_t)oc) +
                           ((uintptr_t)ngt & ((uintptr_t)oc - 1)) / sizeof(double);
        ts_v4 *sx = S + (size_t)u->sa * Q4, *ac = acct + (size_t)u->out * A4;
        const ts_v4 *sc = S + (size_t)u->so * Q4;
        TS_UNROLL
        for (int k = 0; k < Q4; ++k) {
            sx[k] += tc[k];
            ac[k] += (tc[k] - sc[k]) * (sv * (w[k] * ts_ld(ic + 4 * k)));
        }
    }
}

/* Ask for tree t's records while the one before it is computed: one row reads every
 * record once, so from memory unless the model was used just before. */
TS_INLINE void ts_prefetch(const ts_model *m, int32_t t) {
    const int32_t i0 = m->ni0[t], ni = m->ni0[t + 1] - i0;
    const char *d = (const char *)(m->dn + i0), *u = (const char *)(m->up + i0);
    const size_t nd = sizeof(ts_down) * (size_t)ni, nu = sizeof(ts_up) * (size_t)ni;
    for (size_t j = 0; j < nd; j += 64) __builtin_prefetch(d + j);
    for (size_t j = 0; j < nu; j += 64) __builtin_prefetch(u + j);
}

TS_INLINE void ts_single(const ts_model *m, int32_t t, const double *x0, const uint8_t *kind,
                         const double *x, ts_v4 *acc, int A4, ts_v4 *P, ts_v4 *S, uint8_t *o,
                         uint8_t *left, double *iv) {
    switch (m->q[t] / 4) {
    case 1: ts_tree_s(m, t, x0, kind, x, acc, A4, P, S, o, left, iv, 1); break;
    case 2: ts_tree_s(m, t, x0, kind, x, acc, A4, P, S, o, left, iv, 2); break;
    case 3: ts_tree_s(m, t, x0, kind, x, acc, A4, P, S, o, left, iv, 3); break;
    default: ts_tree_s(m, t, x0, kind, x, acc, A4, P, S, o, left, iv, m->q[t] / 4); break;
    }
}

/*
 * x: rows of `width` doubles; rows: n indices into x (NULL: rows 0..n-1); out: n rows of
 * nout doubles, overwritten: the bias, plus every tree's charges. Returns 0, or -1 when
 * memory is short.
 */
/* ---- batches: TS_R rows in the lanes of a vector ------------------------------------------
 * The same arithmetic as ts_tree_s on the same records, with the rows in the lanes (one AVX2
 * register) and the points one after the other: what depends on the
 * node and the point is scalar and shared by the 8 rows, what depends on the row (decisions,
 * o, the leaf value picked) is a lane mask, selections are bitwise (exact), and the charges
 * of a node are summed over the points in registers, then added to acc[output] (lanes = rows). */
#define TS_R 4 /* rows in the lanes of a vector (ymm; wider vectors are split badly by GCC) */
typedef double ts_v8 __attribute__((vector_size(8 * TS_R)));
typedef long long ts_m8 __attribute__((vector_size(8 * TS_R)));

TS_INLINE ts_v8 ts_sel8(ts_m8 m, ts_v8 a, ts_v8 b) {
    return (ts_v8)((m & (ts_m8)a) | (~m & (ts_m8)b));
}

TS_INLINE ts_v8 ts_bc(double v) { return (ts_v8){v, v, v, v}; }

TS_INLINE ts_m8 ts_bm(long long v) { return (ts_m8){v, v, v, v}; }

/* Per tree, row-independent (filled once per chunk of blocks): node by node, Q values each,
 * f1 = F_c(1) / F_anc(1), f0 = F_c(0) / F_anc(1), with ik = 1 / F_ka(1): aik = A ik,
 * tik = t ik, wik = w ik, wcg = w C (-1 / (1 - t)), own = (1 - z_c) w / F_c(1); per point
 * wg = -w / (1 - t). */
typedef struct {
    double *f1, *f0, *aik, *tik, *wik, *wcg, *own, *wg;
} ts_tab;

TS_INLINE void ts_fill(const ts_model *m, int32_t t, const ts_tab *tb) {
    const int32_t i0 = m->ni0[t], ni = m->ni0[t + 1] - i0, Q = m->q[t], qo = m->qoff[t];
    const double *tq = m->tq + qo, *wq = m->wq + qo, *ng = m->ng + qo;
    const double *inv = m->iinv + m->iioff[t];
    for (int k = 0; k < Q; ++k) tb->wg[k] = wq[k] * ng[k];
    for (int32_t c = 0; c < ni; ++c) {
        const ts_down *d = m->dn + i0 + c;
        const ts_up *u = m->up + i0 + c;
        const double z = d->rz[1], *ia = inv + (size_t)d->anc * Q, *ik = inv + (size_t)u->ka * Q;
        const double *ic = inv + (size_t)c * Q;
        for (int k = 0; k < Q; ++k) {
            const size_t j = (size_t)c * Q + k;
            tb->f1[j] = (z + (1.0 - z) * tq[k]) * ia[k];
            tb->f0[j] = (z - z * tq[k]) * ia[k];
            tb->aik[j] = u->ca[1] * ik[k];
            tb->tik[j] = tq[k] * ik[k];
            tb->wik[j] = wq[k] * ik[k];
            tb->wcg[j] = wq[k] * (u->ca[0] * ng[k]);
            tb->own[j] = (1.0 - z) * (wq[k] * ic[k]);
        }
    }
}

/* One tree for the TS_R rows of a block: x0t, kt: the block's columns transposed (column j's
 * values at TS_R j), x: the rows (for categorical nodes). */
TS_INLINE void ts_tree8(const ts_model *m, int32_t t, const ts_tab *tb, const double *x0t,
                        const ts_m8 *kt, const double *const *x, ts_v8 *acc, ts_v8 *P,
                        ts_v8 *S, ts_m8 *O, ts_m8 *L, const int Q, const int QR) {
    const int32_t i0 = m->ni0[t], ni = m->ni0[t + 1] - i0;
    if (ni == 0) return;
    const ts_down *dn = m->dn + i0;
    const ts_up *up = m->up + i0;
    const int32_t zs = m->nslot[t];
    ts_v8 *const acct = acc + m->base[t];
    const ts_m8 all = ts_bm(-1);
    TS_UNROLL
    for (int k = 0; k < QR; ++k) {
        P[k] = ts_bc(1.0);
        P[(size_t)ni * Q + k] = S[(size_t)zs * Q + k] = S[(size_t)(zs + 1) * Q + k] = ts_bc(0.0);
    }
    O[0] = all;
    for (int32_t c = 0; c < ni; ++c) {
        const ts_down *d = dn + c;
        const int col = d->col, dm = d->dm;
        ts_v8 v;
        memcpy(&v, x0t + TS_R * (size_t)col, sizeof v);
        const ts_m8 dflt = (kt[col] & ts_bm(dm & 3)) != ts_bm(0);
        ts_m8 lf = (ts_m8)ts_sel8(dflt, (ts_v8)ts_bm(-(long long)((dm >> 2) & 1)),
                                  (ts_v8)(v <= ts_bc(d->thr)));
        if (dm & 8)
            for (int r = 0; r < TS_R; ++r)
                lf[r] = -(long long)ts_left(m->nodes + m->inode[i0 + c], x[r], m->cat);
        L[c] = lf;
        /* The excluded sum of c (if any) starts here: its terms come later, going up. */
        ts_v8 *so = S + (size_t)up[c].so * Q;
        TS_UNROLL
        for (int k = 0; k < QR; ++k) so[k] = ts_bc(0.0);
        if (c == 0) continue;
        const int32_t a = d->anc, pa = d->parent;
        const ts_m8 oa = O[a], oc = oa & (L[pa] ^ ts_bm((long long)d->isleft - 1));
        O[c] = oc;
        const double *f1 = tb->f1 + (size_t)c * Q, *f0 = tb->f0 + (size_t)c * Q;
        const ts_v8 rv = ts_bc(d->rz[0]);
        const ts_v8 *pp = P + (size_t)pa * Q;
        ts_v8 *pc = P + (size_t)c * Q;
        TS_UNROLL
        for (int k = 0; k < QR; ++k)
            pc[k] = pp[k] * ts_sel8(oa, ts_sel8(oc, ts_bc(f1[k]), ts_bc(f0[k])), rv);
    }
    for (int32_t c = ni - 1; c >= 0; --c) {
        const ts_up *u = up + c;
        const ts_m8 ok = O[u->ka];
        const size_t j0 = (size_t)c * Q;
        const double *aik = tb->aik + j0, *tik = tb->tik + j0, *wik = tb->wik + j0,
                     *wcg = tb->wcg + j0;
        const ts_v8 B = ts_sel8(L[c], ts_bc(u->v[1]), ts_bc(u->v[0]));
        const ts_v8 BA = B - ts_bc(u->ca[1]), C = ts_bc(u->ca[0]);
        ts_v8 *pc = P + (size_t)c * Q;
        const ts_v8 *pl = P + (size_t)u->l * Q, *pr = P + (size_t)u->r * Q;
        ts_v8 sum = ts_bc(0.0);
        TS_UNROLL
        for (int k = 0; k < QR; ++k) {
            const ts_v8 p = pc[k];
            const ts_v8 tl = p * ts_sel8(ok, ts_bc(aik[k]) + BA * ts_bc(tik[k]), C);
            sum += p * ts_sel8(ok, BA * ts_bc(wik[k]), ts_bc(wcg[k]));
            pc[k] = pl[k] + pr[k] + tl;
        }
        acct[u->cout] += sum;
        if (c == 0) break;
        const ts_m8 oc = O[c];
        const double *own = tb->own + (size_t)c * Q;
        ts_v8 *sx = S + (size_t)u->sa * Q;
        const ts_v8 *sc = S + (size_t)u->so * Q;
        ts_v8 acc2 = ts_bc(0.0);
        TS_UNROLL
        for (int k = 0; k < QR; ++k) {
            sx[k] += pc[k];
            acc2 += (pc[k] - sc[k]) * ts_sel8(oc, ts_bc(own[k]), ts_bc(tb->wg[k]));
        }
        acct[u->out] += acc2;
    }
}

TS_INLINE void ts_block8(const ts_model *m, int32_t t, const ts_tab *tb, const double *x0t,
                         const ts_m8 *kt, const double *const *x, ts_v8 *acc, ts_v8 *P,
                         ts_v8 *S, ts_m8 *O, ts_m8 *L) {
    /* The points that count (the padding has weight 0): the rows are in the lanes here. */
    const int Q = m->q[t], qr = m->qr[t];
#define TS_Q8(n) case n: ts_tree8(m, t, tb, x0t, kt, x, acc, P, S, O, L, Q, n); break;
    switch (qr) {
    TS_Q8(1) TS_Q8(2) TS_Q8(3) TS_Q8(4) TS_Q8(5) TS_Q8(6) TS_Q8(7) TS_Q8(8)
    default: ts_tree8(m, t, tb, x0t, kt, x, acc, P, S, O, L, Q, qr); break;
    }
#undef TS_Q8
}

/* n >= TS_R rows: chunks of TS_BLOCKS blocks of TS_R rows (the last block padded with copies
 * of the last row), tree after tree within a chunk, so that a tree's records and its table
 * stay in cache. */
#define TS_BLOCKS 16
TS_INLINE int ts_batch8(const ts_model *m, const double *x, int64_t n, const int64_t *rows,
                        double *out) {
    const int32_t nout = m->nout, maxq = m->maxq > 0 ? m->maxq : 4;
    const size_t w = (size_t)m->width, pcells = (size_t)(m->maxni + 1) * maxq,
                 scells = (size_t)(m->maxslot + 2) * maxq, nn = (size_t)m->maxni + 1;
    char *raw = malloc(sizeof(ts_v8) * (pcells + scells + (size_t)nout * TS_BLOCKS +
                                        w * TS_BLOCKS) +
                       sizeof(ts_m8) * (2 * nn + w * TS_BLOCKS) +
                       sizeof(double) * (7 * nn * maxq + maxq) + 64);
    if (!raw) return -1;
    char *al = raw + (64 - (uintptr_t)raw % 64) % 64;
    ts_v8 *P = (ts_v8 *)(void *)al, *S = P + pcells, *acc = S + scells;
    ts_v8 *x0t = acc + (size_t)nout * TS_BLOCKS;
    ts_m8 *kt = (ts_m8 *)(void *)(x0t + w * TS_BLOCKS), *O = kt + w * TS_BLOCKS, *L = O + nn;
    ts_tab tb;
    tb.f1 = (double *)(void *)(L + nn);
    tb.f0 = tb.f1 + nn * maxq; tb.aik = tb.f0 + nn * maxq; tb.tik = tb.aik + nn * maxq;
    tb.wik = tb.tik + nn * maxq; tb.wcg = tb.wik + nn * maxq; tb.own = tb.wcg + nn * maxq;
    tb.wg = tb.own + nn * maxq;
    const double *xs[TS_BLOCKS][TS_R];
    for (int64_t c0 = 0; c0 < n; c0 += TS_R * TS_BLOCKS) {
        const int nb = (int)((n - c0 + TS_R - 1) / TS_R < TS_BLOCKS ? (n - c0 + TS_R - 1) / TS_R
                                                                     : TS_BLOCKS);
        for (int b = 0; b < nb; ++b)
            for (int r = 0; r < TS_R; ++r) {
                const int64_t i = c0 + TS_R * b + r < n ? c0 + TS_R * b + r : n - 1;
                const double *xr = xs[b][r] = x + (rows ? rows[i] : i) * m->width;
                for (size_t j = 0; j < w; ++j) {
                    const double v = xr[j];
                    const int nan = v != v,
                              zero = nan | ((v >= -TS_ZERO_THRESHOLD) & (v <= TS_ZERO_THRESHOLD));
                    x0t[b * w + j][r] = zero ? 0.0 : v;
                    kt[b * w + j][r] = zero | nan << 1;
                }
            }
        for (size_t j = 0; j < (size_t)nout * nb; ++j) acc[j] = ts_bc(0.0);
        for (int32_t t = 0; t < m->ntrees; ++t) {
            ts_fill(m, t, &tb);
            for (int b = 0; b < nb; ++b)
                ts_block8(m, t, &tb, (const double *)(x0t + b * w), kt + b * w, xs[b],
                          acc + (size_t)b * nout, P, S, O, L);
        }
        for (int b = 0; b < nb; ++b) {
            const int64_t i0 = c0 + TS_R * b;
            const int lanes = n - i0 < TS_R ? (int)(n - i0) : TS_R;
            for (int r = 0; r < lanes; ++r)
                for (int32_t j = 0; j < nout; ++j) out[(i0 + r) * nout + j] += acc[(size_t)b * nout + j][r];
        }
    }
    free(raw);
    return 0;
}

/*
 * x: rows of `width` doubles; rows: n indices into x (NULL: rows 0..n-1); out: n rows of
 * nout doubles, overwritten: the bias, plus every tree's charges. Returns 0, or -1 when
 * memory is short. Rows go in chunks of TS_CHUNK, tree after tree within a chunk (a tree's
 * records stay in cache for the chunk), each row with its own lane-wise sums.
 */
#define TS_CHUNK 16
TS_CLONES int ts_contrib(const ts_model *m, const double *x, int64_t n, const int64_t *rows,
                         double *out) {
    if (n <= 0) return 0;
    const int32_t nout = m->nout;
    for (int64_t i = 0; i < n; ++i) memcpy(out + i * nout, m->bias, sizeof(double) * (size_t)nout);
    if (n >= TS_R) return ts_batch8(m, x, n, rows, out);
    const int A4 = (m->maxq > 0 ? m->maxq : 4) / 4;
    const size_t pv = (size_t)(m->maxni + 1) * A4, sv = (size_t)(m->maxslot + 2) * A4,
                 av = (size_t)nout * A4, w = (size_t)m->width, nn = (size_t)m->maxn + 1;
    char *raw = malloc(sizeof(ts_v4) * (2 * pv + sv + av * TS_CHUNK) + 2 * nn +
                       (sizeof(double) + 1) * w * TS_CHUNK + 32);
    if (!raw) return -1;
    char *al = raw + (32 - (uintptr_t)raw % 32) % 32;
    ts_v4 *P = (ts_v4 *)(void *)al, *S = P + pv, *acc = S + sv;
    double *iv = (double *)(void *)(acc + av * TS_CHUNK), *x0 = iv + 4 * pv;
    uint8_t *o = (uint8_t *)(x0 + w * TS_CHUNK), *left = o + nn, *kind = left + nn;
    for (int64_t i0 = 0; i0 < n; i0 += TS_CHUNK) {
        const int rn = n - i0 < TS_CHUNK ? (int)(n - i0) : TS_CHUNK;
        const double *xr[TS_CHUNK];
        for (int r = 0; r < rn; ++r) {
            xr[r] = x + (rows ? rows[i0 + r] : i0 + r) * m->width;
            for (size_t j = 0; j < w; ++j) {
                const double v = xr[r][j];
                const int nan = v != v,
                          zero = nan | ((v >= -TS_ZERO_THRESHOLD) & (v <= TS_ZERO_THRESHOLD));
                x0[r * w + j] = zero ? 0.0 : v;
                kind[r * w + j] = (uint8_t)(zero | nan << 1);
            }
        }
        for (size_t j = 0; j < av * (size_t)rn; ++j) acc[j] = (ts_v4){0.0, 0.0, 0.0, 0.0};
        if (m->ntrees > 0) ts_prefetch(m, 0);
        for (int32_t t = 0; t < m->ntrees; ++t) {
            if (t + 1 < m->ntrees) ts_prefetch(m, t + 1);
            for (int r = 0; r < rn; ++r)
                ts_single(m, t, x0 + r * w, kind + r * w, xr[r], acc + r * av, A4, P, S, o, left,
                          iv);
        }
        for (int r = 0; r < rn; ++r) {
            double *ph = out + (i0 + r) * nout;
            const ts_v4 *ar = acc + r * av;
            for (int32_t j = 0; j < nout; ++j) {
                ts_v4 s = ar[(size_t)j * A4];
                for (int k = 1; k < A4; ++k) s += ar[(size_t)j * A4 + k];
                ph[j] += (s[0] + s[1]) + (s[2] + s[3]);
            }
        }
    }
    free(raw);
    return 0;
}
