package fdio

import (
	"os"
	"testing"
)

func TestWriteAll(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "w")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	want := make([]byte, 1<<20)
	for i := range want {
		want[i] = byte(i)
	}
	if err := WriteAll(int(f.Fd()), want); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(f.Name())
	if string(got) != string(want) {
		t.Fatalf("wrote %d bytes, want %d", len(got), len(want))
	}
	if err := WriteAll(-1, []byte("x")); err == nil {
		t.Fatal("a bad descriptor gave no error")
	}
}
