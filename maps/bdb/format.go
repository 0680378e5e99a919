// Runs in: the front (and the lookup, check-config and makemap commands).

package bdb

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// ErrCorrupt is a file whose structure does not hold together.
var ErrCorrupt = errors.New("corrupt Berkeley DB file")

// ErrUnsupported is a valid Berkeley DB file using a feature postmap never
// writes (sub-databases, duplicates, checksums, encryption, recno...).
var ErrUnsupported = errors.New("unsupported Berkeley DB file")

// Kind is the access method of a file.
type Kind int

const (
	Hash Kind = iota + 1
	Btree
)

func (k Kind) String() string {
	switch k {
	case Hash:
		return "hash"
	case Btree:
		return "btree"
	}
	return "unknown"
}

// Magic numbers and the versions of the page formats read here. Hash
// version 8 has the unsorted hash pages of Berkeley DB 4.x, whose items
// are laid out as in version 9.
const (
	hashMagic  = 0x061561
	btreeMagic = 0x053162
	queueMagic = 0x042253
	heapMagic  = 0x074582
)

// Page types (db_page.h).
const (
	pHashUnsorted = 2
	pIBtree       = 3
	pLBtree       = 5
	pOverflow     = 7
	pHashMeta     = 8
	pBtreeMeta    = 9
	pHash         = 13
)

// Item types on hash pages and btree pages.
const (
	hKeyData   = 1
	hDuplicate = 2
	hOffPage   = 3
	hOffDup    = 4

	bKeyData   = 1
	bDuplicate = 2
	bOverflow  = 3
	bDelete    = 0x80
)

const (
	pageHeader = 26 // SIZEOF_PAGE: items' index array follows
	metaSize   = 512
	leafLevel  = 1
	maxLevel   = 255
	numSpares  = 32

	metaChecksum = 0x01 // metaflags: pages carry a checksum
	btmRecno     = 0x002
	btmDup       = 0x001
	btmSubDB     = 0x020
	btmCompress  = 0x080
	hashDup      = 0x01
	hashSubDB    = 0x02
)

// db is one file's bytes and what its meta page says. The bytes are never
// modified; a db is safe for concurrent use.
type db struct {
	data      []byte
	bigEndian bool // the file was written on a big-endian machine
	kind      Kind
	psize     uint32
	npages    uint32 // pages that exist: min(last_pgno+1, len(data)/psize)
	last      uint32 // last_pgno: the last page allocated, perhaps never written

	// hash
	maxBucket, highMask, lowMask uint32
	spares                       [numSpares]uint32
	// btree
	root uint32
}

// parse reads the meta page of data and checks what lookups rely on.
func parse(data []byte) (*db, error) {
	if len(data) < metaSize {
		return nil, fmt.Errorf("%w: %d bytes, shorter than a meta page", ErrCorrupt, len(data))
	}
	d := &db{data: data}
	magic := binary.LittleEndian.Uint32(data[12:])
	switch {
	case magic == hashMagic || magic == btreeMagic:
	case binary.BigEndian.Uint32(data[12:]) == hashMagic || binary.BigEndian.Uint32(data[12:]) == btreeMagic:
		d.bigEndian = true
		magic = binary.BigEndian.Uint32(data[12:])
	case magic == queueMagic || magic == heapMagic || binary.BigEndian.Uint32(data[12:]) == queueMagic || binary.BigEndian.Uint32(data[12:]) == heapMagic:
		return nil, fmt.Errorf("%w: a queue or heap database, not hash or btree", ErrUnsupported)
	default:
		return nil, fmt.Errorf("%w: no hash or btree magic number (not a Berkeley DB 2.x-6.x file?)", ErrCorrupt)
	}
	version := d.u32(data, 16)
	d.psize = d.u32(data, 20)
	encrypt, ptype, metaflags := data[24], data[25], data[26]
	lastPgno := d.u32(data, 32)
	flags := d.u32(data, 48)
	if d.psize < metaSize || d.psize > 64<<10 || d.psize&(d.psize-1) != 0 {
		return nil, fmt.Errorf("%w: page size %d", ErrCorrupt, d.psize)
	}
	if d.u32(data, 8) != 0 {
		return nil, fmt.Errorf("%w: meta page is not page 0", ErrCorrupt)
	}
	if encrypt != 0 {
		return nil, fmt.Errorf("%w: encrypted", ErrUnsupported)
	}
	if metaflags&metaChecksum != 0 {
		return nil, fmt.Errorf("%w: page checksums", ErrUnsupported)
	}
	d.last = lastPgno
	d.npages = uint32(min(uint64(lastPgno)+1, uint64(len(data))/uint64(d.psize)))
	if d.npages < 2 {
		return nil, fmt.Errorf("%w: %d bytes hold no page after the meta page", ErrCorrupt, len(data))
	}
	switch magic {
	case hashMagic:
		d.kind = Hash
		if ptype != pHashMeta || version < 8 || version > 9 {
			return nil, fmt.Errorf("%w: hash meta page type %d version %d", ErrUnsupported, ptype, version)
		}
		if flags&(hashDup|hashSubDB) != 0 {
			return nil, fmt.Errorf("%w: hash flags %#x (duplicates or sub-databases)", ErrUnsupported, flags)
		}
		d.maxBucket, d.highMask, d.lowMask = d.u32(data, 72), d.u32(data, 76), d.u32(data, 80)
		if h := hashFunc([]byte(charKey)); d.u32(data, 92) != h {
			return nil, fmt.Errorf("%w: built with a hash function other than the default", ErrUnsupported)
		}
		for i := range d.spares {
			d.spares[i] = d.u32(data, 96+4*uint64(i))
		}
		// Every bucket has a page of its own.
		if d.maxBucket >= d.npages {
			return nil, fmt.Errorf("%w: %d buckets in %d pages", ErrCorrupt, uint64(d.maxBucket)+1, d.npages)
		}
	case btreeMagic:
		d.kind = Btree
		if ptype != pBtreeMeta || version < 8 || version > 9 {
			return nil, fmt.Errorf("%w: btree meta page type %d version %d", ErrUnsupported, ptype, version)
		}
		if flags&(btmRecno|btmDup|btmSubDB|btmCompress) != 0 {
			return nil, fmt.Errorf("%w: btree flags %#x (recno, duplicates, sub-databases or compression)", ErrUnsupported, flags)
		}
		d.root = d.u32(data, 88)
		if d.root == 0 || d.root >= d.npages {
			return nil, fmt.Errorf("%w: root page %d of %d", ErrCorrupt, d.root, d.npages)
		}
	}
	return d, nil
}

// u32 and u16 test the order themselves: a call through the ByteOrder
// interface is not inlined, and lookups make dozens of them.
func (d *db) u32(b []byte, off uint64) uint32 {
	if d.bigEndian {
		return binary.BigEndian.Uint32(b[off:])
	}
	return binary.LittleEndian.Uint32(b[off:])
}

func (d *db) u16(b []byte, off uint64) uint16 {
	if d.bigEndian {
		return binary.BigEndian.Uint16(b[off:])
	}
	return binary.LittleEndian.Uint16(b[off:])
}

// page is one page's bytes with its header decoded.
type page struct {
	b       []byte
	pgno    uint32
	next    uint32
	entries uint16
	hfOff   uint16
	level   uint8
	typ     uint8
}

// page returns page pgno, which must exist, must not be the meta page and
// must say it is page pgno.
func (d *db) page(pgno uint32) (page, error) {
	if pgno == 0 || pgno >= d.npages {
		return page{}, fmt.Errorf("%w: page number %d outside 1..%d", ErrCorrupt, pgno, d.npages-1)
	}
	off := uint64(pgno) * uint64(d.psize)
	b := d.data[off : off+uint64(d.psize)]
	p := page{
		b:       b,
		pgno:    d.u32(b, 8),
		next:    d.u32(b, 16),
		entries: d.u16(b, 20),
		hfOff:   d.u16(b, 22),
		level:   b[24],
		typ:     b[25],
	}
	if p.pgno != pgno {
		return page{}, fmt.Errorf("%w: page %d says it is page %d", ErrCorrupt, pgno, p.pgno)
	}
	if pageHeader+2*uint64(p.entries) > uint64(d.psize) {
		return page{}, fmt.Errorf("%w: page %d: %d entries do not fit", ErrCorrupt, pgno, p.entries)
	}
	return p, nil
}

// index is the offset of item i on p, checked to lie after the index array
// and inside the page.
func (d *db) index(p page, i int) (uint64, error) {
	off := uint64(d.u16(p.b, pageHeader+2*uint64(i)))
	if off < pageHeader+2*uint64(p.entries) || off >= uint64(len(p.b)) {
		return 0, fmt.Errorf("%w: page %d item %d at offset %d", ErrCorrupt, p.pgno, i, off)
	}
	return off, nil
}

// overflow reads an item of tlen bytes stored on a chain of overflow pages
// starting at pgno. The chain may not be longer than the file has pages.
func (d *db) overflow(pgno, tlen uint32) ([]byte, error) {
	if uint64(tlen) > uint64(len(d.data)) {
		return nil, fmt.Errorf("%w: overflow item of %d bytes in a %d-byte file", ErrCorrupt, tlen, len(d.data))
	}
	out := make([]byte, 0, tlen)
	for hops := uint32(0); pgno != 0; hops++ {
		if hops >= d.npages {
			return nil, fmt.Errorf("%w: overflow chain loops", ErrCorrupt)
		}
		p, err := d.page(pgno)
		if err != nil {
			return nil, err
		}
		if p.typ != pOverflow {
			return nil, fmt.Errorf("%w: page %d in an overflow chain has type %d", ErrCorrupt, pgno, p.typ)
		}
		n := uint64(p.hfOff) // on overflow pages: the bytes this page holds
		if pageHeader+n > uint64(len(p.b)) || uint64(len(out))+n > uint64(tlen) {
			return nil, fmt.Errorf("%w: overflow page %d holds %d bytes", ErrCorrupt, pgno, n)
		}
		out = append(out, p.b[pageHeader:pageHeader+n]...)
		pgno = p.next
	}
	if len(out) != int(tlen) {
		return nil, fmt.Errorf("%w: overflow item has %d of %d bytes", ErrCorrupt, len(out), tlen)
	}
	return out, nil
}

// Get returns the value stored under key, exactly as stored.
func (d *db) get(key []byte) ([]byte, bool, error) {
	if d.kind == Hash {
		return d.hashGet(key)
	}
	return d.btreeGet(key)
}

// each calls fn for every key/value pair and checks the whole structure on
// the way: every page is visited at most once. fn's error stops the walk.
func (d *db) each(fn func(key, value []byte) error) error {
	if d.kind == Hash {
		return d.hashEach(fn)
	}
	return d.btreeEach(fn)
}

// visited marks pages seen by a walk; a page reached twice is a cycle or
// a page shared by two chains.
type visited []uint64

func newVisited(n uint32) visited { return make(visited, (n+63)/64) }

func (v visited) mark(pgno uint32) error {
	w, bit := pgno/64, uint64(1)<<(pgno%64)
	if v[w]&bit != 0 {
		return fmt.Errorf("%w: page %d is reached twice", ErrCorrupt, pgno)
	}
	v[w] |= bit
	return nil
}
