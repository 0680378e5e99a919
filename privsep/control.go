// This file is the control protocol between the front and the root
// parent: request and reply layouts and the uid/gid policy.

package privsep

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/vlmtpd/vlmtpd/store"
)

// Packet types.
const (
	opSpawn byte = 1 // front → parent: start a worker for uid, gid
	opKill  byte = 2 // front → parent: SIGKILL the worker with this id
	opReply byte = 3 // parent → front
	opStop  byte = 4 // front → parent: SIGTERM the worker with this id
)

// Reply codes.
const (
	codeOK      byte = 0
	codeRefused byte = 1 // the policy refused the ids
	codeFailed  byte = 2 // the worker could not be started or killed
)

const (
	requestLen  = 1 + 4 + 8
	replyHdrLen = 1 + 4 + 1 + 8 + 4
	maxReplyMsg = 512
	maxPacket   = replyHdrLen + maxReplyMsg
)

var errControl = errors.New("control protocol error")

// request is one front → parent packet.
type request struct {
	Op       byte
	Seq      uint32
	UID, GID int    // opSpawn
	ID       uint64 // opKill, opStop
}

func (r request) encode() []byte {
	b := make([]byte, requestLen)
	b[0] = r.Op
	binary.BigEndian.PutUint32(b[1:], r.Seq)
	switch r.Op {
	case opSpawn:
		binary.BigEndian.PutUint32(b[5:], uint32(r.UID))
		binary.BigEndian.PutUint32(b[9:], uint32(r.GID))
	case opKill, opStop:
		binary.BigEndian.PutUint64(b[5:], r.ID)
	}
	return b
}

// decodeRequest parses a packet from the front, which is not trusted:
// anything but an exact, known layout is refused.
func decodeRequest(b []byte) (request, error) {
	if len(b) != requestLen {
		return request{}, fmt.Errorf("%w: request of %d bytes", errControl, len(b))
	}
	r := request{Op: b[0], Seq: binary.BigEndian.Uint32(b[1:])}
	switch r.Op {
	case opSpawn:
		uid, gid := binary.BigEndian.Uint32(b[5:]), binary.BigEndian.Uint32(b[9:])
		if uid > store.MaxID || gid > store.MaxID {
			return request{}, fmt.Errorf("%w: id out of range", errControl)
		}
		r.UID, r.GID = int(uid), int(gid)
	case opKill, opStop:
		r.ID = binary.BigEndian.Uint64(b[5:])
	default:
		return request{}, fmt.Errorf("%w: unknown request type %d", errControl, r.Op)
	}
	return r, nil
}

// reply is one parent → front packet.
type reply struct {
	Seq  uint32
	Code byte
	ID   uint64 // the worker's id for later kill requests
	PID  int
	Msg  string // why a request was refused or failed
}

func (r reply) encode() []byte {
	msg := r.Msg
	if len(msg) > maxReplyMsg {
		msg = msg[:maxReplyMsg]
	}
	b := make([]byte, replyHdrLen, replyHdrLen+len(msg))
	b[0] = opReply
	binary.BigEndian.PutUint32(b[1:], r.Seq)
	b[5] = r.Code
	binary.BigEndian.PutUint64(b[6:], r.ID)
	binary.BigEndian.PutUint32(b[14:], uint32(r.PID))
	return append(b, msg...)
}

func decodeReply(b []byte) (reply, error) {
	if len(b) < replyHdrLen || len(b) > maxPacket || b[0] != opReply {
		return reply{}, fmt.Errorf("%w: bad reply of %d bytes", errControl, len(b))
	}
	r := reply{
		Seq:  binary.BigEndian.Uint32(b[1:]),
		Code: b[5],
		ID:   binary.BigEndian.Uint64(b[6:]),
		Msg:  string(b[replyHdrLen:]),
	}
	pid := binary.BigEndian.Uint32(b[14:])
	if r.Code > codeFailed || pid > math.MaxInt32 {
		return reply{}, fmt.Errorf("%w: bad reply", errControl)
	}
	r.PID = int(pid)
	return r, nil
}

// Policy is what the parent checks before it starts any worker: the one
// id policy every boundary applies (store.IDPolicy).
type Policy = store.IDPolicy
