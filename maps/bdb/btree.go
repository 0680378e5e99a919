// Runs in: the front (and the lookup, check-config and makemap commands).

package bdb

import (
	"bytes"
	"fmt"
)

// A btree is internal pages of (key, child page) items whose first key is
// ignored, over leaf pages of key/data item pairs, both sorted by the
// default comparison (bytes.Compare: postmap sets no other). Levels count
// up from 1 at the leaves, so each step down must lower the level by one:
// that bounds every descent by 255 pages.

// btreeInternal returns internal item i: its child page and its key.
func (d *db) btreeInternal(p page, i int) (uint32, []byte, error) {
	off, err := d.index(p, i)
	if err != nil {
		return 0, nil, err
	}
	if off+12 > uint64(len(p.b)) {
		return 0, nil, fmt.Errorf("%w: page %d item %d: short internal item", ErrCorrupt, p.pgno, i)
	}
	n, typ, child := uint64(d.u16(p.b, off)), p.b[off+2]&^bDelete, d.u32(p.b, off+4)
	data := off + 12
	if data+n > uint64(len(p.b)) {
		return 0, nil, fmt.Errorf("%w: page %d item %d: %d-byte key past the page end", ErrCorrupt, p.pgno, i, n)
	}
	if i == 0 {
		return child, nil, nil // never compared
	}
	switch typ {
	case bKeyData:
		return child, p.b[data : data+n], nil
	case bOverflow:
		if n < 12 {
			return 0, nil, fmt.Errorf("%w: page %d item %d: short overflow reference", ErrCorrupt, p.pgno, i)
		}
		key, err := d.overflow(d.u32(p.b, data+4), d.u32(p.b, data+8))
		return child, key, err
	}
	return 0, nil, fmt.Errorf("%w: page %d internal item %d has type %d", ErrCorrupt, p.pgno, i, typ)
}

// btreeLeafItem returns leaf item i: its bytes and whether it is marked
// deleted.
func (d *db) btreeLeafItem(p page, i int) ([]byte, bool, error) {
	off, err := d.index(p, i)
	if err != nil {
		return nil, false, err
	}
	if off+3 > uint64(len(p.b)) {
		return nil, false, fmt.Errorf("%w: page %d item %d: short item", ErrCorrupt, p.pgno, i)
	}
	typ := p.b[off+2]
	deleted := typ&bDelete != 0
	switch typ &^ bDelete {
	case bKeyData:
		n := uint64(d.u16(p.b, off))
		if off+3+n > uint64(len(p.b)) {
			return nil, false, fmt.Errorf("%w: page %d item %d: %d bytes past the page end", ErrCorrupt, p.pgno, i, n)
		}
		return p.b[off+3 : off+3+n], deleted, nil
	case bOverflow:
		if off+12 > uint64(len(p.b)) {
			return nil, false, fmt.Errorf("%w: page %d item %d: short overflow reference", ErrCorrupt, p.pgno, i)
		}
		b, err := d.overflow(d.u32(p.b, off+4), d.u32(p.b, off+8))
		return b, deleted, err
	case bDuplicate:
		return nil, false, fmt.Errorf("%w: duplicate data items (postmap never writes them)", ErrUnsupported)
	}
	return nil, false, fmt.Errorf("%w: page %d leaf item %d has type %d", ErrCorrupt, p.pgno, i, typ)
}

// btreeStep checks that page pgno may sit below a page of level parent
// (0: pgno is the root) and returns it.
func (d *db) btreeStep(pgno uint32, parent uint8) (page, error) {
	p, err := d.page(pgno)
	if err != nil {
		return p, err
	}
	switch {
	case p.typ == pIBtree && p.level > leafLevel && p.entries > 0:
	case p.typ == pLBtree && p.level == leafLevel && p.entries%2 == 0:
	default:
		return p, fmt.Errorf("%w: btree page %d: type %d, level %d, %d items", ErrCorrupt, pgno, p.typ, p.level, p.entries)
	}
	if parent != 0 && p.level != parent-1 {
		return p, fmt.Errorf("%w: btree page %d has level %d below level %d", ErrCorrupt, pgno, p.level, parent)
	}
	return p, nil
}

func (d *db) btreeGet(key []byte) ([]byte, bool, error) {
	pgno, parent := d.root, uint8(0)
	for {
		p, err := d.btreeStep(pgno, parent)
		if err != nil {
			return nil, false, err
		}
		parent = p.level
		if p.typ == pLBtree {
			return d.leafGet(p, key)
		}
		// The last item whose key is <= key; item 0 stands for everything
		// below item 1.
		at, lo, hi := 0, 1, int(p.entries)-1
		for lo <= hi {
			mid := int(uint(lo+hi) >> 1)
			_, k, err := d.btreeInternal(p, mid)
			if err != nil {
				return nil, false, err
			}
			c := bytes.Compare(key, k)
			if c >= 0 {
				at = mid
			}
			if c == 0 {
				break
			}
			if c > 0 {
				lo = mid + 1
			} else {
				hi = mid - 1
			}
		}
		if pgno, _, err = d.btreeInternal(p, at); err != nil {
			return nil, false, err
		}
	}
}

func (d *db) leafGet(p page, key []byte) ([]byte, bool, error) {
	lo, hi := 0, int(p.entries)/2-1
	for lo <= hi {
		mid := int(uint(lo+hi) >> 1)
		k, kdel, err := d.btreeLeafItem(p, 2*mid)
		if err != nil {
			return nil, false, err
		}
		switch c := bytes.Compare(key, k); {
		case c > 0:
			lo = mid + 1
		case c < 0:
			hi = mid - 1
		default:
			v, vdel, err := d.btreeLeafItem(p, 2*mid+1)
			if err != nil || kdel || vdel {
				return nil, false, err
			}
			return v, true, nil
		}
	}
	return nil, false, nil
}

// btreeEach walks the tree depth first, checking that keys ascend strictly
// and that every key lies within the bounds its parents' keys set, so that
// a lookup finds whatever a walk shows.
func (d *db) btreeEach(fn func(key, value []byte) error) error {
	w := btreeWalk{d: d, seen: newVisited(d.npages), fn: fn}
	return w.walk(d.root, 0, nil, nil)
}

type btreeWalk struct {
	d    *db
	seen visited
	fn   func(key, value []byte) error
	prev []byte // the last key passed to fn
	any  bool
}

// walk visits the subtree at pgno, whose keys must be >= lo (nil: no
// bound) and < hi (nil: no bound).
func (w *btreeWalk) walk(pgno uint32, parent uint8, lo, hi []byte) error {
	d := w.d
	p, err := d.btreeStep(pgno, parent)
	if err != nil {
		return err
	}
	if err := w.seen.mark(pgno); err != nil {
		return err
	}
	if p.typ == pIBtree {
		for i := 0; i < int(p.entries); i++ {
			child, k, err := d.btreeInternal(p, i)
			if err != nil {
				return err
			}
			clo := lo
			if i > 0 {
				clo = k
			}
			chi := hi
			if i+1 < int(p.entries) {
				if _, chi, err = d.btreeInternal(p, i+1); err != nil {
					return err
				}
			}
			if err := w.walk(child, p.level, clo, chi); err != nil {
				return err
			}
		}
		return nil
	}
	for i := 0; i < int(p.entries); i += 2 {
		k, kdel, err := d.btreeLeafItem(p, i)
		if err != nil {
			return err
		}
		v, vdel, err := d.btreeLeafItem(p, i+1)
		if err != nil {
			return err
		}
		if (lo != nil && bytes.Compare(k, lo) < 0) || (hi != nil && bytes.Compare(k, hi) >= 0) {
			return fmt.Errorf("%w: btree page %d: key %q outside its parent's range", ErrCorrupt, pgno, k)
		}
		if w.any && bytes.Compare(k, w.prev) <= 0 {
			return fmt.Errorf("%w: btree page %d: key %q out of order", ErrCorrupt, pgno, k)
		}
		w.prev, w.any = k, true
		if kdel || vdel {
			continue
		}
		if err := w.fn(k, v); err != nil {
			return err
		}
	}
	return nil
}
