// SPDX-License-Identifier: GPL-2.0
//
// Lesson 5: what both programs send to user space for each tcp_sendmsg() call. The
// workload gives every message a size of its own, so the size says which message it was.
#ifndef LESSON5_EVENT_H
#define LESSON5_EVENT_H

struct event {
	__u32 pid;	// the sending process (upper half of pid_tgid)
	__u32 tid;	// the sending thread (lower half)
	__u64 size;	// tcp_sendmsg's third argument: bytes in this message
	__u64 ts_ns;	// bpf_ktime_get_ns() when it was sent
};

#endif
