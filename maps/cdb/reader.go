// Runs in: the front (and the lookup, check-config and makemap commands).

package cdb

import "fmt"

// reader looks keys up in the bytes of one cdb file. Every offset read
// from the file is checked against its length, so a truncated or corrupt
// file gives ErrCorrupt, never an out-of-range panic.
type reader struct {
	data []byte
}

func newReader(data []byte) (reader, error) {
	if len(data) < headerSize {
		return reader{}, fmt.Errorf("%w: %d bytes, shorter than the %d-byte header", ErrCorrupt, len(data), headerSize)
	}
	if uint64(len(data)) > maxFile {
		return reader{}, fmt.Errorf("%w: larger than 4 GiB", ErrCorrupt)
	}
	r := reader{data: data}
	// Check the header's tables now so a half-written file is refused at
	// open rather than at the first lookup that lands in a bad table.
	for i := 0; i < 256; i++ {
		pos, n := r.table(uint32(i))
		if n == 0 {
			continue
		}
		if pos < headerSize || pos+n*slotSize > uint64(len(data)) {
			return reader{}, fmt.Errorf("%w: hash table %d (offset %d, %d slots) lies outside the %d-byte file", ErrCorrupt, i, pos, n, len(data))
		}
	}
	return r, nil
}

func (r reader) table(h uint32) (pos, slots uint64) {
	off := uint64(h&255) * 8
	return uint64(u32(r.data, off)), uint64(u32(r.data, off+4))
}

// get returns the value of the first record stored under key.
func (r reader) get(key string) (value []byte, found bool, err error) {
	h := hash(key)
	tpos, slots := r.table(h)
	if slots == 0 {
		return nil, false, nil
	}
	size := uint64(len(r.data))
	if tpos+slots*slotSize > size {
		return nil, false, ErrCorrupt
	}
	s := uint64(h>>8) % slots
	for range slots {
		at := tpos + s*slotSize
		sh, rpos := u32(r.data, at), uint64(u32(r.data, at+4))
		if rpos == 0 {
			return nil, false, nil
		}
		if sh == h {
			if rpos+recordHead > size {
				return nil, false, ErrCorrupt
			}
			klen, vlen := uint64(u32(r.data, rpos)), uint64(u32(r.data, rpos+4))
			kpos := rpos + recordHead
			if kpos+klen+vlen > size {
				return nil, false, ErrCorrupt
			}
			if klen == uint64(len(key)) && string(r.data[kpos:kpos+klen]) == key {
				return r.data[kpos+klen : kpos+klen+vlen], true, nil
			}
		}
		if s++; s == slots {
			s = 0
		}
	}
	// Every slot is full: a well-formed table always has a free slot, but
	// a lookup in a full one must still end.
	return nil, false, nil
}

// each calls fn for every record in file order until fn returns false.
// Records end where the lowest hash table starts.
func (r reader) each(fn func(key, value []byte) bool) error {
	end := uint64(len(r.data))
	for i := 0; i < 256; i++ {
		if pos, _ := r.table(uint32(i)); pos < end && pos >= headerSize {
			end = pos
		}
	}
	for pos := uint64(headerSize); pos < end; {
		if pos+recordHead > end {
			return ErrCorrupt
		}
		klen, vlen := uint64(u32(r.data, pos)), uint64(u32(r.data, pos+4))
		kpos := pos + recordHead
		if kpos+klen+vlen > end {
			return ErrCorrupt
		}
		if !fn(r.data[kpos:kpos+klen], r.data[kpos+klen:kpos+klen+vlen]) {
			return nil
		}
		pos = kpos + klen + vlen
	}
	return nil
}
