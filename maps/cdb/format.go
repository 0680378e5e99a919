// Runs in: the front (and the lookup, check-config and makemap commands).

package cdb

import (
	"encoding/binary"
	"errors"
)

// The on-disk layout: a header of 256 (table offset, slot count) pairs,
// the records (key length, value length, key, value), then 256 hash
// tables of (hash, record offset) slots. All numbers are little-endian
// uint32; a slot whose record offset is 0 is empty (offset 0 is inside
// the header, so no record can live there).
const (
	headerSize = 256 * 8
	slotSize   = 8
	recordHead = 8
	maxFile    = 1<<32 - 1 // offsets are uint32
)

// ErrCorrupt is a cdb file whose structure points outside the file. A
// lookup that meets it fails temporarily; the table is reopened when the
// file is replaced.
var ErrCorrupt = errors.New("corrupt cdb file")

// hash is djb's cdb hash: start at 5381, then h = (h*33) ^ c per byte.
func hash(key string) uint32 {
	h := uint32(5381)
	for i := 0; i < len(key); i++ {
		h = (h*33 ^ uint32(key[i]))
	}
	return h
}

func u32(b []byte, off uint64) uint32 { return binary.LittleEndian.Uint32(b[off:]) }
