/*
 * tierwise tree walker: every tree of every model of a scoring context, evaluated in one
 * native call per batch, with LightGBM's own prediction semantics.
 *
 * Built at first use by app/engine/native.py with the system C compiler (no Python C-API),
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
 *
 * Batches: QuickScorer over the ranked rows (Lucchese et al., SIGIR 2015, and its vectorised
 * form). Leaves are numbered left to right (the leaf values are stored in that order, and a
 * leaf node's threshold field holds that number). For a tree with L <= 64 leaves, every
 * internal node n has a mask: 0 bits for the leaves of its LEFT subtree, 1 bits elsewhere. A
 * row starts with the bitvector bv = all ones and does bv &= mask for every node whose test
 * is false (b[col] > thr: the row goes right); its exit leaf is then the lowest set bit of
 * bv, for any binary tree. No walk and no branch on the data: every internal node of the
 * tree is tested once, for TW_R rows at a time (one vector compare of TW_R 16-bit entries:
 * the ranked rows of a group of TW_R rows are interleaved, entry e of lane k at
 * b[e * TW_R + k]); bitvectors are 32 bits for trees with <= 32 leaves, 64 bits for <= 64.
 * Trees with more leaves are walked as above, TW_LANES rows in lock-step. The last leaf is in
 * no left subtree, so tw_new refuses any mask with a 0 bit at L-1 or above: bit L-1 of bv
 * always stays set and the exit leaf is at most L-1, whatever the arrays hold.
 *
 * Single rows with AVX-512: the same QuickScorer for one row, 32 nodes of a tree at a time
 * (16-bit lanes), with no gather (slow on AMD Zen 4): consecutive trees of a part are grouped
 * so that a group compares at most 64 * TW_SQ_PAIRS distinct entries; per row, a group's
 * entries are copied into a local row held in registers as 32-entry tables, and a node's
 * rank is a two-table permute (vpermt2w) by its local index. "Goes right" for the tree's
 * nodes is then one compare into a mask register R (32 or 64 bits), and instead of ANDing
 * masks, each leaf l keeps E[l], the nodes whose left subtree holds it: the exit leaf is the
 * first l with R & E[l] == 0 (one broadcast and vptestnm over 16 or 8 leaves a vector, then
 * tzcnt). Leaf values land in per-tree slots and are summed per column, in tree order, at
 * the end. Trees over 64 leaves are walked first (lock-step, as above). The arrays are built
 * in tw_new from the validated QuickScorer ones (~0.7 MB for the default models). Without
 * AVX-512 single rows walk, TW_K trees in lock-step.
 *
 * The vector kernels are written with intrinsics for AVX-512 (F, BW, VL, CD) and AVX2 in
 * functions with their own target attribute, and chosen at run time (tw_cpu_isa), so one
 * shared object built with plain -O2 runs on any x86-64 and uses what the CPU has. Without
 * them (another architecture, a CPU without AVX2, or built with -DTW_PORTABLE) a batch walks
 * every tree as the single-row fallback does, TW_LANES rows in lock-step.
 */
#define _POSIX_C_SOURCE 200112L /* posix_memalign */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define TW_ABI 11
#define TW_BIG 65535u

#ifndef TW_K
#define TW_K 8 /* trees walked in lock-step for one row */
#endif
/* Rows walked in lock-step through one tree by the old walk. Nodes store their entry already
 * multiplied by TW_LANES, so in a row-major ranked row (single rows: entry e at
 * b[e * TW_LANES]) a node reads b[col]. */
#define TW_LANES 8
#ifndef TW_R
#define TW_R 16 /* rows of a QuickScorer group (batches): one vector of 16-bit entries */
#endif
#ifndef TW_SQ_PAIRS
#define TW_SQ_PAIRS 2 /* single rows: a group's local row has at most 64 * TW_SQ_PAIRS entries */
#endif
#if TW_SQ_PAIRS < 1 || TW_SQ_PAIRS > 4
#error "TW_SQ_PAIRS must be 1..4: local indices are 8 bits"
#endif
#ifndef TW_BLOCK
#define TW_BLOCK 128 /* rows ranked at a time in a batch (a multiple of TW_R) */
#endif
#if TW_R % TW_LANES != 0 || TW_BLOCK % TW_R != 0
#error "TW_R must be a multiple of TW_LANES and TW_BLOCK of TW_R"
#endif
#define TW_RSHIFT (TW_R == 8 ? 0 : TW_R == 16 ? 1 : TW_R == 32 ? 2 : 3) /* TW_R / TW_LANES */

/* LightGBM's kZeroThreshold is the float literal 1e-35f: 1.0000000180025095e-35 as a double. */
#define TW_ZERO_THRESHOLD ((double)1e-35f)

typedef struct {
    uint16_t thr;  /* index of the threshold in its column's sorted list (0 for categorical);
                      a leaf: its number in the tree, left to right */
    uint16_t col;  /* entry of the ranked row, times TW_LANES */
    int16_t rm1;   /* bytes from the left child (the next node) to the right child; leaf: -6 */
} tw_node;

/* QuickScorer nodes: the internal nodes of a tree with <= 32 leaves (q32) or <= 64 (q64). */
typedef struct {
    uint16_t thr;  /* as in tw_node */
    uint16_t col;  /* entry of the ranked row (not multiplied) */
    uint32_t mask; /* 0 for the leaves of the node's left subtree, 1 elsewhere */
} tw_q32;

typedef struct {
    uint64_t mask;
    uint16_t thr, col;
    uint32_t unused;
} tw_q64;

typedef struct {
    int32_t feat;   /* input column */
    uint32_t off;   /* first word in the bitset array */
    uint32_t words; /* bitset length in 32-bit words */
} tw_catcol;

typedef struct {
    int32_t nfeat, ncols, ntrees, nnodes, nleaves, ncatcols, width, nq32, nq64, isa;
    tw_node *nodes;
    double *leaf;     /* leaf values, tree after tree, each tree's left to right */
    double *thr;      /* sorted thresholds, column after column */
    int32_t *thr_off; /* per input column: first threshold; thr_off[nfeat] = total */
    uint32_t *cat;    /* categorical bitsets */
    tw_catcol *catcols;
    int32_t *root;    /* per tree: node index of its root */
    int32_t *leaf0;   /* per tree: index of its leaf 0 in `leaf` */
    int32_t *col;     /* per tree: output column */
    int32_t *depth;   /* per tree: depth of its deepest leaf */
    tw_q32 *q32;
    tw_q64 *q64;
    int32_t *qkind;   /* per tree: 32 (its nodes in q32), 64 (in q64) or 0 (walked) */
    int32_t *qoff;    /* per tree: its first node in q32 or q64 */
    int32_t *qn;      /* per tree: its internal nodes */
    int32_t *nleaf;   /* per tree: its leaves */
    /* Single rows with AVX-512 (see "single rows" below). Trees with <= 64 leaves form
     * groups of consecutive trees of one part that compare at most TW_SQ_PAIRS * 64 distinct
     * entries; a group's entries are copied into a local row, and its trees' internal nodes
     * are stored in chunks of 32 slots (padding: local index 0, threshold BIG, never right). */
    uint8_t *sidx;         /* per slot: the node's entry in its group's local row */
    uint16_t *sthr;        /* per slot: the node's threshold index */
    uint32_t *s32e;        /* per leaf of a tree with <= 32 leaves (32 a tree): the nodes */
    uint64_t *s64e;        /* whose left subtree holds it (bit i: slot i); 33..64: 64 a tree */
    int32_t *soff;         /* per tree: its first slot */
    int32_t *moff;         /* per tree: its first leaf in s32e or s64e */
    int32_t *gt;           /* per group: first tree; gt[ngroups] = ntrees */
    int32_t *gent;         /* per group: first entry of its list in `ents` */
    uint16_t *ents;        /* per group: the ranked-row entries of its local row */
    int32_t *walked;       /* trees walked by single rows too (qkind 0), in tree order */
    int32_t *corder;       /* the trees column by column, each column's in tree order */
    int32_t *cstart;       /* per output column: its first tree in corder; [ncols]: ntrees */
    int32_t nwalked, nslots, ngroups;
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
    free(m->q32); free(m->q64); free(m->qkind); free(m->qoff); free(m->qn); free(m->nleaf);
    free(m->sidx); free(m->sthr); free(m->s32e); free(m->s64e); free(m->soff); free(m->moff);
    free(m->gt); free(m->gent); free(m->ents); free(m->walked);
    free(m->corder); free(m->cstart);
    free(m);
}

/* Every index stays inside its array, and every walk moves forward to a leaf of its own tree:
 * a bad model can never make tw_predict read astray or loop. */
static int tw_valid(const tw_model *m, int32_t ncat) {
    if (m->nfeat < 1 || m->ncols < 0 || m->nnodes < 0 || m->ntrees < 0 || m->ncatcols < 0 ||
        m->nleaves < 0 || m->width > 65535 || m->nq32 < 0 || m->nq64 < 0)
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
        /* QuickScorer: nodes inside their array and the ranked row, exit leaf <= nleaf - 1
         * (no mask clears bit nleaf - 1 or above) and inside the tree's leaves. */
        const int32_t kind = m->qkind[t], q0 = m->qoff[t], qn = m->qn[t], nl = m->nleaf[t];
        if (kind != 0) {
            if ((kind != 32 && kind != 64) || nl < 1 || nl > kind || nl > lend - m->leaf0[t] ||
                q0 < 0 || qn < 0 || (int64_t)q0 + qn > (kind == 32 ? m->nq32 : m->nq64))
                return 0;
            for (int32_t i = q0; i < q0 + qn; ++i) {
                const uint32_t col = kind == 32 ? m->q32[i].col : m->q64[i].col;
                const uint64_t lm = kind == 32 ? (uint32_t)~m->q32[i].mask : ~m->q64[i].mask;
                if ((int32_t)col >= m->width || (lm >> (nl - 1)) != 0) return 0;
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
    for (int32_t p = 0; p < m->nparts; ++p) /* a part's trees add to its own columns only */
        for (int32_t t = m->part_t[p][0]; t < m->part_t[p][1]; ++t)
            if (m->col[t] < m->part_c[p][0] || m->col[t] >= m->part_c[p][1]) return 0;
    return 1;
}

/* The best batch kernel this CPU runs: 2 AVX-512 (F, BW, VL, CD), 1 AVX2, 0 none (walks). */
static int tw_cpu_isa(void) {
#if defined(__x86_64__) && defined(__GNUC__) && !defined(TW_PORTABLE)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512cd"))
        return 2;
    if (__builtin_cpu_supports("avx2")) return 1;
#endif
    return 0;
}

/* 64-byte aligned (vector loads), rounded up to whole 64 bytes and one more; free() frees it. */
static void *alloc64(size_t bytes) {
    void *p = NULL;
    return posix_memalign(&p, 64, (bytes + 63) / 64 * 64 + 64) == 0 ? p : NULL;
}

static void *calloc64(size_t bytes) {
    void *p = alloc64(bytes);
    if (p) memset(p, 0, (bytes + 63) / 64 * 64 + 64);
    return p;
}

/* The single-row QuickScorer arrays (tw_model.sidx...), from the validated q32/q64 ones. */
static int single_arrays(tw_model *m) {
    const int32_t nt = m->ntrees, cap = 64 * TW_SQ_PAIRS;
    int64_t nslots = 0, n32 = 0, n64 = 0;
    for (int32_t t = 0; t < nt; ++t) {
        const int64_t slots = m->qkind[t]; /* 32 or 64 slots (qn < qkind), 0: walked */
        nslots += slots;
        n32 += m->qkind[t] == 32 ? slots : 0;
        n64 += m->qkind[t] == 64 ? slots : 0;
    }
    if (nslots > INT32_MAX) return 0;
    int32_t *local = malloc(sizeof(int32_t) * (size_t)m->width);  /* entry -> local index */
    int32_t *ingroup = calloc((size_t)m->width, sizeof(int32_t)); /* entry -> its group + 1 */
    int32_t *seen = calloc((size_t)m->width, sizeof(int32_t));    /* entry -> tree + 1 */
    m->sidx = alloc64(sizeof(uint8_t) * (size_t)nslots);
    m->sthr = alloc64(sizeof(uint16_t) * (size_t)nslots);
    m->s32e = calloc64(sizeof(uint32_t) * (size_t)n32);
    m->s64e = calloc64(sizeof(uint64_t) * (size_t)n64);
    m->soff = malloc(sizeof(int32_t) * (size_t)nt + 1);
    m->moff = malloc(sizeof(int32_t) * (size_t)nt + 1);
    m->gt = malloc(sizeof(int32_t) * ((size_t)nt + 1));
    m->gent = malloc(sizeof(int32_t) * ((size_t)nt + 1));
    m->ents = malloc(sizeof(uint16_t) * ((size_t)m->nq32 + (size_t)m->nq64 + 1));
    m->walked = malloc(sizeof(int32_t) * (size_t)nt + 1);
    m->corder = malloc(sizeof(int32_t) * (size_t)nt + 1);
    m->cstart = calloc((size_t)m->ncols + 1, sizeof(int32_t));
    if (!m->corder || !m->cstart || !local || !ingroup || !seen || !m->sidx || !m->sthr || !m->s32e || !m->s64e || !m->soff ||
        !m->moff || !m->gt || !m->gent || !m->ents || !m->walked) {
        free(local); free(ingroup); free(seen);
        return 0;
    }
    /* Consecutive trees join the current group while its distinct entries stay within cap
     * (a tree has at most 63 internal nodes, so it always fits a group of its own); a part's
     * first tree starts a group. */
    int32_t ng = 0, nw = 0, nents = 0, used = cap + 1;
    nslots = n32 = n64 = 0;
    for (int32_t t = 0; t < nt; ++t) {
        const int32_t kind = m->qkind[t], q0 = m->qoff[t], qn = m->qn[t];
        int fresh = 0, first = 0;
        for (int32_t p = 0; p < m->nparts; ++p) first |= m->part_t[p][0] == t;
        for (int32_t i = 0; i < qn; ++i) { /* entries new to the group, each counted once */
            const uint16_t e = kind == 32 ? m->q32[q0 + i].col : m->q64[q0 + i].col;
            if (ingroup[e] != ng && seen[e] != t + 1) { seen[e] = t + 1; ++fresh; }
        }
        if (first || used + fresh > cap) {
            m->gt[ng] = t;
            m->gent[ng] = nents;
            used = 0;
            ++ng;
        }
        m->soff[t] = (int32_t)nslots;
        m->moff[t] = (int32_t)(kind == 64 ? n64 : n32);
        if (kind == 0) {
            m->walked[nw++] = t;
            continue;
        }
        const int32_t slots = kind; /* qn < kind: one chunk of 32 nodes, or two */
        for (int32_t i = 0; i < slots; ++i) {
            uint8_t idx = 0;
            uint16_t thr = TW_BIG; /* padding: never goes right */
            if (i < qn) {
                const uint16_t e = kind == 32 ? m->q32[q0 + i].col : m->q64[q0 + i].col;
                const uint64_t mask = kind == 32 ? m->q32[q0 + i].mask : m->q64[q0 + i].mask;
                if (ingroup[e] != ng) { /* not yet in the group's local row */
                    ingroup[e] = ng;
                    local[e] = used++;
                    m->ents[nents++] = e;
                }
                idx = (uint8_t)local[e];
                thr = kind == 32 ? m->q32[q0 + i].thr : m->q64[q0 + i].thr;
                for (int32_t l = 0; l < kind; ++l) {
                    if ((mask >> l) & 1u) continue; /* leaf l is in node i's left subtree */
                    if (kind == 32) m->s32e[n32 + l] |= (uint32_t)1 << i;
                    else m->s64e[n64 + l] |= (uint64_t)1 << i;
                }
            }
            m->sidx[nslots + i] = idx;
            m->sthr[nslots + i] = thr;
        }
        nslots += slots;
        if (kind == 32) n32 += slots;
        else n64 += slots;
    }
    m->gt[ng] = nt;
    m->gent[ng] = nents;
    m->ngroups = ng; m->nwalked = nw; m->nslots = (int32_t)nslots;
    for (int32_t t = 0; t < nt; ++t) ++m->cstart[m->col[t] + 1]; /* counting sort by column */
    for (int32_t c = 0; c < m->ncols; ++c) m->cstart[c + 1] += m->cstart[c];
    for (int32_t t = 0; t < nt; ++t) m->corder[m->cstart[m->col[t]]++] = t;
    for (int32_t c = m->ncols; c > 0; --c) m->cstart[c] = m->cstart[c - 1];
    m->cstart[0] = 0;
    free(local); free(ingroup); free(seen);
    return 1;
}

/* Copies every array, so the caller's buffers may go away after the call. */
tw_model *tw_new(int32_t nfeat, int32_t ncols, int32_t nnodes, const tw_node *nodes,
                 int32_t nleaves, const double *leaf, const double *thr, const int32_t *thr_off,
                 int32_t ncat, const uint32_t *cat, int32_t ncatcols, const tw_catcol *catcols,
                 int32_t ntrees, const int32_t *root, const int32_t *leaf0, const int32_t *col,
                 const int32_t *depth, int32_t nparts, const int32_t *part_t,
                 const int32_t *part_c, int32_t nq32, const tw_q32 *q32, int32_t nq64,
                 const tw_q64 *q64, const int32_t *qkind, const int32_t *qoff,
                 const int32_t *qn, const int32_t *nleaf) {
    if (nparts < 0 || nparts > 32 || nfeat < 1 || ncatcols < 0 || nq32 < 0 || nq64 < 0 ||
        ((int64_t)4 * nfeat + ncatcols + 1) * TW_LANES > 65535)
        return NULL;
    tw_model *m = calloc(1, sizeof(tw_model));
    if (!m) return NULL;
    m->nfeat = nfeat; m->ncols = ncols; m->ntrees = ntrees; m->nnodes = nnodes;
    m->nleaves = nleaves; m->ncatcols = ncatcols; m->width = 4 * nfeat + ncatcols + 1;
    m->nparts = nparts; m->nq32 = nq32; m->nq64 = nq64; m->isa = tw_cpu_isa();
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
    m->q32 = dup(q32, sizeof(tw_q32) * (size_t)nq32);
    m->q64 = dup(q64, sizeof(tw_q64) * (size_t)nq64);
    m->qkind = dup(qkind, sizeof(int32_t) * (size_t)ntrees);
    m->qoff = dup(qoff, sizeof(int32_t) * (size_t)ntrees);
    m->qn = dup(qn, sizeof(int32_t) * (size_t)ntrees);
    m->nleaf = dup(nleaf, sizeof(int32_t) * (size_t)ntrees);
    for (int i = 0; i < nparts; ++i) {
        m->part_t[i][0] = part_t[2 * i]; m->part_t[i][1] = part_t[2 * i + 1];
        m->part_c[i][0] = part_c[2 * i]; m->part_c[i][1] = part_c[2 * i + 1];
    }
    if (!m->nodes || !m->leaf || !m->thr_off || !m->thr || !m->cat || !m->catcols || !m->root ||
        !m->leaf0 || !m->col || !m->depth || !m->q32 || !m->q64 || !m->qkind || !m->qoff ||
        !m->qn || !m->nleaf || !tw_valid(m, ncat) || (m->isa == 2 && !single_arrays(m))) {
        tw_free(m);
        return NULL;
    }
    return m;
}

/* The batch kernel in use (see tw_cpu_isa). */
int tw_isa(const tw_model *m) { return m->isa; }

/* For tests: use batch kernel `isa` (at most what the CPU runs); returns the one in use.
 * Not to be called while another thread predicts with the same model. */
int tw_set_isa(tw_model *m, int32_t isa) {
    if (isa >= 0 && isa <= tw_cpu_isa()) m->isa = isa;
    return m->isa;
}

/* Number of thresholds t[0..n) below v (v not NaN): a binary search without branches on the
 * data (the halving is a conditional move), so new rows cost no mispredictions. */
static inline uint32_t rank(const double *t, uint32_t n, double v) {
    if (n == 0) return 0;
    const double *base = t;
    while (n > 1) {
        const uint32_t half = n >> 1;
        base = base[half] < v ? base + half : base;
        n -= half;
    }
    return (uint32_t)(base - t) + (*base < v);
}

/* The ranked row (see the top of this file) of one input row x, entry e at b[e * stride]. */
static void expand(const tw_model *m, const double *x, uint16_t *b, size_t stride) {
    const int32_t nf = m->nfeat;
#define TW_B(e) b[(size_t)(e) * stride]
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

/* One step: to the left child when b[col << s] <= thr, else to the right one; a leaf stays.
 * p: a byte pointer to the current node; s: log2 of the ranked rows' interleave / TW_LANES. */
#define TW_STEP(p, b, s, moved)                                                \
    do {                                                                       \
        const tw_node *n_ = (const tw_node *)(p);                              \
        const intptr_t right_ = (b)[(size_t)n_->col << (s)] > n_->thr;         \
        const intptr_t rel_ = (intptr_t)sizeof(tw_node) + (n_->rm1 & -right_); \
        (p) += rel_; /* no branch */                                           \
        (moved) |= rel_;                                                       \
    } while (0)

#define TW_NODE(p) ((const tw_node *)(p))

/* A walk to the leaf, branching on each test (remainders). */
static inline int32_t walk(const tw_node *nodes, int32_t i, const uint16_t *b, int s) {
    const tw_node *n = nodes + i;
    while (n->rm1 != -(int16_t)sizeof(tw_node)) {
        n = b[(size_t)n->col << s] <= n->thr ? n + 1
                                             : (const tw_node *)((const char *)(n + 1) + n->rm1);
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
            for (int k = 0; k < TW_K; ++k) TW_STEP(p[k], b, 0, moved);
            if (!moved) break; /* every walk stands on its leaf */
        }
        for (int k = 0; k < TW_K; ++k) out[col[t + k]] += m->leaf[leaf0[t + k] + TW_NODE(p[k])->thr];
    }
    for (; t < t1; ++t) out[col[t]] += m->leaf[leaf0[t] + walk(nodes, root[t], b, 0)];
}

/* ---- batches ---------------------------------------------------------------------------- */

/* A block's sums: acc[c * TW_BLOCK + r] for output column c and row r of the block (rows of
 * one column contiguous, so a group's TW_R sums are one vector). They start at 0.0 and take
 * the leaf values in tree order, as out[] would; the padding rows' sums are thrown away. */

/* A tree with more than 64 leaves (or every tree when no vector kernel runs) for the nb rows
 * of a block: TW_LANES rows walk in lock-step (the interleave is TW_R, so node entries are
 * scaled by TW_R / TW_LANES). */
static void walk_block(const tw_model *m, int32_t t, const uint16_t *buf, int64_t nb,
                       double *acc) {
    const size_t tile = (size_t)m->width * TW_R;
    const int32_t root = m->root[t], depth = m->depth[t];
    const double *leaf = m->leaf + m->leaf0[t];
    const tw_node *nodes = m->nodes;
    double *a = acc + (size_t)m->col[t] * TW_BLOCK;
    int64_t r = 0;
    for (; r + TW_LANES <= nb; r += TW_LANES) {
        const char *p[TW_LANES];
        const uint16_t *bb = buf + (size_t)(r / TW_R) * tile + r % TW_R;
#pragma GCC unroll 16
        for (int k = 0; k < TW_LANES; ++k) p[k] = (const char *)(nodes + root);
        for (int32_t d = 0; d < depth; ++d) {
            intptr_t moved = 0;
#pragma GCC unroll 16
            for (int k = 0; k < TW_LANES; ++k) TW_STEP(p[k], bb + k, TW_RSHIFT, moved);
            if (!moved) break;
        }
        for (int k = 0; k < TW_LANES; ++k) a[r + k] += leaf[TW_NODE(p[k])->thr];
    }
    for (; r < nb; ++r)
        a[r] += leaf[walk(nodes, root, buf + (size_t)(r / TW_R) * tile + r % TW_R, TW_RSHIFT)];
}

/* Trees t0..t1 for the nb rows of a block, ranked in groups of TW_R interleaved rows (the
 * last group padded with copies of a real row). group32/group64: one tree with <= 32 / 64
 * leaves for one group, adding each row's exit leaf value to its sum. */
#define TW_BLOCK_TREES(name, group32, group64)                                                \
    static void name(const tw_model *m, int32_t t0, int32_t t1, const uint16_t *buf,         \
                     int64_t nb, double *acc) {                                               \
        const size_t tile = (size_t)m->width * TW_R; /* ranked rows of one group */           \
        const int64_t ng = (nb + TW_R - 1) / TW_R;                                            \
        for (int32_t t = t0; t < t1; ++t) {                                                   \
            const int32_t kind = m->qkind[t], qn = m->qn[t];                                  \
            const double *leaf = m->leaf + m->leaf0[t];                                       \
            double *a = acc + (size_t)m->col[t] * TW_BLOCK;                                   \
            if (kind == 32) {                                                                 \
                for (int64_t g = 0; g < ng; ++g)                                              \
                    group32(m->q32 + m->qoff[t], qn, buf + (size_t)g * tile, leaf,            \
                            a + g * TW_R);                                                    \
            } else if (kind == 64) {                                                          \
                for (int64_t g = 0; g < ng; ++g)                                              \
                    group64(m->q64 + m->qoff[t], qn, buf + (size_t)g * tile, leaf,            \
                            a + g * TW_R);                                                    \
            } else {                                                                          \
                walk_block(m, t, buf, nb, acc);                                               \
            }                                                                                 \
        }                                                                                     \
    }

/* Every tree walked (no vector kernel: not x86-64, or no AVX2). */
static void block_trees_walk(const tw_model *m, int32_t t0, int32_t t1, const uint16_t *buf,
                             int64_t nb, double *acc) {
    for (int32_t t = t0; t < t1; ++t) walk_block(m, t, buf, nb, acc);
}

#if defined(__x86_64__) && defined(__GNUC__) && !defined(TW_PORTABLE)
#include <immintrin.h>
#define TW_INLINE static inline __attribute__((always_inline))
#define TW_AVX2 __attribute__((target("avx2,bmi")))
#define TW_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512cd,avx2,bmi")))

/* AVX2: "goes left" is max(v, thr) == thr (there is no unsigned 16-bit compare), widened by
 * sign extension, and bv &= left | mask; the exit leaves are added one row at a time. */
TW_AVX2 TW_INLINE void group32_avx2(const tw_q32 *q, int32_t qn, const uint16_t *b,
                                    const double *leaf, double *a) {
    __m256i bv[TW_R / 8];
    for (int h = 0; h < TW_R / 8; ++h) bv[h] = _mm256_set1_epi32(-1);
    for (int32_t i = 0; i < qn; ++i) {
        const __m256i *e = (const __m256i *)(b + (size_t)q[i].col * TW_R);
        const __m256i thr = _mm256_set1_epi16((short)q[i].thr);
        const __m256i mask = _mm256_set1_epi32((int)q[i].mask);
        for (int h = 0; h < TW_R / 16; ++h) {
            const __m256i v = _mm256_load_si256(e + h);
            const __m256i left = _mm256_cmpeq_epi16(_mm256_max_epu16(v, thr), thr);
            const __m256i l0 = _mm256_cvtepi16_epi32(_mm256_castsi256_si128(left));
            const __m256i l1 = _mm256_cvtepi16_epi32(_mm256_extracti128_si256(left, 1));
            bv[2 * h] = _mm256_and_si256(bv[2 * h], _mm256_or_si256(l0, mask));
            bv[2 * h + 1] = _mm256_and_si256(bv[2 * h + 1], _mm256_or_si256(l1, mask));
        }
    }
    uint32_t w[TW_R];
    for (int h = 0; h < TW_R / 8; ++h) _mm256_storeu_si256((__m256i *)w + h, bv[h]);
    for (int k = 0; k < TW_R; ++k) a[k] += leaf[__builtin_ctz(w[k])];
}

TW_AVX2 TW_INLINE void group64_avx2(const tw_q64 *q, int32_t qn, const uint16_t *b,
                                    const double *leaf, double *a) {
    __m256i bv[TW_R / 4];
    for (int h = 0; h < TW_R / 4; ++h) bv[h] = _mm256_set1_epi32(-1);
    for (int32_t i = 0; i < qn; ++i) {
        const __m256i *e = (const __m256i *)(b + (size_t)q[i].col * TW_R);
        const __m256i thr = _mm256_set1_epi16((short)q[i].thr);
        const __m256i mask = _mm256_set1_epi64x((long long)q[i].mask);
        for (int h = 0; h < TW_R / 16; ++h) {
            const __m256i v = _mm256_load_si256(e + h);
            const __m256i left = _mm256_cmpeq_epi16(_mm256_max_epu16(v, thr), thr);
            const __m128i lo = _mm256_castsi256_si128(left);
            const __m128i hi = _mm256_extracti128_si256(left, 1);
            const __m256i l[4] = {_mm256_cvtepi16_epi64(lo),
                                  _mm256_cvtepi16_epi64(_mm_srli_si128(lo, 8)),
                                  _mm256_cvtepi16_epi64(hi),
                                  _mm256_cvtepi16_epi64(_mm_srli_si128(hi, 8))};
            for (int j = 0; j < 4; ++j)
                bv[4 * h + j] = _mm256_and_si256(bv[4 * h + j], _mm256_or_si256(l[j], mask));
        }
    }
    uint64_t w[TW_R];
    for (int h = 0; h < TW_R / 4; ++h) _mm256_storeu_si256((__m256i *)w + h, bv[h]);
    for (int k = 0; k < TW_R; ++k) a[k] += leaf[__builtin_ctzll(w[k])];
}

/* AVX-512: an unsigned compare into a mask register ("goes right"), then bv &= mask only in
 * those lanes: three instructions a node for 16 rows. Exit leaf = 31 (63) - lzcnt(bv & -bv),
 * its value gathered, 8 rows an instruction. */
TW_AVX512 TW_INLINE void add_leaves_avx512(__m256i idx0, __m256i idx1, const double *leaf,
                                           double *a) {
    const __m512d l0 = _mm512_i32gather_pd(idx0, leaf, 8);
    const __m512d l1 = _mm512_i32gather_pd(idx1, leaf, 8);
    _mm512_storeu_pd(a, _mm512_add_pd(_mm512_loadu_pd(a), l0));
    _mm512_storeu_pd(a + 8, _mm512_add_pd(_mm512_loadu_pd(a + 8), l1));
}

TW_AVX512 TW_INLINE void group32_avx512(const tw_q32 *q, int32_t qn, const uint16_t *b,
                                        const double *leaf, double *a) {
    const __m512i ones = _mm512_set1_epi32(-1);
    __m512i bv[TW_R / 16];
    for (int h = 0; h < TW_R / 16; ++h) bv[h] = ones;
    for (int32_t i = 0; i < qn; ++i) {
        const __m256i *e = (const __m256i *)(b + (size_t)q[i].col * TW_R);
        const __m256i thr = _mm256_set1_epi16((short)q[i].thr);
        const __m512i mask = _mm512_set1_epi32((int)q[i].mask);
        for (int h = 0; h < TW_R / 16; ++h) {
            const __mmask16 right = _mm256_cmpgt_epu16_mask(_mm256_load_si256(e + h), thr);
            bv[h] = _mm512_and_si512(bv[h], _mm512_mask_mov_epi32(ones, right, mask));
        }
    }
    for (int h = 0; h < TW_R / 16; ++h) {
        const __m512i low = _mm512_and_si512(bv[h], _mm512_sub_epi32(_mm512_setzero_si512(), bv[h]));
        const __m512i idx = _mm512_sub_epi32(_mm512_set1_epi32(31), _mm512_lzcnt_epi32(low));
        add_leaves_avx512(_mm512_castsi512_si256(idx), _mm512_extracti64x4_epi64(idx, 1), leaf,
                          a + 16 * h);
    }
}

TW_AVX512 TW_INLINE void group64_avx512(const tw_q64 *q, int32_t qn, const uint16_t *b,
                                        const double *leaf, double *a) {
    const __m512i ones = _mm512_set1_epi32(-1);
    __m512i bv[TW_R / 8];
    for (int h = 0; h < TW_R / 8; ++h) bv[h] = ones;
    for (int32_t i = 0; i < qn; ++i) {
        const __m256i *e = (const __m256i *)(b + (size_t)q[i].col * TW_R);
        const __m256i thr = _mm256_set1_epi16((short)q[i].thr);
        const __m512i mask = _mm512_set1_epi64((long long)q[i].mask);
        for (int h = 0; h < TW_R / 16; ++h) {
            const __mmask16 right = _mm256_cmpgt_epu16_mask(_mm256_load_si256(e + h), thr);
            bv[2 * h] = _mm512_and_si512(bv[2 * h], _mm512_mask_mov_epi64(ones, (__mmask8)right,
                                                                          mask));
            bv[2 * h + 1] = _mm512_and_si512(
                bv[2 * h + 1], _mm512_mask_mov_epi64(ones, (__mmask8)(right >> 8), mask));
        }
    }
    for (int h = 0; h < TW_R / 8; ++h) {
        const __m512i low = _mm512_and_si512(bv[h], _mm512_sub_epi64(_mm512_setzero_si512(), bv[h]));
        const __m512i idx = _mm512_sub_epi64(_mm512_set1_epi64(63), _mm512_lzcnt_epi64(low));
        _mm512_storeu_pd(a + 8 * h, _mm512_add_pd(_mm512_loadu_pd(a + 8 * h),
                                                  _mm512_i64gather_pd(idx, leaf, 8)));
    }
}

/* ---- single rows: QuickScorer over one ranked row with AVX-512 ----------------------------
 * A group's local row (at most 64 * TW_SQ_PAIRS entries) stays in registers as pairs of
 * 32-entry tables; a chunk of 32 nodes looks up its 32 ranks with one two-table permute per
 * pair (vpermt2w; the pair is picked by bits 6 and up of the local index), then one unsigned
 * 16-bit compare gives "goes right" for the 32 nodes in a mask register, and those lanes AND
 * in their node's leaf mask. The tree's bitvector is the AND of the lanes, its exit leaf the
 * lowest set bit. No gather: they are slow on some CPUs (~25 cycles each on AMD Zen 4). */
TW_AVX512 TW_INLINE __m512i idx_avx512(const uint8_t *idx) { /* 32 local indices */
    return _mm512_cvtepu8_epi16(_mm256_load_si256((const __m256i *)(const void *)idx));
}

TW_AVX512 TW_INLINE __m512i lookup_avx512(__m512i idx, const __m512i *tab, int pairs) {
    __m512i r = _mm512_permutex2var_epi16(tab[0], idx, tab[1]);
    if (pairs > 1) {
        const __m512i hi = _mm512_srli_epi16(idx, 6);
        for (int p = 1; p < pairs; ++p)
            r = _mm512_mask_mov_epi16(r, _mm512_cmpeq_epi16_mask(hi, _mm512_set1_epi16((short)p)),
                                      _mm512_permutex2var_epi16(tab[2 * p], idx, tab[2 * p + 1]));
    }
    return r;
}

TW_AVX512 TW_INLINE void single_group_avx512(const tw_model *m, int32_t t0, int32_t t1,
                                             const uint16_t *loc, int pairs, double *vals,
                                             uint64_t *right) {
    __m512i tab[2 * TW_SQ_PAIRS];
    for (int p = 0; p < 2 * pairs; ++p) tab[p] = _mm512_load_si512(loc + 32 * p);
    const int32_t *restrict qkind = m->qkind, *restrict soff = m->soff, *restrict moff = m->moff;
    const int32_t *restrict leaf0 = m->leaf0;
    const uint8_t *restrict sidx = m->sidx;
    const uint16_t *restrict sthr = m->sthr;
    const uint32_t *restrict s32e = m->s32e;
    const uint64_t *restrict s64e = m->s64e;
    const double *restrict leaf = m->leaf;
    /* First every tree's "goes right" bits (short chains, so many trees are under way at
     * once), then every tree's exit leaf from them. */
    for (int32_t t = t0; t < t1; ++t) {
        const uint8_t *idx = sidx + soff[t];
        const uint16_t *thr = sthr + soff[t];
        const int32_t kind = qkind[t];
        if (kind == 32) {
            const __m512i r = lookup_avx512(idx_avx512(idx), tab, pairs);
            right[t] = _mm512_cmpgt_epu16_mask(r, _mm512_load_si512(thr));
        } else if (kind == 64) {
            const __m512i r0 = lookup_avx512(idx_avx512(idx), tab, pairs);
            const __m512i r1 = lookup_avx512(idx_avx512(idx + 32), tab, pairs);
            right[t] = (uint64_t)_mm512_cmpgt_epu16_mask(r1, _mm512_load_si512(thr + 32)) << 32 |
                            _mm512_cmpgt_epu16_mask(r0, _mm512_load_si512(thr));
        }
    }
    for (int32_t t = t0; t < t1; ++t) {
        const int32_t kind = qkind[t];
        if (kind == 32) {
            const uint32_t *e = s32e + moff[t];
            const __m512i rv = _mm512_set1_epi32((int)right[t]);
            const __mmask32 alive = _mm512_kunpackw(
                _mm512_testn_epi32_mask(rv, _mm512_load_si512(e + 16)),
                _mm512_testn_epi32_mask(rv, _mm512_load_si512(e)));
            vals[t] = leaf[leaf0[t] + __builtin_ctz(alive)];
        } else if (kind == 64) {
            const uint64_t *e = s64e + moff[t];
            const __m512i rv = _mm512_set1_epi64((long long)right[t]);
            __mmask16 a[4];
            for (int j = 0; j < 4; ++j)
                a[j] = _mm512_kunpackb(_mm512_testn_epi64_mask(rv, _mm512_load_si512(e + 16 * j + 8)),
                                       _mm512_testn_epi64_mask(rv, _mm512_load_si512(e + 16 * j)));
            const __mmask64 alive = _mm512_kunpackd(_mm512_kunpackw(a[3], a[2]),
                                                    _mm512_kunpackw(a[1], a[0]));
            vals[t] = leaf[leaf0[t] + __builtin_ctzll(alive)];
        }
    }
}

/* Trees t0..t1 (a part) for one compact ranked row b16: group by group, each group's local
 * row copied into loc first (64 * TW_SQ_PAIRS entries, 64-byte aligned). */
TW_AVX512 static void single_trees_avx512(const tw_model *m, int32_t t0, int32_t t1,
                                          const uint16_t *b16, uint16_t *loc, double *vals,
                                          uint64_t *right) {
    for (int32_t g = 0; g < m->ngroups; ++g) {
        const int32_t a = m->gt[g] > t0 ? m->gt[g] : t0;
        const int32_t b = m->gt[g + 1] < t1 ? m->gt[g + 1] : t1;
        if (a >= b) continue;
        const uint16_t *e = m->ents + m->gent[g];
        const int32_t n = m->gent[g + 1] - m->gent[g];
        for (int32_t i = 0; i < n; ++i) loc[i] = b16[e[i]];
        switch ((n + 63) >> 6) { /* constant pairs: the tables stay in registers */
        case 0:
        case 1: single_group_avx512(m, a, b, loc, 1, vals, right); break;
#if TW_SQ_PAIRS >= 2
        case 2: single_group_avx512(m, a, b, loc, 2, vals, right); break;
#endif
#if TW_SQ_PAIRS >= 3
        case 3: single_group_avx512(m, a, b, loc, 3, vals, right); break;
#endif
#if TW_SQ_PAIRS >= 4
        case 4: single_group_avx512(m, a, b, loc, 4, vals, right); break;
#endif
        default: single_group_avx512(m, a, b, loc, TW_SQ_PAIRS, vals, right); break;
        }
    }
}
#define TW_HAVE_SINGLE 1

TW_AVX2 TW_BLOCK_TREES(block_trees_avx2, group32_avx2, group64_avx2)
TW_AVX512 TW_BLOCK_TREES(block_trees_avx512, group32_avx512, group64_avx512)
#define TW_KERNEL(isa) \
    ((isa) == 2 ? block_trees_avx512 : (isa) == 1 ? block_trees_avx2 : block_trees_walk)
#else
#define TW_KERNEL(isa) block_trees_walk
#endif

#ifdef TW_HAVE_SINGLE
/* Trees list[0..n) (walked ones, in tree order) for one ranked row b (stride TW_LANES), TW_K
 * in lock-step: vals[t] = the exit leaf's value of tree t. */
static void walk_list(const tw_model *m, const int32_t *list, int32_t n, const uint16_t *b,
                      double *vals) {
    const tw_node *nodes = m->nodes;
    int32_t i = 0;
    for (; i + TW_K <= n; i += TW_K) {
        const char *p[TW_K];
        int32_t deepest = 0;
#pragma GCC unroll 16
        for (int k = 0; k < TW_K; ++k) {
            p[k] = (const char *)(nodes + m->root[list[i + k]]);
            deepest = m->depth[list[i + k]] > deepest ? m->depth[list[i + k]] : deepest;
        }
        for (int32_t d = 0; d < deepest; ++d) {
            intptr_t moved = 0;
#pragma GCC unroll 16
            for (int k = 0; k < TW_K; ++k) TW_STEP(p[k], b, 0, moved);
            if (!moved) break;
        }
        for (int k = 0; k < TW_K; ++k)
            vals[list[i + k]] = m->leaf[m->leaf0[list[i + k]] + TW_NODE(p[k])->thr];
    }
    for (; i < n; ++i)
        vals[list[i]] = m->leaf[m->leaf0[list[i]] + walk(nodes, m->root[list[i]], b, 0)];
}

/* Columns c0..c1 of one row from the trees' leaf values: each column's sum from 0.0 in tree
 * order (trees t0..t1 only), as GBDT::PredictRaw adds them, in a register. */
static void sum_columns(const tw_model *m, int32_t c0, int32_t c1, int32_t t0, int32_t t1,
                        const double *vals, double *o) {
    for (int32_t c = c0; c < c1; ++c) {
        double s = 0.0;
        for (int32_t j = m->cstart[c]; j < m->cstart[c + 1]; ++j) {
            const int32_t t = m->corder[j];
            if (t >= t0 && t < t1) s += vals[t];
        }
        o[c] = s;
    }
}

/* Few rows, one at a time, with the AVX-512 single-row QuickScorer (trees over 64 leaves
 * walked first, their values added in tree order with the others). */
static int predict_few_avx512(const tw_model *m, const double *x, int64_t n, double *out,
                              uint32_t part_mask) {
    const int32_t nf = m->nfeat, nc = m->ncols, width = m->width;
    const size_t lbytes = sizeof(uint16_t) * 64 * TW_SQ_PAIRS;
    const size_t vbytes = (sizeof(double) + sizeof(uint64_t)) * (size_t)m->ntrees;
    const size_t bbytes = (sizeof(uint16_t) * (size_t)width + 63) / 64 * 64;
    char *raw = alloc64(lbytes + vbytes + bbytes +
                        (m->nwalked ? sizeof(uint16_t) * (size_t)width * TW_LANES : 0));
    if (!raw) return -1;
    uint16_t *loc = (uint16_t *)(void *)raw;                 /* a group's local row */
    double *vals = (double *)(void *)(raw + lbytes);         /* every tree's leaf value */
    uint64_t *right = (uint64_t *)(void *)(vals + m->ntrees); /* its nodes going right */
    uint16_t *b16 = (uint16_t *)(void *)(raw + lbytes + vbytes); /* the compact ranked row */
    uint16_t *b8 = (uint16_t *)(void *)(raw + lbytes + vbytes + bbytes); /* for walks */
    memset(loc, 0, lbytes); /* lanes past a group's entries are read, never used */
    for (int64_t r = 0; r < n; ++r) {
        double *o = out + r * nc;
        expand(m, x + r * nf, b16, 1);
        if (m->nwalked) expand(m, x + r * nf, b8, TW_LANES);
        for (int32_t p = 0; p < m->nparts; ++p) {
            if (!((part_mask >> p) & 1u)) continue;
            const int32_t t0 = m->part_t[p][0], t1 = m->part_t[p][1];
            if (m->nwalked) {
                int32_t i0 = 0, i1;
                while (i0 < m->nwalked && m->walked[i0] < t0) ++i0;
                for (i1 = i0; i1 < m->nwalked && m->walked[i1] < t1;) ++i1;
                walk_list(m, m->walked + i0, i1 - i0, b8, vals);
            }
            single_trees_avx512(m, t0, t1, b16, loc, vals, right);
            sum_columns(m, m->part_c[p][0], m->part_c[p][1], t0, t1, vals, o);
        }
    }
    free(raw);
    return 0;
}
#endif

/*
 * x: n rows of nfeat doubles (row-major, contiguous); out: n rows of ncols doubles.
 * part_mask: bit i asks for part i; the columns of the parts not asked for are not written.
 * Returns 0, or -1 when memory is short.
 */
int tw_predict(const tw_model *m, const double *x, int64_t n, double *out, uint32_t part_mask) {
    const int32_t nf = m->nfeat, nc = m->ncols;
    if (n <= 0) return 0;
#ifdef TW_HAVE_SINGLE
    if (n < TW_LANES && m->isa == 2) return predict_few_avx512(m, x, n, out, part_mask);
#endif
    if (n < TW_LANES) {
        /* Few rows (one customer): each row through every tree, trees in lock-step. */
        uint16_t *buf = malloc(sizeof(uint16_t) * (size_t)m->width * TW_LANES);
        if (!buf) return -1;
        for (int64_t r = 0; r < n; ++r) {
            double *o = out + r * nc;
            expand(m, x + r * nf, buf, TW_LANES);
            for (int32_t p = 0; p < m->nparts; ++p) {
                if (!((part_mask >> p) & 1u)) continue;
                for (int32_t c = m->part_c[p][0]; c < m->part_c[p][1]; ++c) o[c] = 0.0;
                walk_trees(m, m->part_t[p][0], m->part_t[p][1], buf, o);
            }
        }
        free(buf);
        return 0;
    }
    /* Batches: a block of rows is ranked into groups of TW_R interleaved rows (the last group
     * padded with copies of the block's last row), then each tree takes every row of the
     * block while its nodes are hot, adding to the block's sums (acc, see above). */
    const size_t tile = (size_t)m->width * TW_R;
    const int64_t rows = n < TW_BLOCK ? n : TW_BLOCK;
    const size_t bytes = sizeof(uint16_t) * tile * (size_t)((rows + TW_R - 1) / TW_R);
    char *raw = malloc(bytes + sizeof(double) * (size_t)nc * TW_BLOCK + 64);
    if (!raw) return -1;
    uint16_t *buf = (uint16_t *)(raw + (64 - (uintptr_t)raw % 64)); /* 64-byte aligned */
    double *acc = (double *)((char *)buf + bytes);
    void (*const kernel)(const tw_model *, int32_t, int32_t, const uint16_t *, int64_t,
                         double *) = TW_KERNEL(m->isa);
    for (int64_t r0 = 0; r0 < n; r0 += TW_BLOCK) {
        const int64_t nb = (n - r0 < TW_BLOCK) ? n - r0 : TW_BLOCK;
        const int64_t padded = (nb + TW_R - 1) / TW_R * TW_R;
        for (int64_t r = 0; r < padded; ++r)
            expand(m, x + (r0 + (r < nb ? r : nb - 1)) * nf,
                   buf + (size_t)(r / TW_R) * tile + r % TW_R, TW_R);
        double *o = out + r0 * nc;
        for (int32_t p = 0; p < m->nparts; ++p) {
            if (!((part_mask >> p) & 1u)) continue;
            const int32_t c0 = m->part_c[p][0], c1 = m->part_c[p][1];
            for (int32_t c = c0; c < c1; ++c)
                for (int64_t r = 0; r < padded; ++r) acc[(size_t)c * TW_BLOCK + r] = 0.0;
            kernel(m, m->part_t[p][0], m->part_t[p][1], buf, nb, acc);
            for (int64_t r = 0; r < nb; ++r)
                for (int32_t c = c0; c < c1; ++c) o[r * nc + c] = acc[(size_t)c * TW_BLOCK + r];
        }
    }
    free(raw);
    return 0;
}
