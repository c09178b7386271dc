/*
 * Where ibuf storage comes from.  Each thread keeps the boxes it freed,
 * sorted by size class, and hands them out again: a steady stream of
 * messages then costs no malloc at all, and large messages do not make
 * the allocator return pages to the kernel only to fault them back in
 * for the next one.  The cache is per thread so no lock is needed; a
 * buffer freed on another thread than the one that made it simply joins
 * that thread's cache.  Storage is wiped before it is cached (ibuf_free
 * does that), so a recycled box holds nothing of the last message.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "imsg-private.h"

/* Classes of inline capacity: powers of two from 64 bytes to 64 KiB. */
#define CLASS_MIN_SHIFT		6
#define CLASS_MAX_SHIFT		16
#define NCLASSES		(CLASS_MAX_SHIFT - CLASS_MIN_SHIFT + 1)
/*
 * Storage kept per class: one read can turn 64 KiB into 4096 messages,
 * all freed before the next read, so a class keeps up to 256 KiB (at
 * least 4 boxes).  Large boxes (above 64 KiB): up to 8, and 8 MiB.
 */
#define CLASS_KEEP_BYTES	(256 * 1024)
#define CLASS_KEEP_MIN		4
#define LARGE_KEEP		8
#define LARGE_KEEP_BYTES	(8 * 1024 * 1024)

#if defined(__STDC_VERSION__) && __STDC_VERSION__ >= 201112L
#define THREAD_LOCAL	_Thread_local
#else
#define THREAD_LOCAL	__thread
#endif

/* Message blocks kept for the next reader that needs one. */
#define MBLOCK_KEEP		3

struct box_cache {
	struct ibuf_box	*free[NCLASSES];	/* linked through ib.buf */
	unsigned int	 nfree[NCLASSES];
	struct ibuf_box	*large[LARGE_KEEP];
	struct mblock	*blocks[MBLOCK_KEEP];
	/*
	 * Messages freed on this thread out of pblk and not yet subtracted
	 * from its refs: consecutive frees from one block cost one atomic
	 * step in all, not one each.  Until they are subtracted the block
	 * looks in use, so it can neither start over nor go away.
	 */
	struct mblock	*pblk;
	int32_t		 pfree;
	int		 registered;	/* -1: emptied at thread exit */
};

/*
 * Initial-exec avoids a __tls_get_addr call per access; glibc keeps
 * static TLS to spare for small libraries loaded with dlopen.
 */
#if defined(__GLIBC__) && defined(__GNUC__)
static THREAD_LOCAL struct box_cache cache
    __attribute__((tls_model("initial-exec")));
#else
static THREAD_LOCAL struct box_cache cache;
#endif
static pthread_key_t cache_key;
static pthread_once_t cache_once = PTHREAD_ONCE_INIT;
static int cache_key_ok;

static void	mblock_recycle(struct mblock *);

/*
 * A thread's frees are counted with their block when it frees from
 * another block, when the reader looks at the block, when a queue it
 * pops runs dry, after PENDING_MAX of them, and when the thread exits.
 * A worker that takes messages from a reader's thread thus hands their
 * block back in time for the reader to start it over.
 */
#define PENDING_MAX		1024

/*
 * Count n messages of blk as freed (n < 0: retiring adds the carved
 * ones); the last step to 0 hands the block back.
 */
static void
mblock_drop(struct mblock *blk, int32_t n)
{
	if (__atomic_sub_fetch(&blk->refs, n, __ATOMIC_ACQ_REL) == 0)
		mblock_recycle(blk);
}

/* Subtract the frees this thread owes the block it freed from last. */
static void
pending_flush(void)
{
	struct mblock *blk = cache.pblk;
	int32_t n = cache.pfree;

	cache.pblk = NULL;
	cache.pfree = 0;
	if (blk != NULL)
		mblock_drop(blk, n);
}

static void
cache_drain(void *arg)
{
	struct box_cache *c = arg;
	struct ibuf_box *box;
	int i;

	/* Before anything is freed: the flush may hand in one more block. */
	pending_flush();

	for (i = 0; i < NCLASSES; i++) {
		while ((box = c->free[i]) != NULL) {
			c->free[i] = (struct ibuf_box *)(void *)box->ib.buf;
			free(box);
		}
		c->nfree[i] = 0;
	}
	for (i = 0; i < LARGE_KEEP; i++) {
		free(c->large[i]);
		c->large[i] = NULL;
	}
	for (i = 0; i < MBLOCK_KEEP; i++) {
		free(c->blocks[i]);
		c->blocks[i] = NULL;
	}
	/*
	 * Destructors of other keys may still free buffers on this thread;
	 * nobody would empty the cache again, so it takes nothing more.
	 */
	c->registered = -1;
}

static void
cache_key_init(void)
{
	cache_key_ok = pthread_key_create(&cache_key, cache_drain) == 0;
}

/*
 * The first cached box of a thread arranges for the cache to be emptied
 * when the thread exits.  Without that key the cache is not used at all.
 */
static int
cache_usable(void)
{
	if (cache.registered != 0)
		return cache.registered > 0;
	pthread_once(&cache_once, cache_key_init);
	if (!cache_key_ok || pthread_setspecific(cache_key, &cache) != 0)
		return 0;
	cache.registered = 1;
	return 1;
}

/* Class index for len bytes of inline storage, or -1 if it is large. */
static int
size_class(size_t len)
{
	unsigned int bits;

	if (len > ((size_t)1 << CLASS_MAX_SHIFT))
		return -1;
	if (len <= ((size_t)1 << CLASS_MIN_SHIFT))
		return 0;
	/* Bits needed for len - 1 give the smallest power of two >= len. */
	bits = (unsigned int)(sizeof(unsigned long) * 8) -
	    (unsigned int)__builtin_clzl((unsigned long)(len - 1));
	return (int)bits - CLASS_MIN_SHIFT;
}

static struct ibuf_box *
cache_take(size_t len, size_t *icap)
{
	struct ibuf_box *box;
	int c, i;

	if ((c = size_class(len)) >= 0) {
		*icap = (size_t)1 << (CLASS_MIN_SHIFT + c);
		if ((box = cache.free[c]) == NULL)
			return NULL;
		cache.free[c] = (struct ibuf_box *)(void *)box->ib.buf;
		cache.nfree[c]--;
		return box;
	}
	*icap = len;
	/* A large box is reused if it wastes at most half of itself. */
	for (i = 0; i < LARGE_KEEP; i++) {
		box = cache.large[i];
		if (box != NULL && box->icap >= len && box->icap / 2 <= len) {
			cache.large[i] = NULL;
			*icap = box->icap;
			return box;
		}
	}
	return NULL;
}

static int
cache_put(struct ibuf_box *box)
{
	size_t held;
	int c, i;

	if (box->icap == 0 || !cache_usable())
		return 0;
	if ((c = size_class(box->icap)) >= 0) {
		if (cache.nfree[c] >= CLASS_KEEP_MIN &&
		    (size_t)cache.nfree[c] * box->icap >= CLASS_KEEP_BYTES)
			return 0;
		box->ib.buf = (unsigned char *)cache.free[c];
		cache.free[c] = box;
		cache.nfree[c]++;
		return 1;
	}
	held = box->icap;
	for (i = 0; i < LARGE_KEEP; i++)
		if (cache.large[i] != NULL)
			held += cache.large[i]->icap;
	if (held > LARGE_KEEP_BYTES)
		return 0;
	for (i = 0; i < LARGE_KEEP; i++) {
		if (cache.large[i] == NULL) {
			cache.large[i] = box;
			return 1;
		}
	}
	return 0;
}

/*
 * Allocate an ibuf whose storage holds len bytes, growing to max.  The
 * storage is NOT zeroed: the public constructors zero it, the library's
 * own users (imsg_create, the reader) overwrite it at once.
 */
struct ibuf *
libimsg__ibuf_alloc(size_t len, size_t max)
{
	struct ibuf_box *box = NULL;
	size_t icap = 0;

	if (len > 0 && (box = cache_take(len, &icap)) == NULL) {
		if (icap > SIZE_MAX - sizeof(*box)) {
			errno = ENOMEM;
			return NULL;
		}
		box = malloc(sizeof(*box) + icap);
	} else if (len == 0)
		box = malloc(sizeof(*box));
	if (box == NULL)
		return NULL;
	return ibuf_box_init(box, 0, NULL, len > 0 ? ibuf_box_inline(box) :
	    NULL, icap, len, max);
}

/* Give back the box of b, whose storage has been wiped and released. */
void
libimsg__ibuf_release(struct ibuf *b)
{
	struct ibuf_box *box = ibuf_box(b);
	struct mblock *blk;

	if (box->flags & IBUF_BOX_BLOCK) {
		blk = box->blk;
		if (cache.pblk == blk) {
			if (++cache.pfree >= PENDING_MAX)
				pending_flush();
			return;
		}
		/* Without the thread-exit flush, nothing may be owed. */
		if (!cache_usable()) {
			mblock_drop(blk, 1);
			return;
		}
		pending_flush();
		cache.pblk = blk;
		cache.pfree = 1;
		return;
	}
	if (!cache_put(box))
		free(box);
}

/* A block with nothing carved, from the cache if there is one. */
struct mblock *
libimsg__mblock_new(void)
{
	struct mblock *blk = NULL;
	int i;

	for (i = 0; i < MBLOCK_KEEP && blk == NULL; i++) {
		blk = cache.blocks[i];
		cache.blocks[i] = NULL;
	}
	if (blk == NULL && (blk = malloc(sizeof(*blk) + MBLOCK_SIZE)) == NULL)
		return NULL;
	blk->refs = 0;
	blk->carved = 0;
	blk->used = 0;
	blk->size = MBLOCK_SIZE;
	return blk;
}

/* No message of blk is left: keep it for the next reader, or free it. */
static void
mblock_recycle(struct mblock *blk)
{
	int i;

	if (cache_usable()) {
		for (i = 0; i < MBLOCK_KEEP; i++) {
			if (cache.blocks[i] == NULL) {
				cache.blocks[i] = blk;
				return;
			}
		}
	}
	free(blk);
}

/* Count this thread's frees with their block now. */
void
libimsg__mblock_settle(void)
{
	pending_flush();
}

/* The reader carves no more from blk; it goes once its messages have. */
void
libimsg__mblock_retire(struct mblock *blk)
{
	if (blk == NULL)
		return;
	if (cache.pblk == blk)
		pending_flush();
	mblock_drop(blk, -(int32_t)blk->carved);
}

/*
 * Start blk over if every message carved from it is gone but the last
 * mine, which the caller has not handed out and will carve again.  Only
 * the reader that carves from blk may call this.
 */
int
libimsg__mblock_restart(struct mblock *blk, uint32_t mine)
{
	if (cache.pblk == blk)
		pending_flush();
	if (__atomic_load_n(&blk->refs, __ATOMIC_ACQUIRE) !=
	    -(int32_t)(blk->carved - mine))
		return 0;
	blk->refs = 0;
	blk->carved = 0;
	blk->used = 0;
	return 1;
}

/*
 * Carve a fixed-size ibuf for len bytes out of *blkp, moving on to a
 * fresh block when this one is full.  The storage is not initialised.
 */
struct ibuf *
libimsg__mblock_carve(struct mblock **blkp, size_t len)
{
	struct mblock *blk = *blkp;
	struct ibuf_box *box;
	size_t need;

	need = sizeof(*box) + ((len + 15) & ~(size_t)15);
	if (blk != NULL && blk->size - blk->used < need &&
	    !libimsg__mblock_restart(blk, 0)) {
		libimsg__mblock_retire(blk);
		*blkp = blk = NULL;
	}
	if (blk == NULL) {
		if ((blk = libimsg__mblock_new()) == NULL)
			return NULL;
		*blkp = blk;
	}
	box = (struct ibuf_box *)(void *)(mblock_data(blk) + blk->used);
	blk->used += need;
	blk->carved++;
	return ibuf_box_init(box, IBUF_BOX_BLOCK, blk, len > 0 ?
	    ibuf_box_inline(box) : NULL, len, len, len);
}
