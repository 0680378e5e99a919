// Runs in: make bench (a tool).

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// fillMaildir makes maildir a Maildir owned by o holding n messages of
// size bytes in new/, where deliveries land (so the directory the
// servers link into and fsync is the full one; a mailbox that an IMAP
// client reads would hold them in cur/). They are real files, not hard
// links, so that the inodes exist too. Nothing is fsynced here: the
// caller syncs the filesystem once before measuring, so that writeback
// of the fill does not fall into a cell.
func fillMaildir(maildir string, n, size int, o owner) error {
	if err := os.MkdirAll(filepath.Dir(maildir), 0o700); err != nil {
		return err
	}
	for _, d := range []string{maildir, filepath.Join(maildir, "tmp"), filepath.Join(maildir, "new"), filepath.Join(maildir, "cur")} {
		if err := os.Mkdir(d, 0o700); err != nil && !os.IsExist(err) {
			return err
		}
	}
	if err := chownTree(filepath.Dir(maildir), o); err != nil {
		return err
	}
	body := []byte(fmt.Sprintf("From: fill@client.test\nTo: %s@bench.test\nSubject: fill\n\n", filepath.Base(maildir)))
	for len(body) < size {
		body = append(body, "fill fill fill fill fill fill fill fill fill fill fill fill fill\n"...)
	}
	body = body[:size]
	newDir := filepath.Join(maildir, "new")
	const workers = 4
	errs := make([]error, workers)
	var wg sync.WaitGroup
	base := time.Now().Unix() - int64(n)
	for w := range workers {
		wg.Go(func() {
			for i := w; i < n; i += workers {
				name := fmt.Sprintf("%d.M%dP1Q%d.fill.test,S=%d", base+int64(i), i%1000000, i, size)
				if errs[w] = writeOwned(filepath.Join(newDir, name), body, o); errs[w] != nil {
					return
				}
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func writeOwned(path string, body []byte, o owner) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(body)
	if err == nil && os.Geteuid() == 0 {
		err = f.Chown(o.UID, o.GID)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// syncFS writes back everything dirty on dir's filesystem.
func syncFS(dir string) error {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return unix.Syncfs(fd)
}
