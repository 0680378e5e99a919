// Runs in: the front (and the lookup, check-config and makemap commands).

package bdb

import (
	"bytes"
	"fmt"
)

// charKey is the string whose hash the meta page records, so that a file
// built with another hash function is recognised. libdb hashes it with
// its C string terminator.
const charKey = "%$sniglet^&\x00"

// hashFunc is Berkeley DB's default hash since 2.x (__ham_func5): FNV-1
// with a zero offset basis.
func hashFunc(key []byte) uint32 {
	var h uint32
	for _, c := range key {
		h *= 16777619
		h ^= uint32(c)
	}
	return h
}

// bucketPage is the first page of bucket b: buckets are allocated in
// doublings, and spares[i] is where doubling i starts, less the buckets
// before it.
func (d *db) bucketPage(b uint32) (uint32, error) {
	i := 0
	for limit := uint64(1); limit < uint64(b)+1; limit <<= 1 {
		i++
	}
	if i >= numSpares {
		return 0, fmt.Errorf("%w: bucket %d", ErrCorrupt, b)
	}
	return b + d.spares[i], nil
}

// hashItem returns item i of a hash page: its type and its bytes after the
// type byte. Items are stored from the end of the page down in index
// order, so item i ends where item i-1 starts.
func (d *db) hashItem(p page, i int) (byte, []byte, error) {
	start, err := d.index(p, i)
	if err != nil {
		return 0, nil, err
	}
	end := uint64(len(p.b))
	if i > 0 {
		if end, err = d.index(p, i-1); err != nil {
			return 0, nil, err
		}
	}
	if start >= end {
		return 0, nil, fmt.Errorf("%w: page %d item %d is empty or overlaps the next", ErrCorrupt, p.pgno, i)
	}
	return p.b[start], p.b[start+1 : end], nil
}

// hashBytes resolves an item to its contents: on the page, or on overflow
// pages for a big item.
func (d *db) hashBytes(p page, i int) ([]byte, error) {
	typ, b, err := d.hashItem(p, i)
	if err != nil {
		return nil, err
	}
	switch typ {
	case hKeyData:
		return b, nil
	case hOffPage:
		pgno, tlen, err := d.hashOffPage(p, i, b)
		if err != nil {
			return nil, err
		}
		return d.overflow(pgno, tlen)
	case hDuplicate, hOffDup:
		return nil, fmt.Errorf("%w: duplicate data items (postmap never writes them)", ErrUnsupported)
	}
	return nil, fmt.Errorf("%w: page %d item %d has type %d", ErrCorrupt, p.pgno, i, typ)
}

// hashOffPage decodes an H_OFFPAGE item (after its type byte: 3 bytes of
// padding, the first overflow page, the total length).
func (d *db) hashOffPage(p page, i int, b []byte) (pgno, tlen uint32, err error) {
	if len(b) < 11 {
		return 0, 0, fmt.Errorf("%w: page %d item %d: short overflow reference", ErrCorrupt, p.pgno, i)
	}
	return d.u32(b, 3), d.u32(b, 7), nil
}

// hashKeyCmp compares key with key item i of p, as bytes.Compare(key,
// item) does, reading an overflow key only when it must.
func (d *db) hashKeyCmp(p page, i int, key []byte) (int, error) {
	typ, b, err := d.hashItem(p, i)
	if err != nil {
		return 0, err
	}
	switch typ {
	case hKeyData:
		return bytes.Compare(key, b), nil
	case hOffPage:
		pgno, tlen, err := d.hashOffPage(p, i, b)
		if err != nil {
			return 0, err
		}
		big, err := d.overflow(pgno, tlen)
		return bytes.Compare(key, big), err
	}
	return 0, fmt.Errorf("%w: page %d key item %d has type %d", ErrCorrupt, p.pgno, i, typ)
}

// pageFind returns the index of key's item on p, or -1. Berkeley DB 4.6
// and later keep hash pages (P_HASH) sorted by bytes.Compare order, which
// hashEach checks, so they are searched by halves; older unsorted pages
// one item after another.
func (d *db) pageFind(p page, key []byte) (int, error) {
	n := int(p.entries) / 2
	if p.typ == pHashUnsorted {
		for j := range n {
			c, err := d.hashKeyCmp(p, 2*j, key)
			if err != nil || c == 0 {
				return 2 * j, err
			}
		}
		return -1, nil
	}
	lo, hi := 0, n-1
	for lo <= hi {
		mid := int(uint(lo+hi) >> 1)
		c, err := d.hashKeyCmp(p, 2*mid, key)
		switch {
		case err != nil:
			return 0, err
		case c == 0:
			return 2 * mid, nil
		case c > 0:
			lo = mid + 1
		default:
			hi = mid - 1
		}
	}
	return -1, nil
}

// bucketHead returns the first page of bucket b, or 0 for an empty bucket.
// libdb allocates bucket pages a doubling at a time but writes a page only
// when a key lands in it, so an empty bucket's page may be all zeros (a
// hole in the file) or lie past the file's end.
func (d *db) bucketHead(b uint32) (uint32, error) {
	pgno, err := d.bucketPage(b)
	if err != nil {
		return 0, err
	}
	if pgno == 0 || pgno > d.last {
		return 0, fmt.Errorf("%w: bucket %d at page %d of %d", ErrCorrupt, b, pgno, d.last)
	}
	if pgno >= d.npages {
		return 0, nil
	}
	off := uint64(pgno) * uint64(d.psize)
	if d.u32(d.data, off+8) == 0 && d.data[off+25] == 0 && d.u16(d.data, off+20) == 0 {
		return 0, nil // page number 0, type P_INVALID, no entries: never written
	}
	return pgno, nil
}

func (d *db) hashPage(pgno uint32) (page, error) {
	p, err := d.page(pgno)
	if err != nil {
		return p, err
	}
	if p.typ != pHash && p.typ != pHashUnsorted {
		return p, fmt.Errorf("%w: page %d in a bucket chain has type %d", ErrCorrupt, pgno, p.typ)
	}
	if p.entries%2 != 0 {
		return p, fmt.Errorf("%w: hash page %d has an odd number of items", ErrCorrupt, pgno)
	}
	return p, nil
}

func (d *db) hashGet(key []byte) ([]byte, bool, error) {
	b := hashFunc(key) & d.highMask
	if b > d.maxBucket {
		b &= d.lowMask
	}
	pgno, err := d.bucketHead(b)
	if err != nil {
		return nil, false, err
	}
	for hops := uint32(0); pgno != 0; hops++ {
		if hops >= d.npages {
			return nil, false, fmt.Errorf("%w: bucket %d chain loops", ErrCorrupt, b)
		}
		p, err := d.hashPage(pgno)
		if err != nil {
			return nil, false, err
		}
		i, err := d.pageFind(p, key)
		if err != nil {
			return nil, false, err
		}
		if i >= 0 {
			v, err := d.hashBytes(p, i+1)
			return v, err == nil, err
		}
		pgno = p.next
	}
	return nil, false, nil
}

// hashEach walks every bucket chain and checks that every key sits in the
// bucket its hash selects, once, and that sorted pages are sorted, so that
// a lookup finds whatever a walk shows.
func (d *db) hashEach(fn func(key, value []byte) error) error {
	seen := newVisited(d.npages)
	keys := map[string]struct{}{} // of one bucket: a lookup finds only the first of a duplicate
	for b := uint32(0); b <= d.maxBucket; b++ {
		pgno, err := d.bucketHead(b)
		if err != nil {
			return err
		}
		clear(keys)
		for pgno != 0 {
			p, err := d.hashPage(pgno)
			if err != nil {
				return err
			}
			if err := seen.mark(pgno); err != nil {
				return err
			}
			var prev []byte
			for i := 0; i < int(p.entries); i += 2 {
				k, err := d.hashBytes(p, i)
				if err != nil {
					return err
				}
				if p.typ == pHash && i > 0 && bytes.Compare(prev, k) >= 0 {
					return fmt.Errorf("%w: hash page %d: key %q out of order", ErrCorrupt, pgno, k)
				}
				prev = k
				v, err := d.hashBytes(p, i+1)
				if err != nil {
					return err
				}
				kb := hashFunc(k) & d.highMask
				if kb > d.maxBucket {
					kb &= d.lowMask
				}
				if kb != b {
					return fmt.Errorf("%w: key %q is in bucket %d, its hash says %d", ErrCorrupt, k, b, kb)
				}
				if _, dup := keys[string(k)]; dup {
					return fmt.Errorf("%w: key %q stored twice", ErrCorrupt, k)
				}
				keys[string(k)] = struct{}{}
				if err := fn(k, v); err != nil {
					return err
				}
			}
			pgno = p.next
		}
	}
	return nil
}
