package privsep

import "testing"

// FuzzDecodeRequest feeds the parent what a compromised front could send:
// only exact, known layouts with ids in range are accepted, and they
// encode back to the same bytes.
func FuzzDecodeRequest(f *testing.F) {
	f.Add(request{Op: opSpawn, Seq: 1, UID: 5000, GID: 5000}.encode())
	f.Add(request{Op: opKill, Seq: 2, ID: 7}.encode())
	f.Add([]byte{opSpawn, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeRequest(b)
		if err != nil {
			return
		}
		if r.UID < 0 || r.GID < 0 {
			t.Fatalf("negative id accepted: %+v", r)
		}
		if string(r.encode()) != string(b) {
			t.Fatalf("re-encoding differs")
		}
	})
}

// FuzzDecodeReply feeds the front's decoder.
func FuzzDecodeReply(f *testing.F) {
	f.Add(reply{Seq: 1, Code: codeOK, ID: 3, PID: 99}.encode())
	f.Add(reply{Seq: 2, Code: codeRefused, Msg: "uid 0 is not allowed"}.encode())
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeReply(b)
		if err != nil {
			return
		}
		if r.PID < 0 || r.Code > codeFailed {
			t.Fatalf("accepted %+v", r)
		}
		if string(r.encode()) != string(b) {
			t.Fatalf("re-encoding differs")
		}
	})
}
