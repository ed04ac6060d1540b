// SPDX-License-Identifier: GPL-2.0
//
// Lesson 6, parts hash and lru-hash: the same program on two kinds of hash map. A key is
// a message size; its value, how many messages of that size were sent.
#ifndef LESSON6_COUNT_BY_SIZE_H
#define LESSON6_COUNT_BY_SIZE_H

// Inserts the map refused: [0] how many, [1] the error of the last (a negative errno).
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __s64);
} refused SEC(".maps");

static __always_inline void count_by_size(void *map, __u64 size)
{
	__u64 *count = bpf_map_lookup_elem(map, &size);
	__u64 one = 1;

	if (count) {
		__sync_fetch_and_add(count, 1);
		return;
	}
	// BPF_NOEXIST: only a new key. (Two CPUs inserting the same key at once would make
	// one fail with -EEXIST; the lesson sends from one thread.)
	long err = bpf_map_update_elem(map, &size, &one, BPF_NOEXIST);
	if (err) {
		__u32 how_many = 0, last_error = 1;
		__s64 *n = bpf_map_lookup_elem(&refused, &how_many);
		__s64 *e = bpf_map_lookup_elem(&refused, &last_error);

		if (n)
			__sync_fetch_and_add(n, 1);
		// As an int: the verifier turns the helper call into a direct call of the map's
		// own update function, which returns an int on some kernels, and the upper half
		// of the 64-bit result is then not the sign's (6.1 says -E2BIG as 4294967289).
		if (e)
			*e = (int)err;
	}
}

#endif
