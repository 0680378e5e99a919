// Runs in: the front (encodes requests) and the parent (decodes them).
//
// The control protocol between the front and the root parent: request and
// reply layouts.

package privsep

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/vlmtpd/vlmtpd/store"
	"golang.org/x/sys/unix"
)

// Packet types.
const (
	OpSpawn byte = 1 // front → parent: start a worker for uid, gid
	OpKill  byte = 2 // front → parent: SIGKILL the worker with this id
	OpReply byte = 3 // parent → front
	OpStop  byte = 4 // front → parent: SIGTERM the worker with this id
)

// Reply codes.
const (
	CodeOK      byte = 0
	CodeRefused byte = 1 // the policy refused the ids
	CodeFailed  byte = 2 // the worker could not be started or killed
)

const (
	RequestLen  = 1 + 4 + 8
	replyHdrLen = 1 + 4 + 1 + 8 + 4
	maxReplyMsg = 512
	MaxPacket   = replyHdrLen + maxReplyMsg
)

var ErrProtocol = errors.New("control protocol error")

// request is one front → parent packet.
type Request struct {
	Op       byte
	Seq      uint32
	UID, GID int    // opSpawn
	ID       uint64 // opKill, opStop
}

func (r Request) Encode() []byte {
	b := make([]byte, RequestLen)
	b[0] = r.Op
	binary.BigEndian.PutUint32(b[1:], r.Seq)
	switch r.Op {
	case OpSpawn:
		binary.BigEndian.PutUint32(b[5:], uint32(r.UID))
		binary.BigEndian.PutUint32(b[9:], uint32(r.GID))
	case OpKill, OpStop:
		binary.BigEndian.PutUint64(b[5:], r.ID)
	}
	return b
}

// decodeRequest parses a packet from the front, which is not trusted:
// anything but an exact, known layout is refused.
func DecodeRequest(b []byte) (Request, error) {
	if len(b) != RequestLen {
		return Request{}, fmt.Errorf("%w: request of %d bytes", ErrProtocol, len(b))
	}
	r := Request{Op: b[0], Seq: binary.BigEndian.Uint32(b[1:])}
	switch r.Op {
	case OpSpawn:
		uid, gid := binary.BigEndian.Uint32(b[5:]), binary.BigEndian.Uint32(b[9:])
		if uid > store.MaxID || gid > store.MaxID {
			return Request{}, fmt.Errorf("%w: id out of range", ErrProtocol)
		}
		r.UID, r.GID = int(uid), int(gid)
	case OpKill, OpStop:
		r.ID = binary.BigEndian.Uint64(b[5:])
	default:
		return Request{}, fmt.Errorf("%w: unknown request type %d", ErrProtocol, r.Op)
	}
	return r, nil
}

// reply is one parent → front packet.
type Reply struct {
	Seq  uint32
	Code byte
	ID   uint64 // the worker's id for later kill requests
	PID  int
	Msg  string // why a request was refused or failed
}

func (r Reply) Encode() []byte {
	msg := r.Msg
	if len(msg) > maxReplyMsg {
		msg = msg[:maxReplyMsg]
	}
	b := make([]byte, replyHdrLen, replyHdrLen+len(msg))
	b[0] = OpReply
	binary.BigEndian.PutUint32(b[1:], r.Seq)
	b[5] = r.Code
	binary.BigEndian.PutUint64(b[6:], r.ID)
	binary.BigEndian.PutUint32(b[14:], uint32(r.PID))
	return append(b, msg...)
}

func DecodeReply(b []byte) (Reply, error) {
	if len(b) < replyHdrLen || len(b) > MaxPacket || b[0] != OpReply {
		return Reply{}, fmt.Errorf("%w: bad reply of %d bytes", ErrProtocol, len(b))
	}
	r := Reply{
		Seq:  binary.BigEndian.Uint32(b[1:]),
		Code: b[5],
		ID:   binary.BigEndian.Uint64(b[6:]),
		Msg:  string(b[replyHdrLen:]),
	}
	pid := binary.BigEndian.Uint32(b[14:])
	if r.Code > CodeFailed || pid > math.MaxInt32 {
		return Reply{}, fmt.Errorf("%w: bad reply", ErrProtocol)
	}
	r.PID = int(pid)
	return r, nil
}

// Policy is what the parent checks before it starts any worker: the one
// id policy every boundary applies (store.IDPolicy).
type Policy = store.IDPolicy

// SendPacket sends one packet (with oob, e.g. SCM_RIGHTS), retrying on EINTR.
func SendPacket(fd int, b, oob []byte) error {
	for {
		err := unix.Sendmsg(fd, b, oob, nil, unix.MSG_NOSIGNAL)
		if err != unix.EINTR {
			return err
		}
	}
}
