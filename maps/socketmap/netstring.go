// Runs in: the front (and the lookup, check-config and makemap commands).

package socketmap

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// errProtocol marks a reply that is not a well-formed netstring.
var errProtocol = errors.New("socketmap protocol error")

// appendNetstring appends "len:payload," to b.
func appendNetstring(b []byte, payload string) []byte {
	b = strconv.AppendInt(b, int64(len(payload)), 10)
	b = append(b, ':')
	b = append(b, payload...)
	return append(b, ',')
}

// readNetstring reads one netstring of at most limit payload bytes. A
// longer one is an error before its payload is read, so the caller must
// drop the connection. io.EOF before the first byte is returned as is,
// so a connection the server closed can be told from a garbled reply.
func readNetstring(r *bufio.Reader, limit int) (string, error) {
	n, digits := 0, 0
	for {
		c, err := r.ReadByte()
		if err != nil {
			if err == io.EOF && digits > 0 {
				err = io.ErrUnexpectedEOF
			}
			return "", err
		}
		if c == ':' {
			break
		}
		if c < '0' || c > '9' {
			return "", fmt.Errorf("%w: unexpected byte %q in a netstring length", errProtocol, c)
		}
		digits++
		n = n*10 + int(c-'0')
		if n > limit {
			return "", fmt.Errorf("%w: reply longer than the %d-byte limit", errProtocol, limit)
		}
	}
	if digits == 0 {
		return "", fmt.Errorf("%w: netstring without a length", errProtocol)
	}
	buf := make([]byte, n+1)
	if _, err := io.ReadFull(r, buf); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return "", err
	}
	if buf[n] != ',' {
		return "", fmt.Errorf("%w: netstring not terminated by ','", errProtocol)
	}
	return string(buf[:n]), nil
}
