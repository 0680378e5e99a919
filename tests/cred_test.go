package tests

import "syscall"

// credAttr runs a child as uid/gid with no supplementary groups.
func credAttr(uid, gid uint32) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: gid, Groups: []uint32{}}}
}
